//! Disclosure-control settings: the privacy mode, contribution bounding and
//! the differential-privacy parameters, as `[privacy]` in `federation.toml`
//! and `site.toml`.
//!
//! Two modes, chosen by the federation (`privacy.mode`):
//! * `threshold` (the default): exact answers, released only for groups of
//!   at least `min_group_size` distinct patients. Contribution bounding is
//!   optional (`[privacy.bounding]`).
//! * `dp`: every released number carries discrete Gaussian noise calibrated
//!   to the bounded contribution of one patient, groups are selected on a
//!   noisy patient count on top of `min_group_size`, and every release is
//!   charged to a zCDP budget per data permit. Bounding is always on.
//!
//! Column bounds for SUM and AVG live in the catalog itself
//! ([`crate::bounds`]), so coordinator and sites clamp to the same ranges.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::error::{CatalogError, Result};

/// Which disclosure control the federation applies to released results.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PrivacyMode {
    /// Exact results with a minimum group size (statistical disclosure control).
    #[default]
    Threshold,
    /// Differential privacy: noise, noisy group selection and a budget.
    Dp,
}

impl PrivacyMode {
    /// The mode as written in configuration and metadata.
    pub fn as_str(self) -> &'static str {
        match self {
            PrivacyMode::Threshold => "threshold",
            PrivacyMode::Dp => "dp",
        }
    }
}

impl std::str::FromStr for PrivacyMode {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "threshold" => Ok(PrivacyMode::Threshold),
            "dp" => Ok(PrivacyMode::Dp),
            other => Err(format!(
                "unknown privacy mode '{other}' (expected threshold or dp)"
            )),
        }
    }
}

/// Caps on what one patient can contribute to a release.
///
/// Each site applies them to its own patients before aggregating: per
/// group, a patient's row count is capped and the per-patient SUM is
/// clamped to `max_rows_per_patient` × the column's declared bounds; a
/// patient appears in at most `max_groups_per_patient` groups (a
/// deterministic, key-hashed choice, so identical queries select the same
/// groups). Values are clamped to their column's bounds first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Bounding {
    pub max_rows_per_patient: u64,
    pub max_groups_per_patient: u64,
}

impl Default for Bounding {
    fn default() -> Self {
        Self {
            max_rows_per_patient: 10,
            max_groups_per_patient: 5,
        }
    }
}

impl Bounding {
    /// The tighter of two caps, per field: what a site applies when the
    /// coordinator asks for one bounding and its own policy states another.
    pub fn tightest(self, other: Bounding) -> Bounding {
        Bounding {
            max_rows_per_patient: self.max_rows_per_patient.min(other.max_rows_per_patient),
            max_groups_per_patient: self
                .max_groups_per_patient
                .min(other.max_groups_per_patient),
        }
    }

    fn validate(&self) -> Result<()> {
        if self.max_rows_per_patient == 0 || self.max_groups_per_patient == 0 {
            return Err(CatalogError::ConfigInvalid(
                "privacy.bounding caps must be at least 1".into(),
            ));
        }
        if self.max_rows_per_patient > 1_000_000 || self.max_groups_per_patient > 1_000_000 {
            return Err(CatalogError::ConfigInvalid(
                "privacy.bounding caps above 1,000,000 bound nothing; remove [privacy.bounding] instead".into(),
            ));
        }
        Ok(())
    }
}

/// Differential-privacy parameters (`[privacy.dp]`, federation only).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DpSettings {
    /// zCDP cost ρ of one release (one aggregation over patient data).
    pub rho_per_release: f64,
    /// Budget ρ of a data permit that states none (and of an analyst
    /// querying without a permit).
    pub budget_rho: f64,
    /// δ of the noisy group selection, per release.
    pub delta: f64,
    /// The budget ledger (JSON lines); required in dp mode.
    pub ledger: Option<PathBuf>,
    /// Every admitted query's answer, or failure, leaves the coordinator
    /// exactly this many milliseconds after the query arrived; one that is
    /// not done by then is cancelled and fails at that moment, whatever the
    /// data (attack A16). Queries refused while planning (from their text
    /// alone) are answered at once. 0 switches the deadline off, which
    /// opens the timing channel: for tests only.
    pub response_ms: u64,
}

impl Default for DpSettings {
    fn default() -> Self {
        Self {
            rho_per_release: 0.1,
            budget_rho: 1.0,
            delta: 1e-6,
            ledger: None,
            response_ms: 3000,
        }
    }
}

