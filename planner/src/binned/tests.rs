//! The curve's release, as planned and as a site reads it back.

use datafusion::prelude::SessionContext;
use ihdsi_catalog::PrivacyPolicy;

use crate::{plan_query, register_virtual_schema};

const COHORT: &str = "(SELECT p.person_id, p.gender_concept_id AS sex, \
    max(op.observation_period_end_date) - min(op.observation_period_start_date) AS days, \
    max(CASE WHEN d.death_date IS NOT NULL THEN 1 ELSE 0 END) AS died \
    FROM person p JOIN observation_period op ON op.person_id = p.person_id \
    LEFT JOIN death d ON d.person_id = p.person_id GROUP BY p.person_id, p.gender_concept_id) c";

fn context() -> SessionContext {
    let ctx = SessionContext::new();
    register_virtual_schema(&ctx).expect("schema");
    ctx
}

/// The planner and every site agree that the release is on a time axis:
/// the site finds it in the SQL it receives.
#[tokio::test]
async fn a_site_reads_the_time_axis_back_from_the_sql() {
    let ctx = context();
    let sql =
        format!("SELECT sex, kaplan_meier(days, died, 30) AS curve FROM {COHORT} GROUP BY sex");
    let plan = plan_query(&ctx.state(), &sql, &PrivacyPolicy::default())
        .await
        .expect("planned");
    let [release] = plan.releases.as_slice() else {
        panic!("one release");
    };
    let axis = release.time_axis.expect("a time axis");
    let reparsed = ctx
        .state()
        .create_logical_plan(&release.site_sql)
        .await
        .expect("site SQL");
    let admitted = crate::admit_subplan(&reparsed, &PrivacyPolicy::default()).expect("admitted");
    assert_eq!(admitted.time_axis, Some(axis), "{}", release.site_sql);
}

#[tokio::test]
async fn widths_outside_the_limits_and_mixed_aggregates_are_refused() {
    let ctx = context();
    for (curve, why) in [
        ("kaplan_meier(days, died, 0)", "bin width"),
        ("kaplan_meier(days, died, 100000)", "bin width"),
        ("kaplan_meier(days, died, days)", "bin width"),
        (
            "kaplan_meier(days, died, 30), count(*)",
            "beside other aggregates",
        ),
        (
            "kaplan_meier(CAST(sex AS VARCHAR), died, 30)",
            "not a number",
        ),
    ] {
        let sql = format!("SELECT sex, {curve} FROM {COHORT} GROUP BY sex");
        refused(&ctx, &sql, why).await;
    }
    // Several rows per patient, however spelled: a join to a table of
    // many rows, a per-patient group with a key that varies, a UNION.
    for cohort in [
        "(SELECT p.gender_concept_id AS sex, op.observation_period_end_date - op.observation_period_start_date AS days, 1 AS died FROM person p JOIN observation_period op ON op.person_id = p.person_id) c",
        "(SELECT co.person_id, co.condition_concept_id AS sex, max(co.condition_start_date) - min(co.condition_start_date) AS days, 1 AS died FROM condition_occurrence co GROUP BY co.person_id, co.condition_concept_id) c",
        "(SELECT person_id, gender_concept_id AS sex, year_of_birth AS days, 1 AS died FROM person UNION ALL SELECT person_id, gender_concept_id, year_of_birth, 0 FROM person) c",
    ] {
        let sql = format!("SELECT sex, kaplan_meier(days, died, 30) FROM {cohort} GROUP BY sex");
        refused(&ctx, &sql, "one row per patient").await;
    }
}

async fn refused(ctx: &SessionContext, sql: &str, why: &str) {
    {
        let got = plan_query(&ctx.state(), sql, &PrivacyPolicy::default()).await;
        let message = got
            .map(|_| "admitted".to_string())
            .unwrap_or_else(|e| e.to_string());
        assert!(
            message.contains(why) && message.contains("A41"),
            "{sql}: {message}"
        );
    }
}
