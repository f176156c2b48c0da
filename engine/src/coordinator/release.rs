//! One release at its sites: the subplan sent to every site that hosts
//! its tables, each answer checked on its own, then merged and released
//! under the federation's rules (`crate::disclosure`).

use std::time::{Duration, Instant};

use datafusion::arrow::record_batch::RecordBatch;

use futures::future::BoxFuture;

use super::{Coordinator, QueryContext};
use crate::disclosure::budget::CachedRelease;
use crate::disclosure::mechanism::ReleaseRunner;
use crate::disclosure::plausibility::check_site_answer;
use crate::dp::OsUniform;
use crate::error::Result;
use crate::fanout::fan_out;
use crate::protocol::SubplanRequest;
use ihdsi_planner::Release;

impl Coordinator {
    pub(super) async fn run_release(
        &self,
        release: &Release,
        cx: &QueryContext,
    ) -> Result<ReleaseRun> {
        let sites = self.sites_for(release)?;
        let req = SubplanRequest {
            query_id: cx.query_id.clone(),
            analyst: cx.analyst.clone(),
            release: release.index,
            sql: release.site_sql.clone(),
            permit: cx.permit.clone(),
            bounding: self.policy.effective_bounding(),
            dominance: !release.dominance.is_empty(),
        };
        let sent = Instant::now();
        let answers = fan_out(&sites, &req, &cx.progress).await?;
        let fan_out = sent.elapsed();
        let merge_started = Instant::now();
        let slowest_site = answers.iter().map(|a| a.site_elapsed).max();
        let site_suppressed = answers.iter().map(|a| a.suppressed).sum();
        let bytes = answers.iter().map(|a| a.bytes).sum();
        for a in &answers {
            let declared = sites
                .iter()
                .find(|s| s.entry.id == a.site)
                .and_then(|s| s.entry.patients);
            check_site_answer(release, &a.site, declared, &a.batches)?;
        }
        let released = self
            .mechanism
            .release(release, &answers, &mut OsUniform::default())?;
        let merge_time = merge_started.elapsed();
        // The detector advises the stewards through the audit trail: with
        // no trail there is no one to advise, so no exact count is kept.
        if self.audit.is_some() {
            let flagged = self.mechanism.observe(cx, release, released.groups);
            self.audit_differencing(cx, flagged).await?;
        }
        let sites = answers.into_iter().map(|a| a.site).collect();
        Ok(ReleaseRun {
            batch: released.batch,
            withheld_cells: released.withheld_cells,
            suppressed: released.suppressed,
            site_suppressed,
            bytes,
            sites,
            fan_out,
            slowest_site: slowest_site.unwrap_or_default(),
            merge: merge_time,
        })
    }
}

/// The coordinator's side of the mechanism's [`ReleaseRunner`]: it runs
/// what the mechanism asks for, and nothing else.
impl ReleaseRunner for Coordinator {
    type Run = ReleaseRun;

    fn run<'a>(
        &'a self,
        release: &'a Release,
        cx: &'a QueryContext,
    ) -> BoxFuture<'a, Result<ReleaseRun>> {
        Box::pin(self.run_release(release, cx))
    }

    fn sites_of(&self, release: &Release) -> Result<Vec<String>> {
        Ok(self
            .sites_for(release)?
            .iter()
            .map(|s| s.entry.id.clone())
            .collect())
    }

    fn to_cache(run: &ReleaseRun) -> CachedRelease {
        CachedRelease {
            batch: run.batch.clone(),
            sites: run.sites.clone(),
            withheld_cells: run.withheld_cells.clone(),
        }
    }

    fn from_cache(c: CachedRelease) -> ReleaseRun {
        ReleaseRun {
            batch: c.batch,
            withheld_cells: c.withheld_cells,
            suppressed: 0,
            site_suppressed: 0,
            bytes: 0,
            sites: c.sites,
            fan_out: Duration::ZERO,
            slowest_site: Duration::ZERO,
            merge: Duration::ZERO,
        }
    }
}

#[derive(Debug)]
pub(crate) struct ReleaseRun {
    pub(crate) batch: RecordBatch,
    /// Per analyst aggregate: cells withheld under the rules.
    pub(super) withheld_cells: Vec<u64>,
    pub(super) suppressed: u64,
    pub(super) site_suppressed: u64,
    pub(super) bytes: u64,
    pub(super) sites: Vec<String>,
    pub(super) fan_out: Duration,
    pub(super) slowest_site: Duration,
    pub(super) merge: Duration,
}
