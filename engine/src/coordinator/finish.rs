//! The end of a query: DataFusion runs the rest of the analyst's SQL over
//! the released tables, and the result gets the one schema (with its
//! metadata) that FlightInfo and DoGet both announce.

use std::sync::Arc;
use std::time::Instant;

use datafusion::arrow::datatypes::{Schema, SchemaRef};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::catalog::TableProvider;
use datafusion::datasource::MemTable;

use super::timings::micros;
use super::{Coordinator, QueryContext, QueryOutcome, QueryTimings, WithheldCells, metadata};
use crate::bounded::ExecutionBudget;
use crate::error::{EngineError, Result};
use ihdsi_planner::FederatedPlan;

impl Coordinator {
    pub(super) async fn run_plan(
        &self,
        plan: &FederatedPlan,
        cx: &QueryContext,
    ) -> Result<QueryOutcome> {
        let (released, dp) = self
            .mechanism
            .run_releases(self, &plan.releases, cx)
            .await?;
        let mut outcome = QueryOutcome {
            dp,
            query_id: cx.query_id.clone(),
            schema: Arc::new(Schema::empty()),
            batches: Vec::new(),
            suppressed_groups: 0,
            site_suppressed_groups: 0,
            sites: Vec::new(),
            bytes_from_sites: 0,
            timings: QueryTimings::default(),
            withheld_cells: Vec::new(),
        };
        let mut tables: Vec<Arc<dyn TableProvider>> = Vec::new();
        for (r, release) in released.into_iter().zip(&plan.releases) {
            let names = release.schema.fields().iter().skip(release.key_count);
            for (cells, name) in r.withheld_cells.iter().zip(names) {
                if *cells > 0 {
                    outcome.withheld_cells.push(WithheldCells {
                        release: release.index,
                        column: name.name().clone(),
                        cells: *cells,
                    });
                }
            }
            let t = &mut outcome.timings;
            t.sites = t.sites.max(r.fan_out);
            t.slowest_site = t.slowest_site.max(r.slowest_site);
            t.merge += r.merge;
            outcome.suppressed_groups += r.suppressed;
            outcome.site_suppressed_groups += r.site_suppressed;
            outcome.bytes_from_sites += r.bytes;
            for s in r.sites {
                if !outcome.sites.contains(&s) {
                    outcome.sites.push(s);
                }
            }
            tables.push(Arc::new(MemTable::try_new(
                r.batch.schema(),
                vec![vec![r.batch]],
            )?));
        }
        outcome.sites.sort();
        let finish_started = Instant::now();
        let logical = plan.coordinator_plan(&tables)?;
        let names = ihdsi_planner::split::explain::output_names(&logical);
        for w in &mut outcome.withheld_cells {
            if let Some(name) = names.get(&w.column) {
                w.column = name.clone();
            }
        }
        let budget = ExecutionBudget::for_coordinator(&self.resources);
        let batches =
            crate::bounded::collect::<EngineError>(&self.ctx.state(), logical, budget).await?;
        let (schema, batches) = self.finish_schema(plan, batches, &outcome)?;
        outcome.schema = schema;
        outcome.batches = batches;
        outcome.timings.finish = finish_started.elapsed();
        Ok(outcome)
    }

    /// The announced schema: the plan's fields, all nullable, plus metadata.
    /// FlightInfo and DoGet both use this one schema.
    fn finish_schema(
        &self,
        plan: &FederatedPlan,
        batches: Vec<RecordBatch>,
        o: &QueryOutcome,
    ) -> Result<(SchemaRef, Vec<RecordBatch>)> {
        let fields = plan.result_schema()?.fields().clone();
        let mut metadata = vec![
            (metadata::QUERY_ID.to_string(), o.query_id.clone()),
            (metadata::SITES.to_string(), o.sites.join(",")),
            (
                metadata::WITHHELD_CELLS.to_string(),
                serde_json::to_string(&o.withheld_cells).unwrap_or_else(|_| "[]".into()),
            ),
        ];
        metadata.extend(self.mechanism.result_metadata(
            o.suppressed_groups,
            o.site_suppressed_groups,
            o.dp.as_ref(),
        ));
        let schema = Arc::new(Schema::new(fields).with_metadata(metadata.into_iter().collect()));
        let batches = batches
            .into_iter()
            .map(|b| {
                RecordBatch::try_new(Arc::clone(&schema), b.columns().to_vec())
                    .map_err(EngineError::from)
            })
            .collect::<Result<Vec<_>>>()?;
        Ok((schema, batches))
    }
}

/// One structured line per answered query: what the analyst got, and where
/// the time went (the coordinator's operator reads these; `ihdsi-bench`
/// parses them).
pub(super) fn log_answered(cx: &QueryContext, o: &QueryOutcome) {
    let t = &o.timings;
    tracing::info!(
        query_id = cx.query_id,
        analyst = cx.analyst,
        suppressed = o.suppressed_groups,
        sites = o.sites.len(),
        bytes_from_sites = o.bytes_from_sites,
        planning_us = micros(t.planning),
        audit_us = micros(t.audit),
        sites_us = micros(t.sites),
        slowest_site_us = micros(t.slowest_site),
        transfer_us = micros(t.transfer()),
        merge_us = micros(t.merge),
        finish_us = micros(t.finish),
        "query answered"
    );
}
