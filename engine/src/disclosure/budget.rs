//! The differential-privacy budget gate: who pays, how much, and which
//! answers are already paid for. The coordinator runs a dp query's
//! releases through it (`coordinator::private`); the rules are here.
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
//!   average its noise away (A07) gains nothing. The cache lives in memory,
//!   bounded by bytes (`[resources] result_cache_mb`): after a restart, or
//!   once a release is evicted, a repeat is charged again, which is safe.

use std::sync::Mutex;

use datafusion::arrow::record_batch::RecordBatch;

use crate::cache::ByteBounded;
use crate::disclosure::noise::NoisePlan;
use crate::dp::{BudgetLedger, Charged, Rho};
use crate::error::{EngineError, Result};
use ihdsi_catalog::PrivacyPolicy;
use ihdsi_planner::Release;
use ihdsi_planner::release::aggregates::Merge;

/// Who a dp query is charged to, and their total budget.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Principal {
    /// `permit:<id>` or `analyst:<name>`.
    pub id: String,
    pub total: Rho,
}

/// A released table, as the analyst got it.
#[derive(Debug, Clone)]
pub(crate) struct CachedRelease {
    pub batch: RecordBatch,
    pub sites: Vec<String>,
    pub withheld_cells: Vec<u64>,
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
pub(crate) struct DpGate {
    ledger: BudgetLedger,
    cache: Mutex<ByteBounded<CachedRelease>>,
    policy: PrivacyPolicy,
}

impl DpGate {
    pub(crate) fn open(policy: &PrivacyPolicy, cache_bytes: usize) -> Result<Self> {
        let path = policy
            .dp
            .ledger
            .as_ref()
            .ok_or_else(|| EngineError::Internal("dp mode without a ledger".into()))?;
        Ok(Self {
            ledger: BudgetLedger::open(path)?,
            cache: Mutex::new(ByteBounded::new(cache_bytes)),
            policy: policy.clone(),
        })
    }

    /// Who pays for `analyst`'s query: the data permit it runs under (whose
    /// holder must be the analyst), or the analyst.
    pub(crate) fn principal(&self, analyst: &str, permit: Option<&str>) -> Result<Principal> {
        let default = Rho::from_f64_up(self.policy.dp.budget_rho)
            .ok_or_else(|| EngineError::Internal("budget out of range".into()))?;
        let Some(token) = permit else {
            return Ok(Principal {
                id: format!("analyst:{analyst}"),
                total: default,
            });
        };
        let (_, _, permit) = ihdsi_catalog::permit::decode(token)?;
        if permit.holder != analyst {
            return Err(EngineError::Permit(
                ihdsi_catalog::permit::PermitRefusal::WrongHolder {
                    id: permit.id,
                    holder: permit.holder,
                    analyst: analyst.to_string(),
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
    pub(crate) fn cost(&self, n: usize) -> Result<Rho> {
        Rho::from_f64_up(self.policy.dp.rho_per_release * n as f64)
            .ok_or_else(|| EngineError::Internal("cost out of range".into()))
    }

    /// The cache key of `release` for `principal` over `sites`. The privacy
    /// parameters are fixed for the life of the gate (and of its in-memory
    /// cache), so who asked over which sites, the canonical subplan and how
    /// its partials are merged tell two releases apart. The merges count:
    /// `avg(x)` and `sum(x), count(x)` send every site the same subplan but
    /// release different tables, and the cache holds the released table.
    pub(crate) fn key(&self, principal: &Principal, release: &Release, sites: &[String]) -> String {
        format!(
            "{}\u{1f}{}\u{1f}{}\u{1f}{:?}",
            principal.id,
            sites.join(","),
            release.site_sql,
            release.merges
        )
    }

    pub(crate) fn cached(&self, key: &str) -> Option<CachedRelease> {
        let cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        cache.get(key).cloned()
    }

    /// Keep `release` under `key`, evicting the oldest until it fits (a
    /// release larger than the whole cache is not kept).
    pub(crate) fn store(&self, key: String, release: CachedRelease) {
        let bytes = release.batch.get_array_memory_size();
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        let _ = cache.insert(key, release, bytes);
    }

    /// Reserve the cost of `n` releases for `principal`, durably, or refuse.
    pub(crate) fn charge(
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
    pub(crate) fn remaining(&self, principal: &Principal) -> Rho {
        Rho(principal
            .total
            .0
            .saturating_sub(self.ledger.spent(&principal.id).0))
    }

    /// The noise of each analyst aggregate of `release`, for the metadata.
    pub(crate) fn describe(&self, release: &Release) -> Result<serde_json::Value> {
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
pub(crate) fn metadata(receipt: &DpReceipt) -> Vec<(String, String)> {
    use crate::protocol::metadata as key;
    vec![
        (key::RHO_CHARGED.into(), receipt.charged.to_string()),
        (key::RHO_REMAINING.into(), receipt.remaining.to_string()),
        (key::RHO_TOTAL.into(), receipt.total.to_string()),
        (key::CACHED.into(), receipt.cached.to_string()),
        (key::NOISE.into(), receipt.noise.to_string()),
    ]
}
