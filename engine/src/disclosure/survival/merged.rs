//! The time-axis rule at the coordinator, with the federation's k, on the
//! bins merged across sites.

use std::cmp::Ordering;

use ihdsi_catalog::PrivacyPolicy;
use ihdsi_planner::Release;
use ihdsi_planner::survival::TimeAxis;

use super::{Departures, released};
use crate::disclosure::threshold::cell_patients;
use crate::error::{EngineError, Result};
use crate::fanout::SitePartials;
use crate::merge::{CountFinish, Group, Released, as_i64, build_output, merge_groups};

/// Merge, check and coarsen one release on a time axis.
pub(crate) fn release(
    release: &Release,
    axis: TimeAxis,
    answers: &[SitePartials],
    policy: &PrivacyPolicy,
) -> Result<Released> {
    let (mut groups, _) = merge_groups(release, answers)?;
    // Patients without a follow-up time (a NULL bin) are not on the curve.
    let strata = release.key_count - 1;
    groups.retain(|g| g.keys.get(strata).is_some_and(|bin| !bin.is_null()));
    for g in &groups {
        let rows: i64 = g.rows.iter().map(|r| as_i64(&r[axis.rows])).sum();
        if rows != g.patients {
            // The planner and every site prove one row per patient on the
            // query; a bin that disagrees is a site's fault, not the data's.
            return Err(EngineError::Internal(
                "a bin of a time axis whose rows and patients disagree".into(),
            ));
        }
    }
    groups.sort_by(|a, b| a.keys.partial_cmp(&b.keys).unwrap_or(Ordering::Equal));
    let k = u64::try_from(policy.required_patients()).unwrap_or(u64::MAX);
    let events = axis.events.map(|e| &release.merges[e]);
    let competing = axis.competing.map(|c| &release.merges[c]);
    let (mut out, mut suppressed) = (Vec::new(), 0u64);
    let mut fine = groups.into_iter().peekable();
    while let Some(first) = fine.next() {
        let mut run = vec![first];
        while let Some(next) = fine.next_if(|g| g.keys[..strata] == run[0].keys[..strata]) {
            run.push(next);
        }
        let bins: Vec<Departures> = run
            .iter()
            .map(|g| {
                let cell = |m: &ihdsi_planner::aggregates::Merge| {
                    u64::try_from(cell_patients(release, g, m)).unwrap_or(0)
                };
                Departures {
                    events: events.map(cell),
                    competing: competing.map(cell),
                    leaving: u64::try_from(g.patients).unwrap_or(0),
                }
            })
            .collect();
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
    let counted = out.iter().map(|g| (g.keys.clone(), g.patients)).collect();
    let batch = build_output(release, &out, CountFinish::Round(policy.round_counts_to))?;
    Ok(Released {
        batch,
        suppressed,
        groups: counted,
        withheld_cells: vec![0; release.merges.len()],
    })
}

/// Bin `later` merged into `earlier`: released at the later bin's end,
/// with the sum of both bins' partial rows, patients and cells.
fn absorb(mut earlier: Group, later: Group) -> Group {
    earlier.keys = later.keys;
    earlier.rows.extend(later.rows);
    earlier.patients += later.patients;
    for (mine, theirs) in earlier.cells.iter_mut().zip(later.cells) {
        *mine += theirs;
    }
    for (mine, theirs) in earlier.summaries.iter_mut().zip(later.summaries) {
        mine.extend(theirs);
    }
    earlier
}
