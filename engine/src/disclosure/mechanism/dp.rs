//! Running a dp query's releases through the budget gate
//! ([`crate::disclosure::budget`]): cached releases answered free, the rest
//! charged before any site is contacted, run, and cached; and `EXPLAIN`'s
//! dry run of the cost.

use super::ReleaseRunner;
use crate::disclosure::budget::{DpGate, DpReceipt, Principal};
use crate::error::{EngineError, Result};
use crate::query::QueryContext;
use ihdsi_planner::Release;

/// The cache key of `release` for `principal`, over the sites it goes to.
fn release_key<R: ReleaseRunner>(
    gate: &DpGate,
    runner: &R,
    principal: &Principal,
    release: &Release,
) -> Result<String> {
    Ok(gate.key(principal, release, &runner.sites_of(release)?))
}

/// Run the releases of a dp query: answer cached ones from the cache,
/// charge the rest before any site is contacted, run them, cache them.
/// Any failure after the charge is reported generically.
pub(crate) async fn run_paid<R: ReleaseRunner>(
    gate: &DpGate,
    runner: &R,
    releases: &[Release],
    cx: &QueryContext,
) -> Result<(Vec<R::Run>, DpReceipt)> {
    let principal = gate.principal(&cx.analyst, cx.permit.as_deref())?;
    let mut keys = Vec::with_capacity(releases.len());
    let mut cached = Vec::with_capacity(releases.len());
    for r in releases {
        let key = release_key(gate, runner, &principal, r)?;
        cached.push(gate.cached(&key));
        keys.push(key);
    }
    let to_run = cached.iter().filter(|c| c.is_none()).count();
    let charged = gate.charge(&principal, &cx.query_id, to_run)?;
    tracing::info!(
        query_id = cx.query_id,
        principal = principal.id,
        releases = releases.len(),
        cached = releases.len() - to_run,
        rho_charged = %charged.cost,
        rho_remaining = %charged.remaining,
        "privacy budget charged"
    );
    let fresh = releases
        .iter()
        .zip(&cached)
        .filter(|(_, c)| c.is_none())
        .map(|(r, _)| runner.run(r, cx));
    let mut fresh = futures::future::try_join_all(fresh)
        .await
        .map_err(|e| {
            tracing::warn!(query_id = cx.query_id, error = %e, code = e.code(), "dp query failed after its charge");
            EngineError::RuntimeFailure {
                query_id: cx.query_id.clone(),
            }
        })?
        .into_iter();
    let mut runs = Vec::with_capacity(releases.len());
    let mut noise = Vec::with_capacity(releases.len());
    for ((r, key), hit) in releases.iter().zip(keys).zip(cached) {
        let run = match hit {
            Some(c) => R::from_cache(c),
            None => {
                let run = fresh
                    .next()
                    .ok_or_else(|| EngineError::Internal("release count changed".into()))?;
                gate.store(key, R::to_cache(&run));
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
        cached: releases.len() - to_run,
        noise: serde_json::Value::Array(noise),
    };
    Ok((runs, receipt))
}

/// `EXPLAIN` in dp mode is the dry run: what the query would cost, what
/// is left, and the noise, without charging or contacting a site.
pub(crate) fn dry_run<R: ReleaseRunner>(
    gate: &DpGate,
    runner: &R,
    releases: &[Release],
    cx: &QueryContext,
) -> Result<Vec<(String, String)>> {
    let principal = gate.principal(&cx.analyst, cx.permit.as_deref())?;
    let mut to_run = 0;
    let mut rows = Vec::new();
    for r in releases {
        if gate
            .cached(&release_key(gate, runner, &principal, r)?)
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
            releases.len() - to_run,
            principal.total,
            principal.id
        ),
    ));
    Ok(rows)
}
