//! The rule for releases on a time axis (Kaplan–Meier bins,
//! `ihdsi_planner::binned`): small bins are coarsened into their
//! neighbours, never shown and never dropped.
//!
//! Withholding a bin, as any other group under k is withheld, would break
//! the curve: its patients would vanish from the numbers at risk of every
//! earlier bin. So within each stratum, in time order:
//!
//! 1. **Tail.** The curve ends at the last bin that has at least k
//!    patients at risk; that bin absorbs every later one, so no number at
//!    risk under k can be derived from what is shown, and it is released
//!    at its own end, not at the tail's (which would tell the longest
//!    follow-up to within a bin).
//! 2. **Merge.** A bin whose events, competing events or censorings
//!    number fewer than k (zero included) is merged with the bins after it
//!    until each count is at least k; what is left at the end joins the
//!    last bin that passed. The merged bin is released at its end, and
//!    only its sums are seen.
//! 3. **Withhold.** A stratum that cannot pass (fewer than k patients, or
//!    fewer than k events, competing events or censorings in all, zero
//!    included) is withheld, as any group.
//!
//! Zero is held back like 1 to k − 1: were a 0 shown where a 1 is merged,
//! a bin (or a stratum) would tell whether anyone matches the condition
//! the analyst wrote as the event. At k = 1 everything is shown and
//! nothing merged, so the curve equals the pooled one. The same rule runs
//! at every site, with the site's own k, and at
//! the coordinator on the merged counts with the federation's.

use std::ops::Range;

pub(crate) mod merged;
pub mod site;

/// One bin as the rule sees it: its events (none on a value axis), its
/// competing events (for cumulative incidence), and all patients leaving
/// follow-up in it (events, competing events and censorings; on a value
/// axis, the bin's patients).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Departures {
    pub events: Option<u64>,
    pub competing: Option<u64>,
    pub leaving: u64,
}

impl Departures {
    fn censored(&self) -> u64 {
        self.leaving.saturating_sub(
            self.events
                .unwrap_or(0)
                .saturating_add(self.competing.unwrap_or(0)),
        )
    }
}

/// Whether a count may be shown under `k`: at least k. Zero is held back
/// like 1 to k − 1 (a bin that shows 0 where 1 would be merged tells
/// whether anyone matches the event's condition); at k = 1 everything is
/// shown, and nothing is merged.
fn shown(count: u64, k: u64) -> bool {
    k <= 1 || count >= k
}

/// The last bin with at least `k` at risk.
fn last_at_risk(bins: &[Departures], k: u64) -> Option<usize> {
    let mut at_risk: u64 = bins.iter().fold(0u64, |n, b| n.saturating_add(b.leaving));
    let mut last = None;
    for (i, b) in bins.iter().enumerate() {
        if at_risk >= k {
            last = Some(i);
        }
        at_risk = at_risk.saturating_sub(b.leaving);
    }
    last
}

/// The released bins of one stratum, each with the input bin whose end
/// it is released at: its own last bin, except for the bin that absorbs
/// the tail, released at the end of the last bin with k at risk. The
/// tail's own end would tell the longest follow-up (or the largest
/// value) to within a bin, which rests on one patient.
pub fn released(bins: &[Departures], k: u64) -> Vec<(Range<usize>, usize)> {
    let k = k.max(1);
    let Some(last) = last_at_risk(bins, k) else {
        return Vec::new();
    };
    merged(bins, k, last)
        .into_iter()
        .map(|r| {
            let label = (r.end - 1).min(last);
            (r, label)
        })
        .collect()
}

/// The released bins of one stratum (`bins` in time order), as ranges of
/// the input bins merged into each; empty when the stratum is withheld.
pub fn segments(bins: &[Departures], k: u64) -> Vec<Range<usize>> {
    let k = k.max(1);
    last_at_risk(bins, k).map_or_else(Vec::new, |last| merged(bins, k, last))
}

/// The merged bins of a stratum whose last bin with k at risk is `last`
/// (it absorbs the tail).
fn merged(bins: &[Departures], k: u64, last: usize) -> Vec<Range<usize>> {
    let units: Vec<Range<usize>> = (0..last)
        .map(|i| i..i + 1)
        .chain(std::iter::once(last..bins.len()))
        .collect();
    // On the bin's sums: in dp mode noisy events can exceed noisy rows in
    // one fine bin, and the released bin shows the sums.
    let passes = |r: &Range<usize>| {
        let (mut events, mut competing, mut leaving) = (Some(0u64), Some(0u64), 0u64);
        for b in &bins[r.clone()] {
            events = events.zip(b.events).map(|(a, b)| a.saturating_add(b));
            competing = competing.zip(b.competing).map(|(a, b)| a.saturating_add(b));
            leaving = leaving.saturating_add(b.leaving);
        }
        let censored = Departures {
            events,
            competing,
            leaving,
        }
        .censored();
        [events, competing]
            .into_iter()
            .flatten()
            .all(|count| shown(count, k))
            && shown(censored, k)
    };
    let mut released: Vec<Range<usize>> = Vec::new();
    let mut open: Option<Range<usize>> = None;
    for unit in units {
        let current = match open.take() {
            Some(r) => r.start..unit.end,
            None => unit,
        };
        if passes(&current) {
            released.push(current);
        } else {
            open = Some(current);
        }
    }
    if let Some(rest) = open {
        match released.last_mut() {
            // Adding the rest to the last passing bin can still fail: in dp
            // mode noisy events can exceed noisy rows, so the censorings
            // of a merge can shrink. Check again, merging backwards.
            Some(_) => {
                let mut merged = rest;
                while let Some(previous) = released.pop() {
                    merged = previous.start..merged.end;
                    if passes(&merged) {
                        released.push(merged);
                        return released;
                    }
                }
                return Vec::new();
            }
            None => return Vec::new(),
        }
    }
    released
}

#[cfg(test)]
mod tests;
