//! What may leave a site, and what may leave the federation, under which
//! rule: every release-time rule of the engine, in one place.
//!
//! ```text
//!  site:         admitted subplan ─► partials, group count, cell counts,
//!                                    dominance summaries
//!                ─► site::release    groups under the site's k dropped,
//!                                    cells under the site's k withheld
//!  coordinator:  merge (crate::merge, no rules)
//!                ─► Mechanism::release
//!                     threshold: groups under k·S dropped; cells under k·S
//!                                and cells failing the p% rule withheld;
//!                                counts rounded
//!                     dp:        noisy group selection, noise on every
//!                                partial total
//! ```
//!
//! **Groups and cells.** A group's threshold counts the distinct patients
//! of the whole group; every cell of a released group counts its own
//! ([`ihdsi_planner::partials::cells`]): those whose rows pass the aggregate's
//! FILTER and give it a value (for sums and averages a non-zero value of
//! each term). A cell under the threshold is **withheld**: released as
//! NULL, with the rest of its group. Withholding the cell rather than the
//! group keeps the group's other numbers, each of which rests on its own
//! patients; withholding the whole group would protect nothing more,
//! since the small cell's patients are not visible in the other cells.
//! Zero is withheld like 1 to k−1 (a count that shows 0 but hides 1 would
//! let bisection on a value find the largest one exactly). The same holds
//! for cells that fail the p% rule ([`dominance`]). An aggregate without
//! `GROUP BY` keeps its one row even when its group is withheld, every
//! cell NULL ([`with_scalar_row`]), and the result's metadata counts the
//! withheld cells per column ([`withheld_cells`]).
//!
//! **dp mode** withholds no cell on its exact count: an exact gate is
//! itself a deterministic release (a cell of k − 1 patients would be NULL,
//! one of k not). Every partial total is noised instead, with the
//! contribution of one patient bounded ([`noise`]), which protects
//! conditional cells as much as any other.
//!
//! Two more rules live here because they judge what sites send and what
//! the federation releases: [`plausibility`] (each site's answer checked
//! on its own before merging: no numbers real data cannot produce) and
//! [`differencing`] (an advisory detector that puts pairs of releases
//! differing by fewer than k patients on the audit trail).
//!
//! The mode itself is one value, the [`Mechanism`]: the response deadline,
//! whether progress is shown, running releases (in dp mode through the
//! budget gate, [`budget`]: who pays, the ledger charge before any site
//! runs, the cache of paid-for releases), releasing each, what is observed
//! for differencing, `EXPLAIN`'s dry run and the result metadata. The
//! coordinator only calls down into it; rounding and the flooring of noisy
//! counts ([`finish`]) are handed to the merge as a closure.
//!
//! What this layer does not decide: which SQL is admitted at all (the
//! planner's `admission`) and contribution bounding (the planner's
//! `partials::bounding`, applied by each site).

pub mod budget;
pub mod differencing;
pub mod dominance;
pub(crate) mod finish;
pub mod mechanism;
pub mod noise;
pub mod plausibility;
pub mod site;
pub mod survival;
pub(crate) mod threshold;

use crate::merge::Group;
use ihdsi_planner::Release;
pub use mechanism::Mechanism;
pub use noise::{ColumnNoise, NoisePlan};

/// The released groups of `release` as the analyst gets them, in both
/// modes: an aggregate without `GROUP BY` always has its one row, as in
/// SQL; when its group is withheld (under k, or not selected in dp mode)
/// the row's cells are all NULL, which a client shows as blanks rather than
/// as no data at all. The row's existence says nothing: SQL gives it
/// whatever the data.
pub(crate) fn with_scalar_row(release: &Release, mut groups: Vec<Group>) -> Vec<Group> {
    if release.key_count == 0 && groups.is_empty() {
        let mut row = Group::empty(release);
        row.withheld.iter_mut().for_each(|w| *w = true);
        groups.push(row);
    }
    groups
}

/// Per analyst aggregate, the cells of `groups` withheld under the rules:
/// the result's `ihdsi.withheld_cells`, which tells a withheld cell from a
/// NULL of the data. It counts cells of released groups only, which the
/// analyst sees as NULL anyway.
pub(crate) fn withheld_cells(release: &Release, groups: &[Group]) -> Vec<u64> {
    (0..release.merges.len())
        .map(|a| {
            groups
                .iter()
                .filter(|g| g.withheld.get(a).copied().unwrap_or(false))
                .count() as u64
        })
        .collect()
}
