//! The log-rank test of k groups, and its stratified form.
//!
//! At each time of the pooled grid, with `n` at risk and `d` events in
//! all groups, group g expects `n_g·d / n` events. The test statistic is
//! `U = Zᵀ V⁻¹ Z` over the first k − 1 groups, with `Z` the observed minus
//! expected events and `V` the hypergeometric covariance
//! `V_gh = Σ d (n − d) / (n − 1) · n_g (δ_gh·n − n_h) / n²`, and `U` is
//! χ² with k − 1 degrees of freedom. The stratified test adds `Z` and `V`
//! over strata (sites, for instance), comparing groups only within a
//! stratum. The definitions are lifelines' `multivariate_logrank_test`
//! and statsmodels' `survdiff`.

use statrs::distribution::{ChiSquared, ContinuousCDF};

use crate::bins::Stratum;
use crate::error::{Result, StatisticsError};

/// The outcome of a log-rank test.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LogRank {
    /// The χ² statistic.
    pub statistic: f64,
    /// Degrees of freedom: the number of groups minus one.
    pub degrees_of_freedom: usize,
    /// P(χ² ≥ statistic) under the null hypothesis of equal survival.
    pub p_value: f64,
}

/// The log-rank test of `groups` (one stratum each).
pub fn test(groups: &[Stratum]) -> Result<LogRank> {
    stratified(&[groups.to_vec()])
}

/// The stratified log-rank test: `strata[s][g]` is group g in stratum s;
/// every stratum lists the same groups in the same order.
pub fn stratified(strata: &[Vec<Stratum>]) -> Result<LogRank> {
    let k = strata.first().map_or(0, Vec::len);
    if k < 2 || strata.iter().any(|s| s.len() != k) {
        return Err(StatisticsError::TooFewGroups {
            statistic: "the log-rank test",
            needed: 2,
            got: k,
        });
    }
    let mut z = vec![0.0; k];
    let mut v = vec![vec![0.0; k]; k];
    for groups in strata {
        accumulate(groups, &mut z, &mut v);
    }
    let m = k - 1;
    let v: Vec<Vec<f64>> = v.iter().take(m).map(|row| row[..m].to_vec()).collect();
    let solved = solve(v, z[..m].to_vec()).ok_or(StatisticsError::Singular)?;
    let statistic: f64 = z[..m].iter().zip(&solved).map(|(a, b)| a * b).sum();
    let p_value = ChiSquared::new(m as f64)
        .map_err(|_| StatisticsError::Singular)?
        .sf(statistic);
    Ok(LogRank {
        statistic,
        degrees_of_freedom: m,
        p_value,
    })
}

/// Add one stratum's observed-minus-expected events and covariance.
fn accumulate(groups: &[Stratum], z: &mut [f64], v: &mut [Vec<f64>]) {
    let mut times: Vec<f64> = groups
        .iter()
        .flat_map(|g| g.bins().iter().map(|b| b.time))
        .collect();
    times.sort_by(f64::total_cmp);
    times.dedup();
    for t in times {
        let counts: Vec<(f64, f64)> = groups
            .iter()
            .map(|g| {
                let (n, d) = g.at(t);
                (n as f64, d as f64)
            })
            .collect();
        let n: f64 = counts.iter().map(|c| c.0).sum();
        let d: f64 = counts.iter().map(|c| c.1).sum();
        if n == 0.0 || d == 0.0 {
            continue;
        }
        let ratio = (n - d) / (n - 1.0);
        let factor = if ratio.is_finite() { ratio } else { 1.0 } * d / (n * n);
        for (g, &(n_g, d_g)) in counts.iter().enumerate() {
            z[g] += d_g - n_g * d / n;
            for (h, &(n_h, _)) in counts.iter().enumerate() {
                let delta = if g == h { n } else { 0.0 };
                v[g][h] += factor * n_g * (delta - n_h);
            }
        }
    }
}

/// Solve `a·x = b` by Gaussian elimination with partial pivoting; `None`
/// if `a` is singular.
fn solve(mut a: Vec<Vec<f64>>, mut b: Vec<f64>) -> Option<Vec<f64>> {
    let m = b.len();
    let scale = a.iter().flatten().fold(0.0f64, |s, x| s.max(x.abs()));
    for col in 0..m {
        let pivot = (col..m).max_by(|&i, &j| a[i][col].abs().total_cmp(&a[j][col].abs()))?;
        if a[pivot][col].abs() <= scale * 1e-12 {
            return None;
        }
        a.swap(col, pivot);
        b.swap(col, pivot);
        let (upper, lower) = a.split_at_mut(col + 1);
        let pivot_row = &upper[col];
        for (offset, row) in lower.iter_mut().enumerate() {
            let f = row[col] / pivot_row[col];
            for (x, p) in row[col..].iter_mut().zip(&pivot_row[col..]) {
                *x -= f * p;
            }
            b[col + 1 + offset] -= f * b[col];
        }
    }
    let mut x = vec![0.0; m];
    for row in (0..m).rev() {
        let rest: f64 = (row + 1..m).map(|c| a[row][c] * x[c]).sum();
        x[row] = (b[row] - rest) / a[row][row];
    }
    Some(x)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bins::Bin;

    fn stratum(rows: &[(f64, u64, u64)]) -> Stratum {
        Stratum::new(
            rows.iter()
                .map(|&(time, events, censored)| Bin {
                    time,
                    events,
                    censored,
                })
                .collect(),
        )
        .expect("grid")
    }

    /// Two identical groups: nothing observed differs from what is
    /// expected.
    #[test]
    fn identical_groups_give_zero() {
        let g = stratum(&[(1.0, 2, 1), (2.0, 1, 0), (3.0, 0, 2)]);
        let r = test(&[g.clone(), g]).expect("test");
        assert!(r.statistic.abs() < 1e-12);
        assert!((r.p_value - 1.0).abs() < 1e-12);
        assert_eq!(r.degrees_of_freedom, 1);
    }

    /// Groups without any event have no covariance to test against, and
    /// one group is no test at all.
    #[test]
    fn degenerate_inputs_are_refused() {
        let a = stratum(&[(1.0, 0, 1)]);
        let b = stratum(&[(5.0, 0, 1)]);
        assert_eq!(test(&[a.clone(), b]), Err(StatisticsError::Singular));
        assert!(matches!(
            test(&[a]),
            Err(StatisticsError::TooFewGroups { got: 1, .. })
        ));
    }
}
