//! Binned statistics through the federation: Kaplan–Meier, log-rank, cumulative
//! incidence, histograms and quantiles against the reference libraries, and
//! their rules under attack.

mod histograms;
pub(crate) mod survival;
mod survival_rules;