impl DpSettings {
    fn validate(&self) -> Result<()> {
        let positive = |v: f64| v.is_finite() && v > 0.0;
        if !positive(self.rho_per_release) || !positive(self.budget_rho) {
            return Err(CatalogError::ConfigInvalid(
                "privacy.dp.rho_per_release and budget_rho must be positive numbers".into(),
            ));
        }
        if self.response_ms > 600_000 {
            return Err(CatalogError::ConfigInvalid(
                "privacy.dp.response_ms must be at most 600000 (ten minutes)".into(),
            ));
        }
        if !(self.delta > 0.0 && self.delta < 1e-3) {
            return Err(CatalogError::ConfigInvalid(
                "privacy.dp.delta must be in (0, 0.001)".into(),
            ));
        }
        Ok(())
    }
}

/// Disclosure-control settings. The coordinator and every site each hold one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PrivacyPolicy {
    /// `threshold` or `dp` (federation); a site in `dp` refuses subplans
    /// that do not come with contribution bounding.
    pub mode: PrivacyMode,
    /// Groups with fewer distinct patients than this are never released.
    pub min_group_size: u64,
    /// MIN and MAX release one patient's exact value; refused unless true
    /// (and always in dp mode).
    pub allow_min_max: bool,
    /// Released counts are rounded to the nearest multiple of this (1 =
    /// exact). Federation only: the threshold always sees exact counts.
    pub round_counts_to: u64,
    /// The p% dominance rule on SUM cells (threshold mode, federation): a
    /// group is withheld when the rest of a SUM cell, without its two
    /// largest patient contributions, is under p % of the largest one, so
    /// that the second-largest contributor cannot estimate the largest
    /// within p %. `0` switches the rule off. Choose your own value and keep
    /// it private: the default is public.
    pub dominance_p: f64,
    /// Whether threshold mode tells the analyst how many groups it withheld
    /// (`ihdsi.suppressed_groups`, `ihdsi.site_suppressed_groups`). Off by
    /// default: a count of withheld groups tells that a group of 1 to k−1
    /// patients exists, which an empty answer does not (attack A17). The
    /// audit trail always records it for the stewards.
    pub report_suppressed: bool,
    /// How many sites may hold the same person (attack A21). Patients are
    /// not linked across sites, so one person treated in two countries is
    /// two patients to the federation. Both modes then require `k × S`
    /// distinct patient records per released group (the per-site
    /// deduplicated count divided by S must reach k), and dp mode scales
    /// every sensitivity by S. 1: every person is at one site.
    pub max_sites_per_patient: u64,
    /// Contribution bounding; always on in dp mode (defaults apply).
    pub bounding: Option<Bounding>,
    /// Noise and budget (dp mode).
    pub dp: DpSettings,
}

impl Default for PrivacyPolicy {
    fn default() -> Self {
        Self {
            mode: PrivacyMode::Threshold,
            min_group_size: 10,
            allow_min_max: false,
            round_counts_to: 1,
            dominance_p: 10.0,
            report_suppressed: false,
            max_sites_per_patient: 1,
            bounding: None,
            dp: DpSettings::default(),
        }
    }
}

impl PrivacyPolicy {
    /// A threshold-mode policy with these settings and nothing else.
    pub fn threshold(min_group_size: u64, allow_min_max: bool) -> Self {
        Self {
            min_group_size,
            allow_min_max,
            ..Self::default()
        }
    }

    /// The bounding this policy applies: its own, or the default in dp mode.
    pub fn effective_bounding(&self) -> Option<Bounding> {
        match (self.bounding, self.mode) {
            (Some(b), _) => Some(b),
            (None, PrivacyMode::Dp) => Some(Bounding::default()),
            (None, PrivacyMode::Threshold) => None,
        }
    }

    /// The p of the p% dominance rule, when the rule applies: threshold
    /// mode with `dominance_p > 0` (dp mode's noise already covers sums).
    pub fn dominance(&self) -> Option<f64> {
        (self.mode == PrivacyMode::Threshold && self.dominance_p > 0.0).then_some(self.dominance_p)
    }

    /// The exact distinct-patient records a released group needs: the
    /// minimum group size times `max_sites_per_patient`, saturating.
    pub fn required_patients(&self) -> i64 {
        let k = self
            .min_group_size
            .saturating_mul(self.max_sites_per_patient.max(1));
        i64::try_from(k).unwrap_or(i64::MAX)
    }

