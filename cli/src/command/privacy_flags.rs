//! The `[privacy]` keys as `ihdsi demo` flags, every one of them, so that a
//! demo can run with any rule switched off (exactness against a pooled
//! oracle) or tightened. Every default is read from `PrivacyPolicy`'s own
//! (`Default`), the one place the federation's defaults are written, and
//! `--help` shows it.

use clap::Args;

use crate::error::{CliError, Result};
use ihdsi_catalog::{Bounding, DpSettings, PrivacyMode, PrivacyPolicy};

/// `[privacy]` of the demo's coordinator and sites.
#[derive(Debug, Args)]
pub(super) struct PrivacyFlags {
    /// Disclosure control: `threshold` (exact counts of groups of at
    /// least --min-group-size patients) or `dp` (noisy counts and sums,
    /// a zCDP budget per data permit).
    #[arg(long, default_value = PrivacyPolicy::default().mode.as_str())]
    privacy: PrivacyMode,
    /// The federation's minimum distinct patients per released group and
    /// cell (`min_group_size`).
    #[arg(long, default_value_t = PrivacyPolicy::default().min_group_size)]
    min_group_size: u64,
    /// Each site's minimum distinct patients per group it sends (default:
    /// the federation's default in threshold mode; 1 in dp mode, whose
    /// guarantee assumes that sites send every group).
    #[arg(long)]
    site_min_group_size: Option<u64>,
    /// Allow MIN and MAX (they release one patient's value).
    #[arg(long)]
    allow_min_max: bool,
    /// Round released counts to the nearest multiple of N (1 = exact).
    #[arg(long, default_value_t = PrivacyPolicy::default().round_counts_to)]
    round_counts_to: u64,
    /// threshold: tell analysts how many groups were withheld (the
    /// count discloses that small groups exist; off by default).
    #[arg(long)]
    report_suppressed: bool,
    /// The p% dominance rule on SUM cells (0 switches it off).
    #[arg(long, default_value_t = PrivacyPolicy::default().dominance_p)]
    dominance_p: f64,
    /// How many sites may hold one person: k and dp noise scale by it.
    #[arg(long, default_value_t = PrivacyPolicy::default().max_sites_per_patient)]
    max_sites_per_patient: u64,
    /// Contribution bounding: rows one patient contributes per group
    /// (with --max-groups-per-patient; always on in dp mode).
    #[arg(long)]
    max_rows_per_patient: Option<u64>,
    /// Contribution bounding: groups one patient contributes to.
    #[arg(long)]
    max_groups_per_patient: Option<u64>,
    /// dp: the budget ρ of each data permit.
    #[arg(long, default_value_t = DpSettings::default().budget_rho)]
    budget: f64,
    /// dp: ρ charged per release.
    #[arg(long, default_value_t = DpSettings::default().rho_per_release)]
    rho_per_release: f64,
    /// dp: δ of the reported (ε, δ) equivalent.
    #[arg(long, default_value_t = DpSettings::default().delta)]
    delta: f64,
    /// dp: every admitted query answers exactly this many ms after it
    /// arrives (0: as it comes; the timing channel is then open).
    #[arg(long, default_value_t = DpSettings::default().response_ms)]
    response_ms: u64,
}

impl PrivacyFlags {
    /// The coordinator's and the sites' policies, checked.
    pub(super) fn policies(&self) -> Result<(PrivacyPolicy, PrivacyPolicy)> {
        let federation = PrivacyPolicy {
            mode: self.privacy,
            round_counts_to: self.round_counts_to,
            report_suppressed: self.report_suppressed,
            dominance_p: self.dominance_p,
            max_sites_per_patient: self.max_sites_per_patient,
            bounding: self.bounding(),
            dp: DpSettings {
                budget_rho: self.budget,
                rho_per_release: self.rho_per_release,
                delta: self.delta,
                response_ms: self.response_ms,
                ..DpSettings::default()
            },
            ..PrivacyPolicy::threshold(self.min_group_size, self.allow_min_max)
        };
        let site_k = match (self.privacy, self.site_min_group_size) {
            (PrivacyMode::Dp, Some(k)) if k > 1 => {
                return Err(CliError::Client(format!(
                    "--site-min-group-size {k} with --privacy dp: dp mode's guarantee assumes sites send every group (k = 1); a site that withholds groups under k lets one patient move a noisy count by up to k. Leave the flag out, or use --privacy threshold"
                )));
            }
            (PrivacyMode::Dp, _) => 1,
            (PrivacyMode::Threshold, k) => k.unwrap_or(PrivacyPolicy::default().min_group_size),
        };
        let site = PrivacyPolicy {
            mode: self.privacy,
            max_sites_per_patient: federation.max_sites_per_patient,
            bounding: federation.bounding,
            ..PrivacyPolicy::threshold(site_k, self.allow_min_max)
        };
        for policy in [&federation, &site] {
            policy
                .validate()
                .map_err(|e| CliError::Client(e.to_string()))?;
        }
        Ok((federation, site))
    }

    /// The bounding the flags ask for: either cap given sets both, the
    /// other at its default.
    fn bounding(&self) -> Option<Bounding> {
        if self.max_rows_per_patient.is_none() && self.max_groups_per_patient.is_none() {
            return None;
        }
        let defaults = Bounding::default();
        Some(Bounding {
            max_rows_per_patient: self
                .max_rows_per_patient
                .unwrap_or(defaults.max_rows_per_patient),
            max_groups_per_patient: self
                .max_groups_per_patient
                .unwrap_or(defaults.max_groups_per_patient),
        })
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Demo {
        #[command(flatten)]
        flags: PrivacyFlags,
    }

    fn site_k(args: &[&str]) -> Result<u64> {
        let demo = Demo::try_parse_from(std::iter::once("demo").chain(args.iter().copied()))
            .expect("flags parse");
        demo.flags.policies().map(|(_, site)| site.min_group_size)
    }

    #[test]
    fn dp_sites_send_every_group_and_a_site_threshold_above_one_is_refused() {
        assert_eq!(
            site_k(&[]).expect("threshold"),
            PrivacyPolicy::default().min_group_size
        );
        assert_eq!(site_k(&["--privacy", "dp"]).expect("dp"), 1);
        assert_eq!(
            site_k(&["--privacy", "dp", "--site-min-group-size", "1"]).expect("dp"),
            1
        );
        let err = site_k(&["--privacy", "dp", "--site-min-group-size", "10"])
            .expect_err("dp with sites at k = 10")
            .to_string();
        assert!(
            err.contains("--site-min-group-size 10 with --privacy dp"),
            "{err}"
        );
    }
}
