//! Helpers shared by this crate's unit tests.

use datafusion::prelude::SessionContext;
use ihdsi_catalog::PrivacyPolicy;
use ihdsi_planner::{Release, plan_query, register_virtual_schema};

/// The first release of `sql`, planned over the virtual schema with the
/// default policy but the dominance rule off.
pub(crate) async fn first_release(sql: &str) -> Release {
    let policy = PrivacyPolicy {
        dominance_p: 0.0,
        ..PrivacyPolicy::default()
    };
    release_under(sql, &policy).await
}

/// The first release of `sql` as planned under `policy`.
pub(crate) async fn release_under(sql: &str, policy: &PrivacyPolicy) -> Release {
    let ctx = SessionContext::new();
    register_virtual_schema(&ctx).expect("virtual schema");
    let plan = plan_query(&ctx.state(), sql, policy).await.expect("plan");
    plan.releases[0].clone()
}
