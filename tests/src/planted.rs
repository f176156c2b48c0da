//! The attack fixture: a generated three-site cohort with planted victims
//! (privacy anchors §4.0), written as ordinary Parquet files so that the
//! sites read them like any other data.
//!
//! * **V1** (site `lu`): one patient, the only one anywhere with condition
//!   [`V1_CONDITION`].
//! * **V2** (site `us`): one patient with 600 measurement rows of
//!   [`V2_MEASUREMENT`], a code nobody else has.
//!
//! Two more fixtures stand apart, so that the attacks above keep their
//! exact expectations: [`outlier`], one extreme value in a common
//! measurement (A05), and [`duplicates`], which holds the cross-border duplicates of
//! attack A21: six people treated both at `lu` and at `us`, twelve
//! site-records of condition [`XB_CONDITION`].

use std::path::{Path, PathBuf};

use datafusion::dataframe::DataFrameWriteOptions;
use datafusion::prelude::{DataFrame, ParquetReadOptions, SessionContext, cast, lit};

/// V1's unique condition concept (not in the vocabulary: a rare code).
pub const V1_CONDITION: i32 = 999_999_001;
/// V2's unique measurement concept.
pub const V2_MEASUREMENT: i32 = 999_999_002;
/// How many rows V2 has of it.
pub const V2_ROWS: usize = 600;

/// The condition of the six cross-border patients of [`duplicates`].
pub const XB_CONDITION: i32 = 999_999_003;
/// How many people have it (each at two sites).
pub const XB_PEOPLE: usize = 6;

static PLANT: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// A copy of `cohort` with the victims planted (made once per test run).
pub async fn planted(cohort: &Path) -> PathBuf {
    derived(cohort, "planted", async |tmp: &Path| {
        plant(
            tmp,
            "lu",
            "condition_occurrence",
            1,
            &[("condition_concept_id", V1_CONDITION)],
            false,
        )
        .await;
        plant(
            tmp,
            "us",
            "measurement",
            V2_ROWS,
            &[("measurement_concept_id", V2_MEASUREMENT)],
            true,
        )
        .await;
    })
    .await
}

/// The copy of `cohort` named `name`, made once per test run by `build`
/// in a scratch folder and then published whole.
async fn derived(cohort: &Path, name: &str, build: impl AsyncFnOnce(&Path)) -> PathBuf {
    let _guard = PLANT.lock().await;
    let out = sibling(cohort, name);
    if out.join("concept.parquet").exists() {
        return out;
    }
    let tmp = out.with_extension("partial");
    let _ = std::fs::remove_dir_all(&tmp);
    copy_dir(cohort, &tmp);
    build(&tmp).await;
    let _ = std::fs::remove_dir_all(&out);
    std::fs::rename(&tmp, &out).expect("publish the derived cohort");
    out
}

/// A copy of `cohort` in which [`XB_PEOPLE`] people are treated at `lu`
/// and at `us` for [`XB_CONDITION`]: six distinct patients at each site,
/// who are the same six people (person ids are site-local, so nothing in
/// the data links them: that is the attack).
pub async fn duplicates(cohort: &Path) -> PathBuf {
    derived(cohort, "duplicates", async |tmp: &Path| {
    for site in ["lu", "us"] {
        let file = tmp.join(site).join("condition_occurrence.parquet");
        let ctx = SessionContext::new();
        ctx.register_parquet(
            "t",
            file.display().to_string(),
            ParquetReadOptions::default(),
        )
        .await
        .expect("register table");
        let original = ctx.table("t").await.expect("table");
        let first_rows = ctx
            .sql(&format!(
                "SELECT * EXCLUDE (rn) FROM (SELECT *, row_number() OVER (PARTITION BY person_id ORDER BY condition_occurrence_id) AS rn FROM t) WHERE rn = 1 ORDER BY person_id LIMIT {XB_PEOPLE}"
            ))
            .await
            .expect("one row per patient");
        let data_type = original
            .schema()
            .field_with_unqualified_name("condition_concept_id")
            .expect("column")
            .data_type()
            .clone();
        let extra = first_rows
            .with_column("condition_concept_id", cast(lit(XB_CONDITION), data_type))
            .expect("plant value");
        append(&file, &ctx, original, extra).await;
    }
    })
    .await
}

/// The value planted by [`outlier`].
pub const OUTLIER_VALUE: f64 = 10_000_000.0;

/// A copy of `cohort` with one measurement of [`OUTLIER_VALUE`] added at
/// `kr`, for the first row's patient and concept (an ordinary, common
/// measurement): the outlier of attack A05, one value that dominates the
/// sum of a large group.
pub async fn outlier(cohort: &Path) -> PathBuf {
    derived(cohort, "outlier", async |tmp: &Path| {
        let file = tmp.join("kr").join("measurement.parquet");
        let ctx = SessionContext::new();
        let original = ctx
            .read_parquet(file.display().to_string(), ParquetReadOptions::default())
            .await
            .expect("read measurement");
        let data_type = original
            .schema()
            .field_with_unqualified_name("value_as_number")
            .expect("column")
            .data_type()
            .clone();
        let extra = original
            .clone()
            .limit(0, Some(1))
            .expect("first row")
            .with_column("value_as_number", cast(lit(OUTLIER_VALUE), data_type))
            .expect("plant value");
        append(&file, &ctx, original, extra).await;
    })
    .await
}

fn sibling(cohort: &Path, what: &str) -> PathBuf {
    cohort.with_file_name(format!(
        "{}-{what}",
        cohort
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("cohort")
    ))
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("read cohort").flatten() {
        let target = to.join(entry.file_name());
        if entry.path().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).expect("copy");
        }
    }
}

/// Append `rows` copies of existing rows of `table` at `site`, with
/// `columns` set to the planted values; with `one_patient`, every planted
/// row belongs to the person of the table's first row.
async fn plant(
    root: &Path,
    site: &str,
    table: &str,
    rows: usize,
    columns: &[(&str, i32)],
    one_patient: bool,
) {
    let file = root.join(site).join(format!("{table}.parquet"));
    let ctx = SessionContext::new();
    let original = ctx
        .read_parquet(file.display().to_string(), ParquetReadOptions::default())
        .await
        .expect("read table");
    let schema = original.schema().clone();
    let mut extra = original.clone().limit(0, Some(rows)).expect("limit");
    for (name, value) in columns {
        let data_type = schema
            .field_with_unqualified_name(name)
            .expect("column")
            .data_type()
            .clone();
        extra = extra
            .with_column(name, cast(lit(*value), data_type))
            .expect("plant value");
    }
    if one_patient {
        let first = original
            .clone()
            .limit(0, Some(1))
            .expect("first")
            .collect()
            .await
            .expect("first row");
        let pid = datafusion::common::ScalarValue::try_from_array(
            first[0].column_by_name("person_id").expect("person_id"),
            0,
        )
        .expect("person id");
        extra = extra
            .with_column("person_id", lit(pid))
            .expect("one patient");
    }
    append(&file, &ctx, original, extra).await;
}

/// Rewrite `file` as `original` followed by `extra`.
async fn append(file: &Path, ctx: &SessionContext, original: DataFrame, extra: DataFrame) {
    let merged = original.union(extra).expect("union");
    let batches = merged.collect().await.expect("collect");
    let out = file.with_extension("new.parquet");
    ctx.read_batches(batches)
        .expect("batches")
        .write_parquet(
            &out.display().to_string(),
            DataFrameWriteOptions::new().with_single_file_output(true),
            None,
        )
        .await
        .expect("write planted table");
    std::fs::rename(&out, file).expect("replace table");
}
