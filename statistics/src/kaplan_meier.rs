//! The Kaplan–Meier estimator on a grid, with Greenwood's variance, the
//! exponential-Greenwood ("log-log") confidence interval, the median
//! survival time with its interval, and the restricted mean.
//!
//! With `n` at risk and `d` events at a bin, `S` steps by `(n − d) / n`,
//! accumulated as a sum of logarithms (as lifelines does, so that the two
//! agree to the last bits), and Greenwood's sum `Σ d / (n (n − d))` gives
//! both the standard error `S·√Σ` and the interval
//! `exp(−exp(log(−log S) ∓ z·√Σ / log S))`, which stays inside [0, 1].

use statrs::distribution::{ContinuousCDF, Normal};

use crate::bins::Stratum;
use crate::error::{Result, StatisticsError};

/// One bin of a survival curve.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CurvePoint {
    /// The bin's time on the grid.
    pub time: f64,
    /// Patients at risk at the bin.
    pub at_risk: u64,
    /// Events in the bin.
    pub events: u64,
    /// Patients censored in the bin.
    pub censored: u64,
    /// S(t) after the bin.
    pub survival: f64,
    /// Greenwood's standard error of S(t).
    pub std_error: f64,
    /// Lower bound of the log-log confidence interval.
    pub lower: f64,
    /// Upper bound of the log-log confidence interval.
    pub upper: f64,
}

/// A survival curve: one point per bin.
#[derive(Debug, Clone, PartialEq)]
pub struct Curve {
    /// The points, in time order.
    pub points: Vec<CurvePoint>,
    /// The confidence level of the intervals (0.95).
    pub level: f64,
}

/// A median survival time with its confidence interval; `None` where the
/// curve (or the bound) never reaches one half within the grid.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Median {
    /// The first time at which S(t) ≤ ½.
    pub time: Option<f64>,
    /// The first time at which the lower bound of S(t) is ≤ ½.
    pub lower: Option<f64>,
    /// The first time at which the upper bound of S(t) is ≤ ½.
    pub upper: Option<f64>,
}

/// The two-sided normal quantile of `level` (1.96 for 0.95).
pub(crate) fn normal_quantile(level: f64) -> Result<f64> {
    if !(level > 0.0 && level < 1.0) {
        return Err(StatisticsError::ConfidenceLevel);
    }
    let standard = Normal::standard();
    Ok(standard.inverse_cdf(1.0 - (1.0 - level) / 2.0))
}

/// The Kaplan–Meier curve of `stratum`, with intervals at `level`.
pub fn curve(stratum: &Stratum, level: f64) -> Result<Curve> {
    let z = normal_quantile(level)?;
    let (mut log_survival, mut greenwood) = (0.0f64, 0.0f64);
    let points = stratum
        .bins()
        .iter()
        .zip(stratum.at_risk())
        .map(|(bin, &at_risk)| {
            let (n, d) = (at_risk as f64, bin.events as f64);
            if at_risk > 0 {
                log_survival += (n - d).ln() - n.ln();
                if bin.events < at_risk {
                    greenwood += d / (n * (n - d));
                }
            }
            let survival = log_survival.exp();
            let (lower, upper) = log_log_interval(log_survival, greenwood, z);
            CurvePoint {
                time: bin.time,
                at_risk,
                events: bin.events,
                censored: bin.censored,
                survival,
                std_error: survival * greenwood.sqrt(),
                lower,
                upper,
            }
        })
        .collect();
    Ok(Curve { points, level })
}

/// The exponential-Greenwood interval of `S = exp(log_survival)`: `(1, 1)`
/// before the first event, `(0, 0)` once S is 0.
fn log_log_interval(log_survival: f64, greenwood: f64, z: f64) -> (f64, f64) {
    let v = log_survival;
    let half_width = z * greenwood.sqrt() / v;
    let bound = |sign: f64| {
        let b = (-((-v).ln() + sign * half_width).exp()).exp();
        if b.is_nan() { 1.0 } else { b }
    };
    (bound(-1.0), bound(1.0))
}

impl Curve {
    /// The median survival time and its interval.
    pub fn median(&self) -> Median {
        let first = |value: fn(&CurvePoint) -> f64| {
            self.points.iter().find(|p| value(p) <= 0.5).map(|p| p.time)
        };
        Median {
            time: first(|p| p.survival),
            lower: first(|p| p.lower),
            upper: first(|p| p.upper),
        }
    }

    /// The restricted mean survival time up to `horizon`: the area under
    /// the step function S from time 0 (where S = 1) to `horizon`.
    pub fn restricted_mean(&self, horizon: f64) -> f64 {
        let (mut area, mut previous_time, mut previous_survival) = (0.0, 0.0, 1.0);
        for p in self.points.iter().take_while(|p| p.time <= horizon) {
            area += (p.time - previous_time) * previous_survival;
            (previous_time, previous_survival) = (p.time, p.survival);
        }
        area + (horizon - previous_time) * previous_survival
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bins::Bin;

    fn bin(time: f64, events: u64, censored: u64) -> Bin {
        Bin {
            time,
            events,
            censored,
        }
    }

    /// The textbook example (Kleinbaum, leukaemia remission, 6-MP arm,
    /// times in weeks): S and Greenwood's standard error at each event.
    #[test]
    fn the_textbook_curve() {
        let stratum = Stratum::new(vec![
            bin(6.0, 3, 1),
            bin(7.0, 1, 0),
            bin(9.0, 0, 1),
            bin(10.0, 1, 1),
            bin(11.0, 0, 1),
            bin(13.0, 1, 0),
            bin(16.0, 1, 0),
            bin(17.0, 0, 1),
            bin(19.0, 0, 1),
            bin(20.0, 0, 1),
            bin(22.0, 1, 0),
            bin(23.0, 1, 0),
            bin(25.0, 0, 1),
            bin(32.0, 0, 2),
            bin(34.0, 0, 1),
            bin(35.0, 0, 1),
        ])
        .expect("grid");
        let c = curve(&stratum, 0.95).expect("curve");
        let s: Vec<f64> = c.points.iter().map(|p| p.survival).collect();
        let expected = [0.8571, 0.8067, 0.8067, 0.7529, 0.7529, 0.6902, 0.6275];
        for (got, want) in s.iter().zip(expected) {
            assert!((got - want).abs() < 5e-5, "{got} vs {want}");
        }
        assert!((c.points[0].std_error - 0.0764).abs() < 5e-5);
        assert_eq!(c.median().time, Some(23.0));
        assert_eq!(stratum.patients(), 21);
    }

    #[test]
    fn a_curve_that_reaches_zero_has_a_zero_interval() {
        let stratum = Stratum::new(vec![bin(1.0, 1, 0), bin(2.0, 1, 0)]).expect("grid");
        let c = curve(&stratum, 0.95).expect("curve");
        let last = c.points[1];
        assert_eq!((last.survival, last.lower, last.upper), (0.0, 0.0, 0.0));
        assert_eq!(c.restricted_mean(5.0), 1.0 + 0.5);
    }

    #[test]
    fn bad_grids_and_levels_are_refused() {
        let unordered = Stratum::new(vec![bin(2.0, 1, 0), bin(1.0, 1, 0)]);
        assert_eq!(unordered, Err(StatisticsError::UnorderedGrid));
        let stratum = Stratum::new(vec![bin(1.0, 1, 0)]).expect("grid");
        assert_eq!(curve(&stratum, 1.0), Err(StatisticsError::ConfidenceLevel));
    }
}
