//! The time-axis rule on hand-made and generated strata.

use proptest::prelude::*;

use super::{Departures, released as labelled, segments};

fn bins(counts: &[(u64, u64)]) -> Vec<Departures> {
    counts
        .iter()
        .map(|&(events, censored)| Departures {
            events: Some(events),
            competing: None,
            leaving: events + censored,
        })
        .collect()
}

/// Each released bin's (end, events, censored, at risk).
fn released(bins: &[Departures], k: u64) -> Vec<(usize, u64, u64, u64)> {
    let total: u64 = bins.iter().map(|b| b.leaving).sum();
    let mut out = Vec::new();
    for (r, label) in labelled(bins, k) {
        let before: u64 = bins[..r.start].iter().map(|b| b.leaving).sum();
        let events: u64 = bins[r.clone()].iter().map(|b| b.events.unwrap_or(0)).sum();
        let leaving: u64 = bins[r.clone()].iter().map(|b| b.leaving).sum();
        out.push((label, events, leaving - events, total - before));
    }
    out
}

#[test]
fn at_k_one_every_bin_is_released_as_it_is() {
    let b = bins(&[(1, 0), (0, 2), (3, 1), (0, 0), (1, 1)]);
    let r = segments(&b, 1);
    assert_eq!(r, (0..5).map(|i| i..i + 1).collect::<Vec<_>>());
}

#[test]
fn a_month_with_one_death_is_merged_with_its_neighbours() {
    // k = 10: month 3 has one death among 40 at risk.
    let b = bins(&[(12, 10), (10, 11), (1, 0), (11, 10), (0, 0), (10, 12)]);
    let shown = released(&b, 10);
    assert!(
        shown
            .iter()
            .all(|&(_, e, c, n)| e >= 10 && c >= 10 && n >= 10),
        "{shown:?}"
    );
    assert!(
        !shown.iter().any(|&(end, e, _, _)| end == 2 && e == 1),
        "{shown:?}"
    );
    assert_eq!(
        shown.iter().map(|s| s.1).sum::<u64>(),
        44,
        "no event is lost"
    );
}

#[test]
fn a_stratum_that_cannot_pass_is_withheld() {
    assert!(segments(&bins(&[(3, 2), (2, 1)]), 10).is_empty());
    assert!(
        segments(&bins(&[(4, 30), (3, 30)]), 10).is_empty(),
        "7 events in all"
    );
    assert!(segments(&[], 10).is_empty());
}

#[test]
fn the_tail_under_k_at_risk_joins_the_last_bin() {
    let b = bins(&[(10, 10), (10, 10), (2, 3), (1, 1)]);
    let shown = released(&b, 10);
    // Released at the end of the last bin with k at risk, not the tail's.
    assert_eq!(shown.last().map(|s| s.0), Some(1));
    assert!(shown.iter().all(|s| s.3 >= 10), "{shown:?}");
}

fn strata() -> impl Strategy<Value = Vec<(u64, u64)>> {
    prop::collection::vec((0u64..14, 0u64..14), 0..25)
}

proptest! {
    /// Every released bin has at least k events, censorings and patients
    /// at risk (a zero is held back like 1 to k − 1); the bins cover the
    /// stratum without gap or loss.
    #[test]
    fn no_released_count_is_under_k(counts in strata(), k in 1u64..12) {
        let b = bins(&counts);
        let r = segments(&b, k);
        if !r.is_empty() {
            prop_assert_eq!(r[0].start, 0);
            prop_assert_eq!(r[r.len() - 1].end, b.len());
            prop_assert!(r.windows(2).all(|w| w[0].end == w[1].start));
        }
        for (_, e, c, n) in released(&b, k) {
            // At k = 1 nothing is held back, zeros included.
            prop_assert!(k <= 1 || e >= k, "events {} under {}", e, k);
            prop_assert!(k <= 1 || c >= k, "censorings {} under {}", c, k);
            prop_assert!(n >= k);
        }
    }

    /// One more patient with an event: the released bin that holds it has
    /// at least k events, and every released bin before it is unchanged
    /// up to where the first curve ends (one more patient at risk can
    /// extend a curve by a bin, the one thing it may move before itself).
    #[test]
    fn one_more_patient_shows_only_in_a_bin_of_k_events(
        counts in strata(), k in 2u64..12, at in 0usize..25,
    ) {
        prop_assume!(at < counts.len());
        let a = bins(&counts);
        let mut more = counts.clone();
        more[at].0 += 1;
        let b = bins(&more);
        let (ra, rb) = (segments(&a, k), segments(&b, k));
        let (sa, sb) = (released(&a, k), released(&b, k));
        let tail = ra.last().map_or(0, |r| r.start);
        if let Some(i) = rb.iter().position(|r| r.contains(&at)) {
            prop_assert!(sb[i].1 >= k, "the new event's bin: {:?}", sb[i]);
            for j in (0..i).filter(|&j| rb[j].end <= tail) {
                prop_assert_eq!(ra.get(j), Some(&rb[j]));
                prop_assert_eq!((sa[j].1, sa[j].2), (sb[j].1, sb[j].2));
            }
        }
    }
}

/// A histogram's bins count patients only: no event count to hold back.
#[test]
fn a_value_axis_needs_k_patients_per_bin() {
    let b: Vec<Departures> = [3u64, 12, 4, 4, 15, 2]
        .iter()
        .map(|&n| Departures {
            events: None,
            competing: None,
            leaving: n,
        })
        .collect();
    let r = segments(&b, 10);
    assert!(!r.is_empty());
    for range in r {
        let n: u64 = b[range].iter().map(|x| x.leaving).sum();
        assert!(n >= 10);
    }
}
