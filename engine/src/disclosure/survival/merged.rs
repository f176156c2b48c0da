//! The time-axis rule at the coordinator, on the bins merged across sites:
//! in threshold mode on their exact counts with the federation's k·S; in
//! dp mode on their noisy counts, after the release's noise (coarsening
//! noisy counts is post-processing: it costs no budget).

use std::cmp::Ordering;

use ihdsi_catalog::PrivacyPolicy;
use ihdsi_planner::Release;
use ihdsi_planner::release::aggregates::Merge;
use ihdsi_planner::release::axis::TimeAxis;

use super::{Departures, released};
use crate::disclosure::finish::CountFinish;
use crate::disclosure::noise::NoisePlan;
use crate::disclosure::threshold::cell_patients;
use crate::dp::Uniform;
use crate::error::{EngineError, Result};
use crate::fanout::SitePartials;
use crate::merge::{Group, Released, as_i64, build_output, merge_groups};

/// The merged bins of `release` on a curve; a NULL bin holds the patients
/// without a follow-up time, who are not on it. (Rows and patients are
/// not compared: a NULL or repeated `person_id` would make a data-dependent
/// error of it; the patients, exact or noisy, are what the rule reads.)
fn merged_bins(release: &Release, answers: &[SitePartials]) -> Result<Vec<Group>> {
    let (mut groups, _) = merge_groups(release, answers)?;
    let strata = release.key_count.saturating_sub(1);
    groups.retain(|g| g.keys.get(strata).is_some_and(|bin| !bin.is_null()));
    Ok(groups)
}

/// Threshold mode: coarsen the exact counts under k·S.
pub(crate) fn release_threshold(
    release: &Release,
    axis: TimeAxis,
    answers: &[SitePartials],
    policy: &PrivacyPolicy,
) -> Result<Released> {
    let groups = merged_bins(release, answers)?;
    let k = u64::try_from(policy.required_patients()).unwrap_or(u64::MAX);
    let cells = |g: &Group| {
        let cell = |m: &Merge| u64::try_from(cell_patients(release, g, m)).unwrap_or(0);
        Departures {
            events: axis.events.map(|e| cell(&release.merges[e])),
            competing: axis.competing.map(|c| cell(&release.merges[c])),
            leaving: u64::try_from(g.patients).unwrap_or(0),
        }
    };
    let (out, suppressed) = coarsen(release, groups, k, cells)?;
    let counted = out.iter().map(|g| (g.keys.clone(), g.patients)).collect();
    let batch = build_output(release, &out, |v| {
        CountFinish::Round(policy.round_counts_to).apply(v)
    })?;
    Ok(Released {
        batch,
        suppressed,
        groups: counted,
        withheld_cells: vec![0; release.merges.len()],
    })
}

/// dp mode: the release's noise (one charge, as any release: every patient
/// is in one bin of one stratum), then coarsening on the noisy counts
/// under the federation's k. No exact count decides anything here; a site
/// whose own k is above 1 coarsens its exact counts before they leave, as
/// it thresholds any group on exact counts (dp's guarantee assumes sites
/// at k = 1, mode A).
pub(crate) fn release_dp<U: Uniform>(
    release: &Release,
    axis: TimeAxis,
    answers: &[SitePartials],
    policy: &PrivacyPolicy,
    u: &mut U,
) -> Result<Released> {
    let mut groups = merged_bins(release, answers)?;
    NoisePlan::for_release(release, policy)?.apply(release, &mut groups, u)?;
    // Floor each bin's noisy counts at zero before the rule reads them, so
    // that a merged bin shows exactly the sums the rule judged.
    for g in &mut groups {
        for row in &mut g.rows {
            for v in row.iter_mut() {
                if as_i64(v)? < 0 {
                    *v = datafusion::common::ScalarValue::Int64(Some(0)).cast_to(&v.data_type())?;
                }
            }
        }
    }
    let k = policy.min_group_size.max(1);
    let noisy = |g: &Group| {
        // After `apply`, a group holds one row of noisy totals.
        let count = |p: usize| {
            g.rows
                .first()
                .and_then(|r| r.get(p))
                // every value is a whole count floored at zero by the loop above
                .map_or(0, |v| as_i64(v).map_or(0, i64::unsigned_abs))
        };
        Departures {
            events: axis.events.map(count),
            competing: axis.competing.map(count),
            leaving: count(axis.rows),
        }
    };
    let (out, _) = coarsen(release, groups, k, noisy)?;
    Ok(Released {
        batch: build_output(release, &out, |v| CountFinish::FloorAtZero.apply(v))?,
        suppressed: 0,
        groups: Vec::new(),
        withheld_cells: vec![0; release.merges.len()],
    })
}

/// Coarsen `groups` per stratum under `k`, reading each bin's counts with
/// `counts`; return the released bins and the number of bins of withheld
/// strata.
fn coarsen(
    release: &Release,
    mut groups: Vec<Group>,
    k: u64,
    counts: impl Fn(&Group) -> Departures,
) -> Result<(Vec<Group>, u64)> {
    groups.sort_by(|a, b| a.keys.partial_cmp(&b.keys).unwrap_or(Ordering::Equal));
    let strata = release.key_count.saturating_sub(1);
    let (mut out, mut suppressed) = (Vec::new(), 0u64);
    let mut fine = groups.into_iter().peekable();
    while let Some(first) = fine.next() {
        let mut run = vec![first];
        while let Some(next) = fine.next_if(|g| g.keys[..strata] == run[0].keys[..strata]) {
            run.push(next);
        }
        let bins: Vec<Departures> = run.iter().map(&counts).collect();
        let segments = released(&bins, k);
        if segments.is_empty() {
            suppressed += run.len() as u64;
        }
        let labels: Vec<_> = segments.iter().map(|(_, l)| run[*l].keys.clone()).collect();
        let mut run = run.into_iter();
        for ((segment, _), label) in segments.into_iter().zip(labels) {
            let mut merged = run
                .by_ref()
                .take(segment.len())
                .reduce(absorb)
                .ok_or_else(|| EngineError::Internal("an empty bin".into()))?;
            merged.keys = label;
            out.push(merged);
        }
    }
    Ok((out, suppressed))
}

/// Bin `later` merged into `earlier`: released at the later bin's end,
/// with the sum of both bins' partial rows, patients and cells.
fn absorb(mut earlier: Group, later: Group) -> Group {
    earlier.keys = later.keys;
    earlier.rows.extend(later.rows);
    earlier.patients = earlier.patients.saturating_add(later.patients);
    for (mine, theirs) in earlier.cells.iter_mut().zip(later.cells) {
        *mine = mine.saturating_add(theirs);
    }
    for (mine, theirs) in earlier.summaries.iter_mut().zip(later.summaries) {
        mine.extend(theirs);
    }
    earlier
}