    /// Whether MIN and MAX may be computed under this policy.
    pub fn min_max_allowed(&self) -> bool {
        self.allow_min_max && self.mode == PrivacyMode::Threshold
    }

    /// Check the values, in every mode (a federation in dp mode also needs
    /// its ledger: `validate_federation`).
    pub fn validate(&self) -> Result<()> {
        if self.min_group_size == 0 {
            return Err(CatalogError::ConfigInvalid(
                "privacy.min_group_size must be at least 1".into(),
            ));
        }
        if self.round_counts_to == 0 {
            return Err(CatalogError::ConfigInvalid(
                "privacy.round_counts_to must be at least 1 (1 = exact counts)".into(),
            ));
        }
        if !(0.0..=100.0).contains(&self.dominance_p) {
            return Err(CatalogError::ConfigInvalid(
                "privacy.dominance_p must be between 0 (rule off) and 100".into(),
            ));
        }
        if !(1..=16).contains(&self.max_sites_per_patient) {
            return Err(CatalogError::ConfigInvalid(
                "privacy.max_sites_per_patient must be between 1 and 16".into(),
            ));
        }
        if let Some(b) = &self.bounding {
            b.validate()?;
        }
        self.dp.validate()
    }

    /// Federation-only checks: dp mode needs its ledger and takes no
    /// rounding (noise already hides the exact count).
    pub(crate) fn validate_federation(&self) -> Result<()> {
        self.validate()?;
        if self.mode == PrivacyMode::Dp {
            if self.dp.ledger.is_none() {
                return Err(CatalogError::ConfigInvalid(
                    "privacy.mode = \"dp\" needs privacy.dp.ledger, the file where budget charges are kept".into(),
                ));
            }
            if self.round_counts_to != 1 {
                return Err(CatalogError::ConfigInvalid(
                    "privacy.round_counts_to applies to threshold mode; dp mode releases noisy counts".into(),
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dp_mode_bounds_by_default_and_needs_a_ledger() {
        let p: PrivacyPolicy =
            toml::from_str("mode = \"dp\"\n[dp]\nbudget_rho = 2.0\n").expect("parse");
        assert_eq!(p.effective_bounding(), Some(Bounding::default()));
        assert!(
            !PrivacyPolicy {
                allow_min_max: true,
                ..p.clone()
            }
            .min_max_allowed()
        );
        let err = p.validate_federation().expect_err("no ledger").to_string();
        assert!(err.contains("privacy.dp.ledger"), "{err}");
        assert_eq!(PrivacyPolicy::default().effective_bounding(), None);
    }

    #[test]
    fn bad_values_name_the_key() {
        let p: PrivacyPolicy = toml::from_str("[dp]\ndelta = 0.5\n").expect("parse");
        assert!(
            p.validate()
                .expect_err("delta")
                .to_string()
                .contains("delta")
        );
        let p: PrivacyPolicy =
            toml::from_str("[bounding]\nmax_rows_per_patient = 0\n").expect("parse");
        assert!(
            p.validate()
                .expect_err("cap")
                .to_string()
                .contains("at least 1")
        );
        assert!(toml::from_str::<PrivacyPolicy>("mode = \"noise\"\n").is_err());
        let p: PrivacyPolicy = toml::from_str("dominance_p = 120.0\n").expect("parse");
        assert!(
            p.validate()
                .expect_err("p")
                .to_string()
                .contains("dominance_p")
        );
    }

    #[test]
    fn the_dominance_rule_is_on_by_default_in_threshold_mode_only() {
        assert_eq!(PrivacyPolicy::default().dominance(), Some(10.0));
        let off: PrivacyPolicy = toml::from_str("dominance_p = 0\n").expect("parse");
        assert_eq!(off.dominance(), None);
        let dp: PrivacyPolicy = toml::from_str("mode = \"dp\"\n").expect("parse");
        assert_eq!(dp.dominance(), None);
    }

    #[test]
    fn sites_take_the_tightest_caps() {
        let a = Bounding {
            max_rows_per_patient: 3,
            max_groups_per_patient: 20,
        };
        let b = Bounding {
            max_rows_per_patient: 10,
            max_groups_per_patient: 5,
        };
        assert_eq!(
            a.tightest(b),
            Bounding {
                max_rows_per_patient: 3,
                max_groups_per_patient: 5
            }
        );
    }
}
