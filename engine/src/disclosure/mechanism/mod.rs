//! The federation's release mechanism, threshold or dp, chosen once at
//! start-up from its policy. Every place where the coordinator behaves
//! differently between the modes calls down into it here, so that no other
//! file of the engine branches on the mode.
//!
//! | | threshold | dp |
//! |---|---|---|
//! | response time | as fast as possible | fixed deadline after arrival |
//! | per-site progress | shown | hidden (it times each site's work, A16) |
//! | running the releases | all at once | cache, charge the budget, run the rest, cache ([`dp`]) |
//! | releasing one | groups and cells under k withheld, p% rule, counts rounded | noisy selection, noise on every partial total, counts floored at 0 |
//! | after a release | differencing detector (advisory) | nothing: exact counts are never kept |
//! | `EXPLAIN` | the plan | the plan and the dry run of its cost |
//! | result metadata | rounding, suppressed counts if reported | the receipt: ρ charged, left, noise |
//!
//! The coordinator only runs what the mechanism asks for, through the
//! narrow [`ReleaseRunner`] face: it never sees the budget gate, the
//! detector or the rules.

pub(crate) mod dp;

use std::time::Duration;

use futures::future::BoxFuture;

use super::budget::{self, CachedRelease, DpGate, DpReceipt};
use super::differencing::DifferencingDetector;
use super::{NoisePlan, survival, threshold};
use crate::dp::Uniform;
use crate::error::Result;
use crate::fanout::SitePartials;
use crate::merge::{GroupCount, Released};
use crate::protocol::metadata;
use crate::query::QueryContext;
use ihdsi_catalog::{PrivacyMode, PrivacyPolicy};
use ihdsi_planner::Release;

/// What the mechanism needs from whoever runs releases at the sites (the
/// coordinator): running one, naming its sites, and the shape a paid-for
/// run is cached in.
pub(crate) trait ReleaseRunner: Sync {
    /// One release's outcome, as the runner keeps it.
    type Run: Send;
    /// Run `release` at its sites; the runner releases it through
    /// [`Mechanism::release`].
    fn run<'a>(
        &'a self,
        release: &'a Release,
        cx: &'a QueryContext,
    ) -> BoxFuture<'a, Result<Self::Run>>;
    /// The sites `release` goes to (part of a dp cache key).
    fn sites_of(&self, release: &Release) -> Result<Vec<String>>;
    /// A run as the dp cache keeps it.
    fn to_cache(run: &Self::Run) -> CachedRelease;
    /// A run answered from the dp cache: no site was contacted.
    fn from_cache(cached: CachedRelease) -> Self::Run;
}

/// Threshold or dp, with what each needs.
#[derive(Debug)]
enum Kind {
    /// Exact answers under thresholds.
    Threshold {
        /// Flags pairs of releases that differ by fewer than k patients.
        differencing: DifferencingDetector,
    },
    /// Noised answers, charged to a budget, at a fixed response time.
    Dp {
        gate: Box<DpGate>,
        /// `privacy.dp.response_ms` (`None` when 0, in tests only).
        response: Option<Duration>,
    },
}

/// The federation's release mechanism; see the module.
#[derive(Debug)]
pub struct Mechanism {
    policy: PrivacyPolicy,
    kind: Kind,
}

impl Mechanism {
    /// The mechanism `policy` asks for; in dp mode, paid-for releases are
    /// cached up to `cache_bytes`.
    pub fn open(policy: &PrivacyPolicy, cache_bytes: usize) -> Result<Self> {
        let kind = match policy.mode {
            PrivacyMode::Threshold => Kind::Threshold {
                differencing: DifferencingDetector::new(policy.min_group_size),
            },
            PrivacyMode::Dp => Kind::Dp {
                gate: Box::new(DpGate::open(policy, cache_bytes)?),
                response: (policy.dp.response_ms > 0)
                    .then(|| Duration::from_millis(policy.dp.response_ms)),
            },
        };
        Ok(Self {
            policy: policy.clone(),
            kind,
        })
    }

    /// When an admitted query's answer (or failure) leaves, counted from
    /// now, its arrival: in dp mode a fixed time later, whatever the data.
    pub fn deadline(&self) -> Option<tokio::time::Instant> {
        match &self.kind {
            Kind::Dp {
                response: Some(d), ..
            } => Some(tokio::time::Instant::now() + *d),
            _ => None,
        }
    }

