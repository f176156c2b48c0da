//! Cumulative incidence under competing risks (Aalen–Johansen).
//!
//! With all-cause survival `S` just before a bin, `n` at risk and `d_k`
//! events of cause k in the bin, the incidence of cause k steps by
//! `S(t−)·d_k / n`. The standard error is the delta-method one of
//! statsmodels' `CumIncidenceRight`, whose definitions (the all-cause `S`
//! as a sum of logarithms, floored at 1e-16) are followed to the letter so
//! that the two agree on binned data with ties. lifelines'
//! `AalenJohansenFitter` is no reference here: it cannot handle tied
//! times and breaks them by random jitter.

use crate::error::{Result, StatisticsError};

/// The counts of one bin, events by cause (cause k at index k − 1).
#[derive(Debug, Clone, PartialEq)]
pub struct CompetingBin {
    /// The bin's time on the grid.
    pub time: f64,
    /// Events of each cause in the bin.
    pub events: Vec<u64>,
    /// Patients censored in the bin.
    pub censored: u64,
}

/// The cumulative incidence of each cause after one bin.
#[derive(Debug, Clone, PartialEq)]
pub struct IncidencePoint {
    /// The bin's time on the grid.
    pub time: f64,
    /// Patients at risk at the bin.
    pub at_risk: u64,
    /// The cumulative incidence of each cause.
    pub incidence: Vec<f64>,
    /// Its standard error (not finite once everyone at risk had an event).
    pub std_error: Vec<f64>,
}

/// The cumulative incidence curves of `bins` (in time order, every bin
/// with the same number of causes).
pub fn cumulative_incidence(bins: &[CompetingBin]) -> Result<Vec<IncidencePoint>> {
    let causes = bins.first().map_or(0, |b| b.events.len());
    let ordered = bins
        .iter()
        .all(|b| b.time.is_finite() && b.events.len() == causes)
        && bins.windows(2).all(|w| w[0].time < w[1].time);
    if !ordered {
        return Err(StatisticsError::UnorderedGrid);
    }
    let mut at_risk = vec![0u64; bins.len()];
    let mut remaining = 0u64;
    for (i, b) in bins.iter().enumerate().rev() {
        remaining += b.events.iter().sum::<u64>() + b.censored;
        at_risk[i] = remaining;
    }
    let mut sums = Sums::new(causes);
    let (mut log_survival, mut before) = (0.0f64, 1.0f64);
    let mut points = Vec::with_capacity(bins.len());
    for (b, &n) in bins.iter().zip(&at_risk) {
        let nf = n as f64;
        let all: u64 = b.events.iter().sum();
        let da = all as f64;
        // S(t−)/n, as statsmodels' `sp0`.
        let sp0 = before / nf;
        sums.add(b, nf, da, sp0);
        points.push(IncidencePoint {
            time: b.time,
            at_risk: n,
            incidence: sums.incidence.clone(),
            std_error: sums.std_errors(),
        });
        let step = (1.0 - da / nf).max(1e-16);
        log_survival += step.ln();
        before = if 1.0 - da / nf < 1e-16 {
            0.0
        } else {
            log_survival.exp()
        };
    }
    Ok(points)
}

/// The running sums of the incidence and of its variance's terms, per
/// cause.
struct Sums {
    incidence: Vec<f64>,
    /// Σ d/(n(n − d)) over all causes.
    all_cause: f64,
    /// Per cause: Σ I·ra, Σ I²·ra, Σ sp0²·(n − d_k)d_k/n, Σ sp0·d_k/n,
    /// Σ I·sp0·d_k/n.
    terms: Vec<[f64; 5]>,
}

impl Sums {
    fn new(causes: usize) -> Self {
        Self {
            incidence: vec![0.0; causes],
            all_cause: 0.0,
            terms: vec![[0.0; 5]; causes],
        }
    }

    fn add(&mut self, b: &CompetingBin, n: f64, da: f64, sp0: f64) {
        let ra = da / (n * (n - da));
        self.all_cause += ra;
        for (k, &d) in b.events.iter().enumerate() {
            let d = d as f64;
            self.incidence[k] += sp0 * d;
            let i = self.incidence[k];
            let t = &mut self.terms[k];
            t[0] += i * ra;
            t[1] += i * i * ra;
            t[2] += sp0 * sp0 * ((n - d) * d / n);
            let r = sp0 * d / n;
            t[3] += r;
            t[4] += i * r;
        }
    }

    fn std_errors(&self) -> Vec<f64> {
        self.incidence
            .iter()
            .zip(&self.terms)
            .map(|(&i, t)| {
                let v = i * i * self.all_cause - 2.0 * i * t[0] + t[1] + t[2] - 2.0 * i * t[3]
                    + 2.0 * t[4];
                v.sqrt()
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A hand-computed example: ten patients, two causes, ties.
    #[test]
    fn a_small_example() {
        let bin = |time: f64, events: [u64; 2], censored| CompetingBin {
            time,
            events: events.to_vec(),
            censored,
        };
        let points = cumulative_incidence(&[
            bin(1.0, [1, 1], 0),
            bin(2.0, [1, 0], 1),
            bin(3.0, [1, 1], 0),
            bin(4.0, [0, 0], 1),
            bin(5.0, [1, 1], 0),
            bin(6.0, [0, 0], 1),
        ])
        .expect("curves");
        let first: Vec<f64> = points.iter().map(|p| p.incidence[0]).collect();
        let want = [
            0.1,
            0.2,
            0.3166666666666667,
            0.3166666666666667,
            0.4722222222222223,
        ];
        for (got, want) in first.iter().zip(want) {
            assert!((got - want).abs() < 1e-12, "{got} vs {want}");
        }
        assert!((points[4].incidence[1] - 0.37222222222222223).abs() < 1e-12);
    }
}
