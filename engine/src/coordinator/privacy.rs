//! The coordinator's differential-privacy gate: who pays, how much, and
//! which answers are already paid for.
//!
//! * **Principal.** Budgets belong to data permits (the EHDS unit of
//!   access); an analyst querying without a permit has a budget of their own.
//!   Several accounts on one permit share its budget.
//! * **Charge before anything runs.** The cost of every release not in the
//!   cache is reserved in the ledger (durably, atomically) before any site
//!   is contacted, and is never refunded: a failure after the sites ran can
//!   still carry information.
//! * **Cache.** A release whose canonical subplan, sites and privacy
//!   parameters equal one already released to the same principal is answered
//!   from the cache, identical to the byte and free. Repeating a query to
//!   average its noise away (A07) gains nothing. The cache lives in memory:
//!   after a restart a repeat is charged again, which is safe.

use std::collections::HashMap;
use std::sync::Mutex;

use datafusion::arrow::record_batch::RecordBatch;

use crate::coordinator::QueryContext;
use crate::dp::{BudgetLedger, Charged, NoisePlan, Rho};
use crate::error::{EngineError, Result};
use ihdsi_catalog::PrivacyPolicy;
use ihdsi_planner::Release;
use ihdsi_planner::aggregates::Merge;

/// Most releases kept per coordinator; an evicted release costs again.
const CACHE_CAPACITY: usize = 10_000;

/// Who a dp query is charged to, and their total budget.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Principal {
    /// `permit:<id>` or `analyst:<name>`.
    pub id: String,
    pub total: Rho,
}

/// A released table, as the analyst got it.
#[derive(Debug, Clone)]
pub(super) struct CachedRelease {
    pub batch: RecordBatch,
    pub sites: Vec<String>,
}

/// What a dp query cost, for the result's metadata.
#[derive(Debug, Clone, PartialEq)]
pub struct DpReceipt {
    pub charged: Rho,
    pub remaining: Rho,
    pub total: Rho,
    /// Releases answered from the cache, free.
    pub cached: usize,
    /// `[{release, column, noise_sd | sum_noise_sd + count_noise_sd}]`,
    /// plus each release's noisy threshold.
    pub noise: serde_json::Value,
}

/// The ledger and the cache of one coordinator in dp mode.
#[derive(Debug)]
pub(super) struct DpGate {
    ledger: BudgetLedger,
    cache: Mutex<HashMap<String, CachedRelease>>,
    policy: PrivacyPolicy,
}

impl DpGate {
    pub(super) fn open(policy: &PrivacyPolicy) -> Result<Self> {
        let path = policy
            .dp
            .ledger
            .as_ref()
            .ok_or_else(|| EngineError::Internal("dp mode without a ledger".into()))?;
        Ok(Self {
            ledger: BudgetLedger::open(path)?,
            cache: Mutex::new(HashMap::new()),
            policy: policy.clone(),
        })
    }

    /// The principal of `cx`: its permit (whose holder must be the analyst),
    /// or the analyst.
    pub(super) fn principal(&self, cx: &QueryContext) -> Result<Principal> {
        let default = Rho::from_f64_up(self.policy.dp.budget_rho)
            .ok_or_else(|| EngineError::Internal("budget out of range".into()))?;
        let Some(token) = &cx.permit else {
            return Ok(Principal {
                id: format!("analyst:{}", cx.analyst),
                total: default,
            });
        };
        let (_, _, permit) = ihdsi_catalog::permit::decode(token)?;
        if permit.holder != cx.analyst {
            return Err(EngineError::Permit(
                ihdsi_catalog::permit::PermitRefusal::WrongHolder {
                    id: permit.id,
                    holder: permit.holder,
                    analyst: cx.analyst.clone(),
                },
            ));
        }
        let total = match permit.budget_rho {
            Some(rho) => Rho::from_f64_up(rho)
                .ok_or_else(|| EngineError::Internal("permit budget out of range".into()))?,
            None => default,
        };
        Ok(Principal {
            id: format!("permit:{}", permit.id),
            total,
        })
    }

