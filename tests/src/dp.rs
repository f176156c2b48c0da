//! Differential-privacy fixtures: dp-mode federations, fresh data permits
//! (a fresh budget per trial), and the distinguishing game of the privacy
//! anchors (§4.0) with its bounds.
//!
//! **The game.** A hidden coin b picks the cohort without (b = 0) or with
//! (b = 1) the planted victim. The adversary asks its queries under a fresh
//! permit and guesses b. Against exact answers it wins every time; against
//! a ρ-zCDP release its success is bounded. Two bounds are reported:
//! * the formal one, through (ε, δ)-DP with ε = ρ + 2√(ρ·ln(1/δ)):
//!   success ≤ e^ε/(1+e^ε) + δ;
//! * the tight one for a Gaussian mechanism, which this engine's is:
//!   success ≤ Φ(√(2ρ)/2) (the best test between two Gaussians √(2ρ)
//!   standard deviations apart).
//!
//! The test compares the observed success, with a 4σ binomial margin, to
//! the tight bound (the stronger claim).

use std::path::{Path, PathBuf};

use ihdsi_catalog::permit::{Permit, Purpose, generate_key, issue};
use ihdsi_catalog::{DpSettings, PrivacyMode, PrivacyPolicy};
use ihdsi_cli::client::QueryResult;
use ihdsi_cli::demo::{DEMO_PASSWORD, Federation, demo_auth, start};

/// The federation's dp policy: k = 10, ρ = 0.1 per release, budget `budget`.
pub fn dp_policy(ledger: &Path, budget: f64) -> PrivacyPolicy {
    PrivacyPolicy {
        mode: PrivacyMode::Dp,
        dp: DpSettings {
            ledger: Some(ledger.to_path_buf()),
            budget_rho: budget,
            // Thousands of game queries at one second each would take
            // hours; the timing test (A16) sets its own quantum.
            response_ms: 0,
            ..DpSettings::default()
        },
        ..PrivacyPolicy::threshold(10, false)
    }
}

/// A fresh, empty folder for a ledger.
pub fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("ihdsi-dp-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

/// A dp-mode federation over `data`, sites trusting the coordinator
/// (site k = 1, mode A of the anchors), its ledger at `ledger`.
pub async fn dp_federation(data: &Path, ledger: &Path, budget: f64) -> Federation {
    let (auth, _) = demo_auth(DEMO_PASSWORD).expect("demo auth");
    start(
        data,
        0,
        dp_policy(ledger, budget),
        PrivacyPolicy::threshold(1, false),
        &auth,
    )
    .await
    .expect("start dp federation")
}

/// Issues permits to the demo analyst; each has its own id, hence its own
/// budget and its own cache.
pub struct Permits {
    key: Vec<u8>,
    next: std::sync::atomic::AtomicUsize,
}

// The signing key stays out of `{:?}`.
impl std::fmt::Debug for Permits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Permits").finish_non_exhaustive()
    }
}

impl Default for Permits {
    fn default() -> Self {
        Self {
            key: generate_key().expect("signing key").0,
            next: Default::default(),
        }
    }
}

impl Permits {
    /// A new permit token with `budget` (ρ), or the federation's default.
    pub fn fresh(&self, budget: Option<f64>) -> (String, String) {
        let n = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let id = format!("TRIAL-{}-{n}", std::process::id());
        let permit = Permit {
            id: id.clone(),
            holder: crate::DEMO_USER.into(),
            purpose: Purpose::ScientificResearch,
            commercial: false,
            tables: ihdsi_catalog::schema::tables()
                .iter()
                .filter(|t| t.kind == ihdsi_catalog::TableKind::Patient)
                .map(|t| t.name.to_string())
                .collect(),
            sites: vec!["lu".into(), "us".into(), "kr".into()],
            privacy_mode: "dp".into(),
            budget_rho: budget,
            valid_from: "2020-01-01T00:00:00Z".into(),
            valid_until: "2100-01-01T00:00:00Z".into(),
            issuer: "test".into(),
        };
        (id, issue(&permit, &self.key).expect("issue permit"))
    }
}

