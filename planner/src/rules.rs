//! The documented rules a refusal cites.
//!
//! Every refusal of a construct names the construct, the rule it breaks and
//! what to write instead. The rule is one of these values, each tied to its
//! row in the attack table of `docs/privacy.md`, so that an analyst (or a
//! site's steward reading a site log) can look up why, and a test can check
//! that no refusal goes without one. The wording is fixed text: a rule
//! never carries query values or data.

use std::fmt;

/// A rule of the federation, as the attack table of `docs/privacy.md`
/// numbers it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Rule {
    /// Only aggregates leave a site; no patient rows or values (A01).
    OnlyAggregates,
    /// MIN, MAX, medians and percentiles are one patient's value (A04).
    OnePatientsValue,
    /// `person_id` is only counted, grouped per patient or joined on (A06).
    PatientIdentifier,
    /// Joins of patient data match rows of the same patient (A13).
    SamePatientJoins,
    /// Nothing below the aggregation spans patients: no LIMIT, ordering,
    /// window or aggregate over all patients (A14).
    PerPatientBelowTheAggregation,
    /// Every call below the aggregation is total: no failure can tell that
    /// a row exists (A15).
    TotalFunctions,
    /// Sums take declared quantities, so that sensitivity is known (A26).
    DeclaredQuantities,
    /// Each grouping set is a release of its own (A28).
    ReleasePerGroupingSet,
    /// Free-text and source-value columns are never computed with (A29).
    FreeText,
    /// `EXISTS` over patient data is correlated on the patient (A30).
    CorrelatedExists,
    /// Every number in a cell rests on the patients the cell counts (A31).
    CellsRestOnPatients,
    /// Dates are generalised or relative, never exact (A35).
    GeneralisedDates,
    /// Joins cannot multiply one patient's rows in dp mode (A37).
    NoRowAmplification,
    /// A distinct count counts only the values a thresholded GROUP BY would
    /// release (A38).
    ReleasedDistinctValues,
    /// SQL the engine would not honour is refused, never dropped (A39).
    HonouredAsWritten,
    /// Every subplan reaches a site as SQL it can read and audit (A40).
    ReadableSubplans,
    /// A binned statistic (survival curve or test, histogram, quantile) is
    /// one row per patient on a declared grid, its small bins coarsened
    /// (A41).
    SurvivalCurves,
}

impl Rule {
    /// The attack number in `docs/privacy.md`.
    pub fn attack(self) -> &'static str {
        match self {
            Self::OnlyAggregates => "A01",
            Self::OnePatientsValue => "A04",
            Self::PatientIdentifier => "A06",
            Self::SamePatientJoins => "A13",
            Self::PerPatientBelowTheAggregation => "A14",
            Self::TotalFunctions => "A15",
            Self::DeclaredQuantities => "A26",
            Self::ReleasePerGroupingSet => "A28",
            Self::FreeText => "A29",
            Self::CorrelatedExists => "A30",
            Self::CellsRestOnPatients => "A31",
            Self::GeneralisedDates => "A35",
            Self::NoRowAmplification => "A37",
            Self::ReleasedDistinctValues => "A38",
            Self::HonouredAsWritten => "A39",
            Self::ReadableSubplans => "A40",
            Self::SurvivalCurves => "A41",
        }
    }

    /// The rule in a few words.
    pub fn title(self) -> &'static str {
        match self {
            Self::OnlyAggregates => "only aggregates leave a site",
            Self::OnePatientsValue => "no single patient's value is released",
            Self::PatientIdentifier => {
                "the patient identifier is only counted, grouped per patient or joined on"
            }
            Self::SamePatientJoins => "joins of patient data match rows of the same patient",
            Self::PerPatientBelowTheAggregation => "nothing below the aggregation spans patients",
            Self::TotalFunctions => "every computation over patient rows is total",
            Self::DeclaredQuantities => "sums take declared quantities",
            Self::ReleasePerGroupingSet => "each grouping set is a release of its own",
            Self::FreeText => "free text and source values are never computed with",
            Self::CorrelatedExists => "EXISTS is correlated on the patient",
            Self::CellsRestOnPatients => "every cell rests on the patients it counts",
            Self::GeneralisedDates => "dates are generalised or relative, never exact",
            Self::NoRowAmplification => "joins cannot multiply a patient's rows",
            Self::ReleasedDistinctValues => {
                "a distinct count counts only values a GROUP BY would release"
            }
            Self::HonouredAsWritten => "SQL is honoured as written or refused",
            Self::ReadableSubplans => "every site receives SQL it can read and audit",
            Self::SurvivalCurves => {
                "a binned statistic has one row per patient, on a declared grid, its small bins coarsened"
            }
        }
    }
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "rule {}: {}; docs/privacy.md",
            self.attack(),
            self.title()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every rule's attack number has its row in the attack table.
    #[test]
    fn every_rule_has_its_row_in_the_attack_table() {
        let doc = include_str!("../../docs/privacy.md");
        let rules = [
            Rule::OnlyAggregates,
            Rule::OnePatientsValue,
            Rule::PatientIdentifier,
            Rule::SamePatientJoins,
            Rule::PerPatientBelowTheAggregation,
            Rule::TotalFunctions,
            Rule::DeclaredQuantities,
            Rule::ReleasePerGroupingSet,
            Rule::FreeText,
            Rule::CorrelatedExists,
            Rule::CellsRestOnPatients,
            Rule::GeneralisedDates,
            Rule::NoRowAmplification,
            Rule::ReleasedDistinctValues,
            Rule::HonouredAsWritten,
            Rule::ReadableSubplans,
            Rule::SurvivalCurves,
        ];
        for rule in rules {
            let row = format!("\n| {} ", rule.attack());
            assert!(doc.contains(&row), "no row for {rule} in docs/privacy.md");
        }
    }
}
