//! `EXPLAIN` of a federated query: the releases, each site's SQL and the
//! rules that apply, without contacting a site (in dp mode also the dry
//! run of its cost).

use std::sync::Arc;

use datafusion::arrow::array::StringArray;
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::arrow::record_batch::RecordBatch;

use super::{Coordinator, QueryContext, QueryOutcome, QueryTimings};
use crate::error::Result;
use ihdsi_planner::FederatedPlan;
use ihdsi_planner::split::explain::explain_rows;

impl Coordinator {
    pub(super) fn explain(&self, plan: &FederatedPlan, cx: &QueryContext) -> Result<QueryOutcome> {
        let mut rows = explain_rows(
            plan,
            u64::try_from(self.policy.required_patients()).unwrap_or(u64::MAX),
            "set by each site",
        )?;
        rows.extend(self.mechanism.explain_rows(self, &plan.releases, cx)?);
        let schema = Arc::new(Schema::new(vec![
            Field::new("plan_type", DataType::Utf8, true),
            Field::new("plan", DataType::Utf8, true),
        ]));
        let batch = RecordBatch::try_new(
            Arc::clone(&schema),
            vec![
                Arc::new(StringArray::from_iter_values(
                    rows.iter().map(|r| r.0.as_str()),
                )),
                Arc::new(StringArray::from_iter_values(
                    rows.iter().map(|r| r.1.as_str()),
                )),
            ],
        )?;
        Ok(QueryOutcome {
            dp: None,
            query_id: cx.query_id.clone(),
            schema,
            batches: vec![batch],
            suppressed_groups: 0,
            site_suppressed_groups: 0,
            sites: vec![],
            bytes_from_sites: 0,
            timings: QueryTimings::default(),
            withheld_cells: Vec::new(),
        })
    }
}
