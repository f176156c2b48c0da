use super::*;

/// The exact probability mass of the discrete Gaussian at `x`, normalised
/// over a wide enough support.
fn dg_pmf(sigma2: f64, support: i64) -> Vec<f64> {
    let w: Vec<f64> = (-support..=support)
        .map(|x| (-(x * x) as f64 / (2.0 * sigma2)).exp())
        .collect();
    let total: f64 = w.iter().sum();
    w.into_iter().map(|v| v / total).collect()
}

/// Draw `n` samples and compare the histogram with the exact pmf: every
/// bin within 6 binomial standard deviations (a false alarm has
/// probability below 1e-8 per bin), and the variance within 5 %.
fn check_gaussian(num: u128, den: u128, n: usize) {
    let mut u = OsUniform::default();
    let sigma2 = num as f64 / den as f64;
    let support = (12.0 * sigma2.sqrt()).ceil() as i64 + 2;
    let pmf = dg_pmf(sigma2, support);
    let mut counts = vec![0usize; pmf.len()];
    let mut sum_sq = 0.0;
    for _ in 0..n {
        let x = discrete_gaussian(&mut u, num, den).expect("sample") as i64;
        assert!(x.abs() <= support, "sample {x} far outside the support");
        counts[(x + support) as usize] += 1;
        sum_sq += (x * x) as f64;
    }
    for (i, (&c, &p)) in counts.iter().zip(&pmf).enumerate() {
        let expected = p * n as f64;
        let sd = (n as f64 * p * (1.0 - p)).sqrt().max(1.0);
        assert!(
            (c as f64 - expected).abs() <= 6.0 * sd,
            "σ²={sigma2}: P({}) observed {c}, expected {expected:.1}",
            i as i64 - support
        );
    }
    let variance = sum_sq / n as f64;
    let exact: f64 = pmf
        .iter()
        .enumerate()
        .map(|(i, p)| p * ((i as i64 - support) as f64).powi(2))
        .sum();
    assert!(
        (variance - exact).abs() <= 0.05 * exact,
        "σ²={sigma2}: variance {variance}, exact {exact}"
    );
}

#[test]
fn discrete_gaussian_matches_its_exact_distribution() {
    check_gaussian(1, 4, 40_000); // σ = 0.5
    check_gaussian(9, 1, 40_000); // σ = 3
    check_gaussian(2_500, 7, 40_000); // σ² = 357.14…, a non-integer rational
}

#[test]
fn discrete_laplace_is_symmetric_with_the_stated_decay() {
    let mut u = OsUniform::default();
    let n = 40_000;
    let t = 2u128;
    let mut counts = std::collections::BTreeMap::<i128, usize>::new();
    for _ in 0..n {
        *counts
            .entry(discrete_laplace(&mut u, t).expect("sample"))
            .or_default() += 1;
    }
    // P(x) = (1 − e^{−1/t}) / (1 + e^{−1/t}) · e^{−|x|/t}.
    let q = (-1.0f64 / t as f64).exp();
    for x in -4i128..=4 {
        let p = (1.0 - q) / (1.0 + q) * q.powi(x.unsigned_abs() as i32);
        let expected = p * n as f64;
        let sd = (n as f64 * p * (1.0 - p)).sqrt();
        let c = counts.get(&x).copied().unwrap_or(0) as f64;
        assert!(
            (c - expected).abs() <= 6.0 * sd,
            "P({x}) observed {c}, expected {expected:.1}"
        );
    }
}

#[test]
fn bernoulli_exp_of_zero_is_certain_and_parameters_are_checked() {
    let mut u = OsUniform::default();
    for _ in 0..100 {
        assert!(bernoulli_exp(&mut u, 0, 7).expect("sample"));
    }
    assert!(discrete_gaussian(&mut u, 0, 1).is_err());
    assert!(discrete_laplace(&mut u, 0).is_err());
    assert_eq!(isqrt(99), 9);
    assert_eq!(isqrt(100), 10);
    assert_eq!(isqrt(u64::MAX as u128), u32::MAX as u128);
}