/// The numbers of the last column, row by row (NULL as 0).
pub fn numbers(r: &QueryResult) -> Vec<f64> {
    use datafusion::arrow::array::{Array, AsArray};
    use datafusion::arrow::datatypes::{DataType, Float64Type, Int64Type};
    let mut out = Vec::new();
    for b in &r.batches {
        let Some(c) = b.columns().last() else {
            continue;
        };
        for i in 0..c.len() {
            out.push(match c.data_type() {
                _ if c.is_null(i) => 0.0,
                DataType::Int64 => c.as_primitive::<Int64Type>().value(i) as f64,
                DataType::Float64 => c.as_primitive::<Float64Type>().value(i),
                other => panic!("not a number: {other}"),
            });
        }
    }
    out
}

/// The single number of a one-row, one-column answer (0 when no row:
/// a suppressed scalar reads as zero to the adversary).
pub fn scalar(r: &QueryResult) -> f64 {
    use datafusion::arrow::array::{Array, AsArray};
    use datafusion::arrow::datatypes::{DataType, Float64Type, Int64Type};
    let Some(b) = r.batches.iter().find(|b| b.num_rows() > 0) else {
        return 0.0;
    };
    let c = b.column(0);
    if c.is_null(0) {
        return 0.0;
    }
    match c.data_type() {
        DataType::Int64 => c.as_primitive::<Int64Type>().value(0) as f64,
        DataType::Float64 => c.as_primitive::<Float64Type>().value(0),
        other => panic!("not a number: {other}"),
    }
}

/// The outcome of a distinguishing game.
#[derive(Debug, Clone, Copy)]
pub struct Game {
    pub trials: usize,
    pub wins: usize,
    /// ρ charged to the adversary per trial.
    pub rho: f64,
    pub delta: f64,
}

impl Game {
    pub fn success(&self) -> f64 {
        self.wins as f64 / self.trials as f64
    }
    /// 4σ binomial margin at p = 1/2 (the worst case).
    pub fn margin(&self) -> f64 {
        4.0 * 0.5 / (self.trials as f64).sqrt()
    }
    /// Φ(√(2ρ)/2): the best success against a ρ-zCDP Gaussian mechanism.
    pub fn gaussian_bound(&self) -> f64 {
        phi((2.0 * self.rho).sqrt() / 2.0)
    }
    /// e^ε/(1+e^ε) + δ with ε = ρ + 2√(ρ·ln(1/δ)).
    pub fn formal_bound(&self) -> f64 {
        let eps = self.rho + 2.0 * (self.rho * (1.0 / self.delta).ln()).sqrt();
        eps.exp() / (1.0 + eps.exp()) + self.delta
    }
    /// Whether the observed success respects the tight bound.
    pub fn within_bound(&self) -> bool {
        self.success() <= self.gaussian_bound() + self.margin()
    }
}

impl std::fmt::Display for Game {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "success {:.3} over {} trials (±{:.3}); bound Φ(√2ρ/2) = {:.3}, (ε,δ) bound {:.3}, ρ = {}",
            self.success(),
            self.trials,
            self.margin(),
            self.gaussian_bound(),
            self.formal_bound(),
            self.rho
        )
    }
}

/// Standard normal CDF (Abramowitz–Stegun 7.1.26 erf, error < 1.5e-7).
pub fn phi(x: f64) -> f64 {
    let z = x / std::f64::consts::SQRT_2;
    let t = 1.0 / (1.0 + 0.327_591_1 * z.abs());
    let poly = t
        * (0.254_829_592
            + t * (-0.284_496_736
                + t * (1.421_413_741 + t * (-1.453_152_027 + t * 1.061_405_429))));
    let erf = 1.0 - poly * (-z * z).exp();
    0.5 * (1.0 + if z >= 0.0 { erf } else { -erf })
}

/// A fixed sequence of coins (the adversary must not see them; a fixed
/// seed keeps the trial schedule reproducible, the noise is fresh).
pub fn coins(n: usize, seed: u64) -> Vec<bool> {
    let mut x = seed | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x & 1 == 1
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_match_known_values() {
        assert!((phi(0.0) - 0.5).abs() < 1e-7);
        assert!((phi(1.96) - 0.975).abs() < 1e-3);
        let g = Game {
            trials: 400,
            wins: 200,
            rho: 0.2,
            delta: 1e-6,
        };
        assert!((g.gaussian_bound() - 0.624).abs() < 1e-3);
        assert!(g.formal_bound() > g.gaussian_bound());
        assert!(g.within_bound());
        let exact = Game { wins: 400, ..g };
        assert!(
            !exact.within_bound(),
            "an always-right adversary breaks the bound"
        );
        let c = coins(1000, 7);
        let ones = c.iter().filter(|b| **b).count();
        assert!((400..600).contains(&ones));
    }
}
