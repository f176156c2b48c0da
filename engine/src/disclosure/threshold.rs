//! Threshold mode at the coordinator: the federation's minimum group size
//! on groups and on cells, the p% rule on cells, and rounding.

use super::dominance::{Dominance, PercentRule, SiteSpread, spread_dominated};
use crate::disclosure::finish::CountFinish;
use crate::error::Result;
use crate::fanout::SitePartials;
use crate::merge::{Group, Released, as_f64, build_output, merge_groups, moments};
use ihdsi_catalog::PrivacyPolicy;
use ihdsi_planner::Release;
use ihdsi_planner::release::aggregates::Merge;
use ihdsi_planner::release::cells::CellRef;

/// The partial columns an analyst aggregate is computed from.
pub(crate) fn partials_of(m: &Merge) -> Vec<usize> {
    match *m {
        Merge::Count(p) | Merge::Sum(p) | Merge::Min(p) | Merge::Max(p) => vec![p],
        Merge::Avg { sum, count } => vec![sum, count],
        Merge::Variance {
            count,
            mean,
            var_pop,
            ..
        } => vec![count, mean, var_pop],
    }
}

/// The exact distinct patients behind analyst aggregate `m` of group `g`:
/// the smallest count over the cells of its partials.
pub(crate) fn cell_patients(release: &Release, g: &Group, m: &Merge) -> i64 {
    partials_of(m)
        .into_iter()
        .flat_map(|p| {
            release
                .cells
                .per_partial
                .get(p)
                .cloned()
                .unwrap_or_default()
        })
        .map(|c| match c {
            CellRef::Group => g.patients,
            CellRef::Column(n) => g.cells.get(n).copied().unwrap_or(0),
        })
        .min()
        .unwrap_or(g.patients)
}

/// Whether analyst aggregate `m` of group `g` fails the p% rule.
fn dominated(release: &Release, g: &Group, m: &Merge, p: f64) -> Result<bool> {
    let partials = partials_of(m);
    for (n, e) in release.dominance.iter().enumerate() {
        if partials.contains(&e.partial) && entry_dominated(g, &g.summaries[n], e.spread, m, p)? {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Whether one dominance entry of `g` (its sites' summaries `per_site`)
/// fails the p% rule.
fn entry_dominated(
    g: &Group,
    per_site: &[Dominance],
    spread: bool,
    m: &Merge,
    p: f64,
) -> Result<bool> {
    Ok(match (spread, m) {
        (false, _) => {
            let mut merged = Dominance::default();
            per_site.iter().for_each(|d| merged.merge(*d));
            merged.dominated(p)
        }
        (
            true,
            Merge::Variance {
                count,
                mean,
                var_pop,
                ..
            },
        ) => {
            let (n_all, mu, m2) = moments(&g.rows, *count, *mean, *var_pop)?;
            if n_all == 0.0 {
                return Ok(false); // no values: the cell is withheld anyway
            }
            let sites: Vec<SiteSpread> = per_site
                .iter()
                .zip(&g.rows)
                .filter_map(|(d, row)| {
                    as_f64(&row[*mean]).map(|mean| SiteSpread { summary: *d, mean })
                })
                .collect();
            spread_dominated(p, &sites, mu, m2)
        }
        // A spread entry belongs to a variance's partials only.
        (true, _) => true,
    })
}

/// Merge, threshold and round one release under the federation's policy.
pub(crate) fn release(
    release: &Release,
    answers: &[SitePartials],
    policy: &PrivacyPolicy,
) -> Result<Released> {
    let (mut groups, before) = merge_groups(release, answers)?;
    let k = policy.required_patients();
    groups.retain(|g| g.patients >= k);
    let suppressed = (before - groups.len()) as u64;
    for g in &mut groups {
        for (a, m) in release.merges.iter().enumerate() {
            g.withheld[a] = cell_patients(release, g, m) < k
                || match policy.dominance() {
                    Some(p) => dominated(release, g, m, p)?,
                    None => false,
                };
        }
    }
    let counted: Vec<_> = groups
        .iter()
        .map(|g| (g.keys.clone(), g.patients))
        .collect();
    let groups = super::with_scalar_row(release, groups);
    let batch = build_output(release, &groups, |v| {
        CountFinish::Round(policy.round_counts_to).apply(v)
    })?;
    Ok(Released {
        batch,
        suppressed,
        groups: counted,
        withheld_cells: super::withheld_cells(release, &groups),
    })
}
