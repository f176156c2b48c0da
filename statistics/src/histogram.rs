//! Histograms and quantiles from patients per bin of a value.
//!
//! The federation releases, per bin of a declared grid, the number of
//! patients whose value falls in it (bins below k merged into the next).
//! Everything an analyst reads from that is computed here from the bins
//! alone: the histogram, with its first bin open below and its last open
//! above (the largest value would rest on one patient), and a quantile as
//! the end of the bin that holds it.

use std::collections::BTreeMap;

/// One bin of a released histogram: `(lower, upper]`, open where `None`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HistogramBin {
    pub lower: Option<f64>,
    pub upper: Option<f64>,
    pub patients: i64,
}

/// Patients per bin end, merged where two bins share an end and sorted by
/// it. Negative counts (none are released) count as zero.
pub fn by_end(bins: impl IntoIterator<Item = (f64, i64)>) -> Vec<(f64, i64)> {
    let mut merged: BTreeMap<u64, (f64, i64)> = BTreeMap::new();
    for (end, patients) in bins {
        let end = end + 0.0; // -0.0 and 0.0 are one bin
        merged.entry(end.to_bits()).or_insert((end, 0)).1 += patients.max(0);
    }
    let mut bins: Vec<(f64, i64)> = merged.into_values().collect();
    bins.sort_by(|a, b| a.0.total_cmp(&b.0));
    bins
}

/// The histogram of `bins` (as [`by_end`] gives them): each bin from the
/// previous end, the first open below and the last open above.
pub fn histogram(bins: &[(f64, i64)]) -> Vec<HistogramBin> {
    let n = bins.len();
    (0..n)
        .map(|i| HistogramBin {
            lower: i.checked_sub(1).map(|j| bins[j].0),
            upper: (i + 1 < n).then(|| bins[i].0),
            patients: bins[i].1,
        })
        .collect()
}

/// The end of the bin holding the `p` quantile of `bins` (as [`by_end`]
/// gives them), placed as `percentile_cont` places it: at rank (n − 1)·p,
/// the higher of two ranks it falls between. `None` without patients or
/// for a `p` outside [0, 1].
pub fn quantile(bins: &[(f64, i64)], p: f64) -> Option<f64> {
    let n: i64 = bins.iter().map(|b| b.1).sum();
    if n == 0 || !(0.0..=1.0).contains(&p) {
        return None;
    }
    let rank = ((n - 1) as f64 * p).ceil() as i64;
    let mut seen = 0;
    bins.iter().find_map(|&(end, count)| {
        seen += count;
        (seen > rank).then_some(end)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bins_merge_by_end_and_open_at_both_ends() {
        let bins = by_end([(20.0, 3), (10.0, 2), (20.0, 1), (-0.0, 4), (0.0, 1)]);
        assert_eq!(bins, vec![(0.0, 5), (10.0, 2), (20.0, 4)]);
        let h = histogram(&bins);
        assert_eq!(h[0].lower, None);
        assert_eq!((h[1].lower, h[1].upper), (Some(0.0), Some(10.0)));
        assert_eq!(
            (h[2].lower, h[2].upper, h[2].patients),
            (Some(10.0), None, 4)
        );
    }

    #[test]
    fn a_quantile_is_the_end_of_the_bin_that_holds_its_rank() {
        let bins = [(10.0, 2), (20.0, 2)];
        // ranks 0..=3; the median's rank (3 · 0.5).ceil() = 2 is in the second bin.
        assert_eq!(quantile(&bins, 0.5), Some(20.0));
        assert_eq!(quantile(&bins, 0.0), Some(10.0));
        assert_eq!(quantile(&bins, 1.0), Some(20.0));
        assert_eq!(quantile(&bins, 1.5), None);
        assert_eq!(quantile(&[], 0.5), None);
    }
}
