//! What the privacy policy allows of a boundary aggregate, checked by the
//! coordinator for the federation's policy and again by every site for its
//! own: MIN and MAX only where allowed, and in dp mode only aggregates
//! whose sensitivity is known.

use datafusion::logical_expr::expr::AggregateFunction;
use ihdsi_catalog::{PrivacyMode, PrivacyPolicy};

use crate::analysis::aggregates::argument_bounds;
use crate::error::{PlanError, Result};
use crate::release::aggregates::AggKind;
use crate::rules::Rule;

/// Refuse what the policy does not allow: MIN/MAX unless allowed (never in
/// dp mode); in dp mode, anything but counts and sums or averages of a
/// column with declared bounds, whose sensitivity is known.
pub fn check_policy(
    kind: AggKind,
    f: &AggregateFunction,
    policy: &PrivacyPolicy,
    who: &str,
) -> Result<()> {
    if matches!(kind, AggKind::Min | AggKind::Max) && !policy.min_max_allowed() {
        let why = if policy.mode == PrivacyMode::Dp {
            "privacy.mode = dp".to_string()
        } else {
            "allow_min_max = false".to_string()
        };
        return Err(PlanError::policy(
            Rule::OnePatientsValue,
            format!(
                "MIN and MAX release one patient's exact value and are disabled by the {who}'s policy ({why})"
            ),
        ));
    }
    if policy.mode != PrivacyMode::Dp {
        return Ok(());
    }
    match kind {
        AggKind::Count | AggKind::CountDistinctUnit => Ok(()),
        AggKind::Sum | AggKind::Avg if argument_bounds(f).is_some() => Ok(()),
        AggKind::Sum | AggKind::Avg => Err(PlanError::policy(
            Rule::DeclaredQuantities,
            format!(
                "in dp mode SUM and AVG take a column with declared bounds (value_as_number, quantity, days_supply, year_of_birth, ...), not {}; the {who} cannot bound one patient's share otherwise",
                f.params
                    .args
                    .first()
                    .map(crate::analysis::exprs::sql_text)
                    .unwrap_or_default()
            ),
        )),
        _ => Err(PlanError::policy(
            Rule::DeclaredQuantities,
            format!(
                "in dp mode the {who} releases counts, sums and averages only; variances and standard deviations have no bounded sensitivity here"
            ),
        )),
    }
}

/// Whether `kind` is a primitive a site may compute directly.
pub fn is_site_primitive(kind: AggKind) -> bool {
    !matches!(
        kind,
        AggKind::Variance { sample: true, .. } | AggKind::Variance { sqrt: true, .. }
    )
}
