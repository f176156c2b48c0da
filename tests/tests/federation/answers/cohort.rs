//! The synthetic cohort: disjoint patients across sites, every concept id in
//! the vocabulary, the intended case mix, and determinism.

use datafusion::arrow::array::{Array, Float64Array, Int64Array};
use ihdsi_catalog::schema;
use ihdsi_tests::{centralized, cohort, oracle_rows};

async fn scalar_i64(ctx: &datafusion::prelude::SessionContext, sql: &str) -> i64 {
    let batches = oracle_rows(ctx, sql).await;
    let col = batches[0].column(0);
    col.as_any()
        .downcast_ref::<Int64Array>()
        .map(|a| a.value(0))
        .unwrap_or_else(|| panic!("{sql}: not Int64"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_concept_id_is_in_the_vocabulary_and_patients_are_site_local() {
    let data = cohort(6_000);
    let ctx = centralized(&data).await;
    for table in schema::patient_tables() {
        for field in table
            .file_schema()
            .fields()
            .iter()
            .filter(|f| f.name().ends_with("_concept_id"))
        {
            let sql = format!(
                "SELECT count(*) FROM {t} WHERE {c} IS NOT NULL AND {c} NOT IN (SELECT concept_id FROM concept)",
                t = table.name,
                c = field.name()
            );
            assert_eq!(
                scalar_i64(&ctx, &sql).await,
                0,
                "{}.{} uses ids missing from concept.parquet",
                table.name,
                field.name()
            );
        }
    }
    assert_eq!(scalar_i64(&ctx, "SELECT count(*) FROM person").await, 6_000);
    let shared = "SELECT count(*) FROM (SELECT person_id FROM person GROUP BY person_id HAVING count(DISTINCT site) > 1) t";
    assert_eq!(
        scalar_i64(&ctx, shared).await,
        0,
        "a person_id appears at two sites"
    );
    let orphans = "SELECT count(*) FROM condition_occurrence c WHERE c.person_id NOT IN (SELECT person_id FROM person p WHERE p.site = c.site)";
    assert_eq!(
        scalar_i64(&ctx, orphans).await,
        0,
        "rows must belong to a person of the same site"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn case_mix_differs_by_site_as_designed() {
    let data = cohort(6_000);
    let ctx = centralized(&data).await;
    let rate = |concept: i32, site: &str| {
        format!(
            "SELECT CAST(count(DISTINCT c.person_id) AS DOUBLE) / (SELECT count(*) FROM person WHERE site = '{site}') \
             FROM condition_occurrence c WHERE c.condition_concept_id = {concept} AND c.site = '{site}'"
        )
    };
    let mut rates = std::collections::HashMap::new();
    for site in ["lu", "us", "kr"] {
        for (name, concept) in [("bladder", 197508), ("parkinson", 381270)] {
            let batches = oracle_rows(&ctx, &rate(concept, site)).await;
            let v = batches[0]
                .column(0)
                .as_any()
                .downcast_ref::<Float64Array>()
                .expect("f64")
                .value(0);
            rates.insert((name, site), v);
        }
    }
    assert!(
        rates[&("bladder", "lu")] > 2.0 * rates[&("bladder", "us")],
        "{rates:?}"
    );
    assert!(
        rates[&("bladder", "lu")] > 2.0 * rates[&("bladder", "kr")],
        "{rates:?}"
    );
    assert!(
        rates[&("parkinson", "kr")] > 2.0 * rates[&("parkinson", "lu")],
        "{rates:?}"
    );
    assert!(
        rates[&("parkinson", "kr")] > 2.0 * rates[&("parkinson", "us")],
        "{rates:?}"
    );
    let sizes = oracle_rows(
        &ctx,
        "SELECT site, count(*) AS n FROM person GROUP BY site ORDER BY n",
    )
    .await;
    assert_eq!(sizes[0].num_rows(), 3);
    let dead = scalar_i64(&ctx, "SELECT count(*) FROM death").await;
    assert!(dead > 0 && dead < 6_000 / 5, "{dead} deaths");
    let variants = scalar_i64(
        &ctx,
        "SELECT count(DISTINCT target_gene1_symbol) FROM variant_occurrence",
    )
    .await;
    assert!(variants >= 5, "{variants} genes");
    assert!(sizes[0].column(1).null_count() == 0);
}

#[test]
fn generation_is_deterministic() {
    let dir = std::env::temp_dir().join(format!("ihdsi-determinism-{}", std::process::id()));
    let run = |sub: &str| {
        let out = dir.join(sub);
        ihdsi_synthetic::generate(&ihdsi_synthetic::GenerateOptions {
            out: out.clone(),
            persons: 500,
            ..Default::default()
        })
        .expect("generate");
        std::fs::read(out.join("kr").join("measurement.parquet")).expect("read")
    };
    assert_eq!(run("a"), run("b"));
    let _ = std::fs::remove_dir_all(&dir);
}