    /// The cost of running `n` releases.
    pub(super) fn cost(&self, n: usize) -> Result<Rho> {
        Rho::from_f64_up(self.policy.dp.rho_per_release * n as f64)
            .ok_or_else(|| EngineError::Internal("cost out of range".into()))
    }

    /// The cache key of `release` for `principal` over `sites`. The privacy
    /// parameters are fixed for the life of the gate (and of its in-memory
    /// cache), so the canonical subplan and who asked over which sites is
    /// all that tells two releases apart.
    pub(super) fn key(&self, principal: &Principal, release: &Release, sites: &[String]) -> String {
        format!(
            "{}\u{1f}{}\u{1f}{}",
            principal.id,
            sites.join(","),
            release.site_sql
        )
    }

    pub(super) fn cached(&self, key: &str) -> Option<CachedRelease> {
        let cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        cache.get(key).cloned()
    }

    pub(super) fn store(&self, key: String, release: CachedRelease) {
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        if cache.len() >= CACHE_CAPACITY && !cache.contains_key(&key) {
            cache.clear();
        }
        cache.insert(key, release);
    }

    /// Reserve the cost of `n` releases for `principal`, durably, or refuse.
    pub(super) fn charge(
        &self,
        principal: &Principal,
        query_id: &str,
        n: usize,
    ) -> Result<Charged> {
        let cost = self.cost(n)?;
        Ok(self
            .ledger
            .charge(&principal.id, query_id, cost, principal.total)?)
    }

    /// What `principal` has left, without charging (dry run).
    pub(super) fn remaining(&self, principal: &Principal) -> Rho {
        Rho(principal
            .total
            .0
            .saturating_sub(self.ledger.spent(&principal.id).0))
    }

    /// The noise of each analyst aggregate of `release`, for the metadata.
    pub(super) fn describe(&self, release: &Release) -> Result<serde_json::Value> {
        let plan = NoisePlan::for_release(release, &self.policy)?;
        let names: Vec<String> = release
            .schema
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect();
        let columns: Vec<serde_json::Value> = release
            .merges
            .iter()
            .enumerate()
            .map(|(i, m)| {
                let name = names
                    .get(release.key_count + i)
                    .cloned()
                    .unwrap_or_default();
                let sd = |j: usize| plan.columns.get(j).map(|c| c.sd).unwrap_or(f64::NAN);
                match m {
                    Merge::Avg { sum, count } => serde_json::json!({
                        "column": name, "sum_noise_sd": sd(*sum), "count_noise_sd": sd(*count)
                    }),
                    Merge::Count(j) | Merge::Sum(j) => {
                        serde_json::json!({"column": name, "noise_sd": sd(*j)})
                    }
                    _ => serde_json::json!({"column": name}),
                }
            })
            .collect();
        Ok(serde_json::json!({
            "release": release.index,
            "columns": columns,
            "min_group_size": plan.min_group_size,
            "noisy_threshold": plan.threshold,
            "patients_noise_sd": plan.patients.sd,
        }))
    }
}

/// The dp keys of a result's schema metadata.
pub(super) fn metadata(receipt: &DpReceipt) -> Vec<(String, String)> {
    use super::metadata as key;
    vec![
        (key::RHO_CHARGED.into(), receipt.charged.to_string()),
        (key::RHO_REMAINING.into(), receipt.remaining.to_string()),
        (key::RHO_TOTAL.into(), receipt.total.to_string()),
        (key::CACHED.into(), receipt.cached.to_string()),
        (key::NOISE.into(), receipt.noise.to_string()),
    ]
}

impl super::Coordinator {
    /// The cache key of `release` for `principal`, over the sites it goes to.
    fn release_key(
        &self,
        gate: &DpGate,
        principal: &Principal,
        release: &Release,
    ) -> Result<String> {
        let sites: Vec<String> = self
            .sites_for(release)?
            .iter()
            .map(|s| s.entry.id.clone())
            .collect();
        Ok(gate.key(principal, release, &sites))
    }

