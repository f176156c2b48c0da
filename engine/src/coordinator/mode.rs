//! The federation's privacy mode as one value, chosen at start-up from its
//! policy: every place where the coordinator behaves differently in dp
//! mode asks it here, so that no other file branches on the mode.
//!
//! | | threshold | dp |
//! |---|---|---|
//! | response time | as fast as possible | fixed deadline after arrival |
//! | running the releases | all at once | cache, charge the budget, run the rest, cache |
//! | after a release | differencing detector (advisory) | nothing: exact counts are never kept |
//! | `EXPLAIN` | the plan | the plan and the dry run of its cost |
//! | result metadata | rounding, suppressed counts if reported | the receipt: ρ charged, left, noise |
//!
//! The release rules themselves (thresholds, p%, noise) are the disclosure
//! layer's (`crate::disclosure::Disclosure`), chosen from the same policy.

use std::time::Duration;

use super::release::ReleaseRun;
use super::{Coordinator, DpReceipt, QueryContext, QueryOutcome, metadata};
use crate::disclosure::budget;
use crate::disclosure::differencing::DifferencingDetector;
use crate::error::Result;
use crate::merge::GroupCount;
use ihdsi_catalog::{PrivacyMode, PrivacyPolicy};
use ihdsi_planner::{FederatedPlan, Release};

/// Threshold or dp mode, with what each needs.
pub(super) enum Mode {
    /// Exact answers under thresholds.
    Threshold {
        /// Flags pairs of releases that differ by fewer than k patients.
        differencing: DifferencingDetector,
    },
    /// Noised answers, charged to a budget, at a fixed response time.
    Dp {
        gate: Box<budget::DpGate>,
        /// `privacy.dp.response_ms` (`None` when 0, in tests only).
        response: Option<Duration>,
    },
}

impl Mode {
    /// The mode `policy` asks for; in dp mode, paid-for releases are
    /// cached up to `cache_bytes`.
    pub(super) fn open(policy: &PrivacyPolicy, cache_bytes: usize) -> Result<Self> {
        Ok(match policy.mode {
            PrivacyMode::Threshold => Mode::Threshold {
                differencing: DifferencingDetector::new(policy.min_group_size),
            },
            PrivacyMode::Dp => Mode::Dp {
                gate: Box::new(budget::DpGate::open(policy, cache_bytes)?),
                response: (policy.dp.response_ms > 0)
                    .then(|| Duration::from_millis(policy.dp.response_ms)),
            },
        })
    }

    /// When an admitted query's answer (or failure) leaves, counted from
    /// now, its arrival: in dp mode a fixed time later, whatever the data.
    pub(super) fn deadline(&self) -> Option<tokio::time::Instant> {
        match self {
            Mode::Dp {
                response: Some(d), ..
            } => Some(tokio::time::Instant::now() + *d),
            _ => None,
        }
    }

    /// Run every release of `plan`.
    pub(super) async fn run_releases(
        &self,
        c: &Coordinator,
        plan: &FederatedPlan,
        cx: &QueryContext,
    ) -> Result<(Vec<ReleaseRun>, Option<DpReceipt>)> {
        match self {
            Mode::Threshold { .. } => {
                let runs = plan.releases.iter().map(|r| c.run_release(r, cx));
                Ok((futures::future::try_join_all(runs).await?, None))
            }
            Mode::Dp { gate, .. } => {
                let (runs, receipt) = Box::pin(c.run_private(gate, plan, cx)).await?;
                Ok((runs, Some(receipt)))
            }
        }
    }

    /// What the coordinator keeps of a release's exact group counts: in
    /// threshold mode the differencing detector sees them; in dp mode
    /// nothing does.
    pub(super) async fn observe(
        &self,
        c: &Coordinator,
        cx: &QueryContext,
        release: &Release,
        groups: Vec<GroupCount>,
    ) -> Result<()> {
        match self {
            Mode::Threshold { differencing } => {
                c.flag_differencing(differencing, cx, release, groups).await
            }
            Mode::Dp { .. } => Ok(()),
        }
    }

    /// `EXPLAIN`'s rows beyond the plan: in dp mode, the dry run.
    pub(super) fn explain_rows(
        &self,
        c: &Coordinator,
        plan: &FederatedPlan,
        cx: &QueryContext,
    ) -> Result<Vec<(String, String)>> {
        match self {
            Mode::Threshold { .. } => Ok(Vec::new()),
            Mode::Dp { gate, .. } => c.dry_run(gate, plan, cx),
        }
    }

    /// The result metadata that depends on the mode. How many groups were
    /// withheld is not released in dp mode, nor by default in threshold
    /// mode: the count itself tells that a small group exists (A17).
    pub(super) fn result_metadata(
        &self,
        policy: &PrivacyPolicy,
        o: &QueryOutcome,
    ) -> Vec<(String, String)> {
        if let Some(receipt) = &o.dp {
            return budget::metadata(receipt);
        }
        let mut pairs = vec![(
            metadata::COUNTS_ROUNDED_TO.to_string(),
            policy.round_counts_to.to_string(),
        )];
        if policy.report_suppressed {
            pairs.extend([
                (
                    metadata::SUPPRESSED.to_string(),
                    o.suppressed_groups.to_string(),
                ),
                (
                    metadata::SITE_SUPPRESSED.to_string(),
                    o.site_suppressed_groups.to_string(),
                ),
            ]);
        }
        pairs
    }
}