    /// Whether an analyst may follow a running query's per-site progress:
    /// not in dp mode, where it would time each site's work on the data.
    pub fn shows_progress(&self) -> bool {
        matches!(self.kind, Kind::Threshold { .. })
    }

    /// Merge the sites' answers for `release` and keep what may be
    /// released.
    pub(crate) fn release<U: Uniform>(
        &self,
        release: &Release,
        answers: &[SitePartials],
        u: &mut U,
    ) -> Result<Released> {
        let policy = &self.policy;
        match (&self.kind, release.time_axis) {
            (Kind::Threshold { .. }, Some(axis)) => {
                survival::merged::release_threshold(release, axis, answers, policy)
            }
            (Kind::Dp { .. }, Some(axis)) => {
                survival::merged::release_dp(release, axis, answers, policy, u)
            }
            (Kind::Threshold { .. }, None) => threshold::release(release, answers, policy),
            (Kind::Dp { .. }, None) => {
                NoisePlan::for_release(release, policy)?.release(release, answers, u)
            }
        }
    }

    /// Run every release of a query through `runner`: all at once in
    /// threshold mode; in dp mode through the budget gate ([`dp`]).
    pub(crate) async fn run_releases<R: ReleaseRunner>(
        &self,
        runner: &R,
        releases: &[Release],
        cx: &QueryContext,
    ) -> Result<(Vec<R::Run>, Option<DpReceipt>)> {
        match &self.kind {
            Kind::Threshold { .. } => {
                let runs = releases.iter().map(|r| runner.run(r, cx));
                Ok((futures::future::try_join_all(runs).await?, None))
            }
            Kind::Dp { gate, .. } => {
                let (runs, receipt) = dp::run_paid(gate, runner, releases, cx).await?;
                Ok((runs, Some(receipt)))
            }
        }
    }

    /// What is kept of a release's exact group counts: in threshold mode
    /// the differencing detector sees them and names the earlier queries
    /// of `cx`'s analyst they pair with (for the audit trail); in dp mode
    /// nothing does.
    pub(crate) fn observe(
        &self,
        cx: &QueryContext,
        release: &Release,
        groups: Vec<GroupCount>,
    ) -> Vec<String> {
        match &self.kind {
            Kind::Threshold { differencing } => {
                differencing.observe(&cx.analyst, &cx.query_id, release, groups)
            }
            Kind::Dp { .. } => Vec::new(),
        }
    }

    /// `EXPLAIN`'s rows beyond the plan: in dp mode, the dry run.
    pub(crate) fn explain_rows<R: ReleaseRunner>(
        &self,
        runner: &R,
        releases: &[Release],
        cx: &QueryContext,
    ) -> Result<Vec<(String, String)>> {
        match &self.kind {
            Kind::Threshold { .. } => Ok(Vec::new()),
            Kind::Dp { gate, .. } => dp::dry_run(gate, runner, releases, cx),
        }
    }

    /// The result metadata the mechanism decides: the mode, and in
    /// threshold mode the rounding and (only when the policy reports them)
    /// the suppressed-group counts, which tell that a small group exists
    /// (A17); in dp mode the receipt.
    pub(crate) fn result_metadata(
        &self,
        suppressed: u64,
        site_suppressed: u64,
        receipt: Option<&DpReceipt>,
    ) -> Vec<(String, String)> {
        let mut pairs = vec![(
            metadata::PRIVACY_MODE.to_string(),
            self.policy.mode.as_str().to_string(),
        )];
        if let Some(receipt) = receipt {
            pairs.extend(budget::metadata(receipt));
            return pairs;
        }
        pairs.push((
            metadata::COUNTS_ROUNDED_TO.to_string(),
            self.policy.round_counts_to.to_string(),
        ));
        if self.policy.report_suppressed {
            pairs.extend([
                (metadata::SUPPRESSED.to_string(), suppressed.to_string()),
                (
                    metadata::SITE_SUPPRESSED.to_string(),
                    site_suppressed.to_string(),
                ),
            ]);
        }
        pairs
    }
}