    /// Run the releases of a dp query: answer cached ones from the cache,
    /// charge the rest before any site is contacted, run them, cache them.
    /// Any failure after the charge is reported generically.
    pub(super) async fn run_private(
        &self,
        gate: &DpGate,
        plan: &ihdsi_planner::FederatedPlan,
        cx: &QueryContext,
    ) -> Result<(Vec<super::ReleaseRun>, DpReceipt)> {
        let principal = gate.principal(cx)?;
        let mut keys = Vec::with_capacity(plan.releases.len());
        let mut cached = Vec::with_capacity(plan.releases.len());
        for r in &plan.releases {
            let key = self.release_key(gate, &principal, r)?;
            cached.push(gate.cached(&key));
            keys.push(key);
        }
        let to_run = cached.iter().filter(|c| c.is_none()).count();
        let charged = gate.charge(&principal, &cx.query_id, to_run)?;
        tracing::info!(
            query_id = cx.query_id,
            principal = principal.id,
            releases = plan.releases.len(),
            cached = plan.releases.len() - to_run,
            rho_charged = %charged.cost,
            rho_remaining = %charged.remaining,
            "privacy budget charged"
        );
        let fresh = plan
            .releases
            .iter()
            .zip(&cached)
            .filter(|(_, c)| c.is_none())
            .map(|(r, _)| self.run_release(r, cx));
        let mut fresh = futures::future::try_join_all(fresh)
            .await
            .map_err(|e| {
                tracing::warn!(query_id = cx.query_id, error = %e, code = e.code(), "dp query failed after its charge");
                EngineError::RuntimeFailure {
                    query_id: cx.query_id.clone(),
                }
            })?
            .into_iter();
        let mut runs = Vec::with_capacity(plan.releases.len());
        let mut noise = Vec::with_capacity(plan.releases.len());
        for ((r, key), hit) in plan.releases.iter().zip(keys).zip(cached) {
            let run = match hit {
                Some(c) => super::ReleaseRun::cached(c),
                None => {
                    let run = fresh
                        .next()
                        .ok_or_else(|| EngineError::Internal("release count changed".into()))?;
                    gate.store(
                        key,
                        CachedRelease {
                            batch: run.batch.clone(),
                            sites: run.sites.clone(),
                        },
                    );
                    run
                }
            };
            noise.push(gate.describe(r)?);
            runs.push(run);
        }
        let receipt = DpReceipt {
            charged: charged.cost,
            remaining: charged.remaining,
            total: principal.total,
            cached: plan.releases.len() - to_run,
            noise: serde_json::Value::Array(noise),
        };
        Ok((runs, receipt))
    }

    /// `EXPLAIN` in dp mode is the dry run: what the query would cost, what
    /// is left, and the noise, without charging or contacting a site.
    pub(super) fn dry_run(
        &self,
        gate: &DpGate,
        plan: &ihdsi_planner::FederatedPlan,
        cx: &QueryContext,
    ) -> Result<Vec<(String, String)>> {
        let principal = gate.principal(cx)?;
        let mut to_run = 0;
        let mut rows = Vec::new();
        for r in &plan.releases {
            if gate
                .cached(&self.release_key(gate, &principal, r)?)
                .is_none()
            {
                to_run += 1;
            }
            rows.push((
                format!("dp_noise[{}]", r.index),
                gate.describe(r)?.to_string(),
            ));
        }
        let cost = gate.cost(to_run)?;
        let remaining = gate.remaining(&principal);
        let verdict = if cost <= remaining {
            "fits"
        } else {
            "exceeds the remaining budget"
        };
        rows.push((
            "dp_cost".into(),
            format!(
                "ρ = {cost} for {to_run} release(s) not yet cached ({} cached, free); {remaining} of {} remain for {}: the query {verdict}",
                plan.releases.len() - to_run,
                principal.total,
                principal.id
            ),
        ));
        Ok(rows)
    }
}
