//! The p% dominance rule (threshold mode) on every cell that carries a sum
//! of values.
//!
//! A cell is withheld when `X − x₁ − x₂ < p/100 · x₁`: without the two
//! largest patient contributions `x₁ ≥ x₂`, the rest of the total `X` is
//! too small to hide `x₁` from the second-largest contributor, who can
//! subtract their own share (ESSnet Handbook on SDC, which prefers this
//! rule to (n, k) dominance). Contributions are taken in absolute value, so
//! that negative values cannot cancel out a dominant one.
//!
//! What is judged ([`ihdsi_planner::partials::dominance`]): each data term of a sum
//! or an average, on its per-patient totals; and the spread of a variance,
//! on each patient's squared deviations from the mean.
//!
//! Each site summarises its patients' contributions per group as a
//! [`Dominance`]. For a sum term the coordinator merges the sites'
//! summaries (the two largest overall are among the sites' two largest).
//! For a spread, sites measure deviations from their own mean `μₛ`; a
//! patient's deviation from the federation's mean `μ` is at most
//! `(√d + √n·|μₛ − μ|)²` (Cauchy–Schwarz over the patient's `n ≤ rows`
//! values), so the rule is judged on those upper bounds against the exact
//! merged total, which can only withhold more. The summaries stay in the
//! coordinator's memory: they are never released, logged or cached.

pub use crate::protocol::dominance::Dominance;

/// The p% rule on a cell's merged summary.
pub(crate) trait PercentRule {
    /// Whether the cell fails the p% rule and must be withheld.
    fn dominated(&self, p: f64) -> bool;
}

impl PercentRule for Dominance {
    fn dominated(&self, p: f64) -> bool {
        rule(self.total, self.top1, self.top2, p)
    }
}

/// `X − x₁ − x₂ < p/100 · x₁`.
fn rule(total: f64, top1: f64, top2: f64, p: f64) -> bool {
    total - top1 - top2 < p / 100.0 * top1
}

/// One site's share of a variance's spread: its summary of squared
/// deviations from its own mean, and that mean.
#[derive(Debug, Clone, Copy)]
pub struct SiteSpread {
    pub summary: Dominance,
    pub mean: f64,
}

/// Whether a variance with merged mean `mean` and merged sum of squared
/// deviations `m2` fails the p% rule, judged on upper bounds of each
/// site's two largest patients' deviations from `mean`.
pub fn spread_dominated(p: f64, sites: &[SiteSpread], mean: f64, m2: f64) -> bool {
    let (mut ub1, mut ub2) = (0f64, 0f64);
    for s in sites {
        let shift = s.summary.rows.max(0.0).sqrt() * (s.mean - mean).abs();
        for d in [s.summary.top1, s.summary.top2] {
            let ub = (d.max(0.0).sqrt() + shift).powi(2);
            if ub > ub1 {
                ub2 = ub1;
                ub1 = ub;
            } else if ub > ub2 {
                ub2 = ub;
            }
        }
    }
    rule(m2, ub1, ub2, p)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn of(values: &[f64]) -> Dominance {
        let mut d = Dominance::default();
        values.iter().for_each(|&v| d.add(v));
        d
    }

    #[test]
    fn the_rule_withholds_cells_two_patients_dominate() {
        // X − x1 − x2 = 19 < 10 % of 600.
        assert!(of(&[600.0, 1.0, 18.0, 1.0]).dominated(10.0));
        // Twenty similar contributions: the rest is 18 ≥ 0.1.
        assert!(!of(&[1.0; 20]).dominated(10.0));
        // Two patients alone always dominate; an all-zero cell does not.
        assert!(of(&[5.0, 5.0]).dominated(10.0));
        assert!(!of(&[0.0, 0.0, 0.0]).dominated(10.0));
        // Negative values count by magnitude.
        assert!(of(&[-600.0, 10.0, 10.0, 10.0]).dominated(10.0));
        // p = 25 is stricter than p = 10 on the same cell.
        let cell = of(&[100.0, 10.0, 5.0, 5.0, 5.0]);
        assert!(!cell.dominated(10.0) && cell.dominated(25.0));
    }

    #[test]
    fn merging_site_summaries_equals_summarising_the_union() {
        let (a, b) = ([7.0, 3.0, 9.0, 1.0], [8.0, 2.0, 10.0]);
        let mut merged = of(&a);
        merged.merge(of(&b));
        let union: Vec<f64> = a.iter().chain(b.iter()).copied().collect();
        assert_eq!(merged, of(&union));
        assert!(merged.plausible());
        let lying = Dominance {
            top1: 1.0,
            top2: 5.0,
            total: 6.0,
            rows: 1.0,
        };
        assert!(!lying.plausible());
    }

    /// Per-site spreads of one-row patients, and the pooled mean and M2.
    fn spreads(sites: &[&[f64]]) -> (Vec<SiteSpread>, f64, f64) {
        let all: Vec<f64> = sites.iter().flat_map(|s| s.iter().copied()).collect();
        let mean = all.iter().sum::<f64>() / all.len() as f64;
        let m2 = all.iter().map(|x| (x - mean).powi(2)).sum();
        let per = sites
            .iter()
            .map(|s| {
                let m = s.iter().sum::<f64>() / s.len() as f64;
                let mut d = of(&s.iter().map(|x| (x - m).powi(2)).collect::<Vec<_>>());
                d.rows = 1.0;
                SiteSpread {
                    summary: d,
                    mean: m,
                }
            })
            .collect();
        (per, mean, m2)
    }

    #[test]
    fn a_variance_one_outlier_dominates_is_withheld_wherever_the_outlier_is() {
        let normal: Vec<f64> = (0..40).map(|i| 118.0 + f64::from(i % 9) - 4.0).collect();
        // Not dominated: forty similar values.
        let (s, mean, m2) = spreads(&[&normal]);
        assert!(!spread_dominated(10.0, &s, mean, m2));
        // The outlier in the same site, or alone at a site of its own
        // (where its deviation from its own mean is zero): withheld.
        let mut with = normal.clone();
        with.push(1000.0);
        let (s, mean, m2) = spreads(&[&with]);
        assert!(spread_dominated(10.0, &s, mean, m2));
        let (s, mean, m2) = spreads(&[&normal, &[1000.0]]);
        assert!(spread_dominated(10.0, &s, mean, m2));
        // A shift of every value changes nothing.
        let shifted: Vec<f64> = with.iter().map(|x| x + 1e6).collect();
        let (s, mean, m2) = spreads(&[&shifted]);
        assert!(spread_dominated(10.0, &s, mean, m2));
    }
}
