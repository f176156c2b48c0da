//! Cell counts against hand-counted patients over a small table: every
//! spelling of a conditional aggregate counts the patients it rests on.

use datafusion::prelude::col;

use super::{CellRef, layout, terms, with_cells};
use crate::partials::bounding::tests::{site_plan, table};
use crate::release::cell_column;

/// Patients 1–20 measure concept 100 with value 5; patient 21 alone has
/// concept 999 (the victim) with value 700, and patient 22 a zero value.
fn cohort() -> Vec<(i64, i32, f64)> {
    let mut rows: Vec<(i64, i32, f64)> = (1..=20).map(|p| (p, 100, 5.0)).collect();
    rows.push((21, 999, 700.0));
    rows.push((22, 100, 0.0));
    rows
}

/// The cell layout of `sql` and its cell counts, as a table.
async fn cells_of(sql: &str) -> (Vec<Vec<CellRef>>, String) {
    let (ctx, site) = site_plan(sql, &cohort(), None).await;
    let l = layout(&site).expect("layout");
    let plan = with_cells(&site, &l, None).expect("cells");
    let names: Vec<_> = (0..l.sources.len()).map(|n| col(cell_column(n))).collect();
    let df = ctx.execute_logical_plan(plan).await.expect("execute");
    let out = df
        .select(names)
        .expect("select")
        .collect()
        .await
        .expect("collect");
    (l.per_partial, table(&out))
}

#[tokio::test]
async fn every_spelling_of_a_conditional_cell_counts_its_patients() {
    let victim = "measurement_concept_id = 999";
    let spellings = [
        format!("SELECT count(CASE WHEN {victim} THEN 1 END) FROM measurement"),
        format!("SELECT count(*) FILTER (WHERE {victim}) FROM measurement"),
        format!("SELECT sum(CASE WHEN {victim} THEN 1 ELSE 0 END) FROM measurement"),
        format!("SELECT sum(CASE WHEN {victim} THEN value_as_number END) FROM measurement"),
        format!("SELECT avg(value_as_number) FILTER (WHERE {victim}) FROM measurement"),
        format!("SELECT sum(CASE WHEN NOT {victim} THEN 0 ELSE 1 END) FROM measurement"),
    ];
    for sql in &spellings {
        let (refs, counts) = cells_of(sql).await;
        assert!(
            refs[0].iter().any(|r| matches!(r, CellRef::Column(_))),
            "{sql}: {refs:?}"
        );
        assert!(
            counts.contains("| 1 "),
            "{sql}: the cell rests on one patient\n{counts}"
        );
    }
}

#[tokio::test]
async fn a_sum_of_a_common_and_a_rare_term_keeps_the_rare_term_s_cell() {
    // 1000000 for the common rows, 1 for the victim: two terms.
    let (refs, counts) = cells_of(
        "SELECT sum(CASE WHEN measurement_concept_id = 100 THEN 1000000 \
         WHEN measurement_concept_id = 999 THEN 1 END) FROM measurement",
    )
    .await;
    assert_eq!(refs[0].len(), 2, "{refs:?}");
    assert!(counts.contains("21") && counts.contains("| 1 "), "{counts}");
}

#[tokio::test]
async fn zeros_do_not_contribute_to_sums_but_do_to_counts() {
    let (_, sums) = cells_of("SELECT sum(value_as_number) FROM measurement").await;
    assert!(
        sums.contains("| 21 "),
        "patient 22's zero adds nothing\n{sums}"
    );
    let (_, counts) = cells_of("SELECT count(value_as_number) FROM measurement").await;
    assert!(counts.contains("| 22 "), "{counts}");
}

#[test]
fn an_offset_is_a_constant_term_of_its_own() {
    let e = col("value_as_number") + datafusion::prelude::lit(1000.0);
    let t = terms(&e, &datafusion::common::DFSchema::empty()).expect("terms");
    assert_eq!(t.len(), 2);
    assert_eq!(t.iter().filter(|t| t.data).count(), 1, "{t:?}");
}

/// Functions and conditions inside a sum are a count in disguise:
/// `sum(ceil(v / t))` adds one per row above t, `sum(length(concat('x',
/// CASE WHEN rare THEN lpad(...) END)))` sixteen thousand per rare row.
#[tokio::test]
async fn sums_of_functions_and_conditions_are_refused() {
    use crate::partials::bounding::tests::measurements;
    let _ = measurements(&cohort());
    let ctx = datafusion::prelude::SessionContext::new();
    crate::register_virtual_schema(&ctx).expect("schema");
    for arg in [
        "ceil(value_as_number / 1000000)",
        "signum(value_as_number - 700)",
        "length(concat('x', CASE WHEN measurement_concept_id = 999 THEN lpad('', 16384, 'a') ELSE '' END))",
        "power(10.0, CAST(value_as_number > 700 AS DOUBLE))",
        "CAST(value_as_number > 700 AS INT)",
        "abs(value_as_number - 700)",
        "round(value_as_number / 700)",
        "value_as_number / measurement_concept_id",
    ] {
        let sql = format!("SELECT sum({arg}) FROM measurement");
        let got =
            crate::plan_query(&ctx.state(), &sql, &ihdsi_catalog::PrivacyPolicy::default()).await;
        assert!(
            got.as_ref()
                .is_err_and(|e| e.to_string().contains("inside a sum")),
            "{sql}: {:?}",
            got.map(|_| "admitted").map_err(|e| e.to_string())
        );
    }
}

#[test]
fn arguments_of_too_many_parts_are_refused() {
    let mut e = col("value_as_number");
    for i in 0..crate::analysis::terms::MAX_TERMS {
        e = e + col(format!("c{i}"));
    }
    assert!(terms(&e, &datafusion::common::DFSchema::empty()).is_err());
}

/// A difference of two date columns is one term of days; a date chosen by a
/// condition would hide the condition inside that one term (its cell
/// would count every row), so it is refused.
#[test]
fn a_difference_of_date_columns_is_one_term_and_a_chosen_date_is_refused() {
    use datafusion::arrow::datatypes::{DataType, Field, Schema};
    use datafusion::common::DFSchema;
    use datafusion::prelude::{lit, when};
    let schema = DFSchema::try_from(Schema::new(vec![
        Field::new("d_end", DataType::Date32, true),
        Field::new("d_start", DataType::Date32, true),
        Field::new("c", DataType::Int32, true),
    ]))
    .expect("schema");
    let days = col("d_end") - col("d_start");
    let t = terms(&days, &schema).expect("one term");
    assert_eq!(t.len(), 1, "{t:?}");
    let chosen = when(col("c").eq(lit(999)), col("d_end"))
        .otherwise(col("d_start"))
        .expect("case")
        - col("d_start");
    assert!(terms(&chosen, &schema).is_err());
}
