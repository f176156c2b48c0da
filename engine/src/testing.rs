//! Helpers shared by this crate's unit tests.

use datafusion::prelude::SessionContext;
use ihdsi_catalog::PrivacyPolicy;
use ihdsi_planner::{Release, plan_query, register_virtual_schema};

/// The first release of `sql`, planned over the virtual schema.
pub(crate) async fn first_release(sql: &str) -> Release {
    let ctx = SessionContext::new();
    register_virtual_schema(&ctx).expect("virtual schema");
    let plan = plan_query(&ctx.state(), sql, &PrivacyPolicy::default())
        .await
        .expect("plan");
    plan.releases[0].clone()
}
