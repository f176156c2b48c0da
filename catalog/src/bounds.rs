//! Declared value ranges of the numeric columns that SUM and AVG may read
//! under contribution bounding.
//!
//! Differential privacy needs to know how much one patient can move a sum:
//! values are clamped into these ranges before summing, at every site, so
//! one patient's value outside its clinically plausible range (a data-entry
//! error, or a planted outlier) cannot dominate a released cell. `step` is
//! the published resolution of noisy sums: noise is drawn on that integer
//! grid, never added as a floating-point number.
//!
//! Ranges are keyed by column name: the clamp applies to whatever value a
//! query sums under that name, so a renamed expression is clamped to the
//! range of the name it borrowed (a utility loss, never a privacy one).

/// A column's declared range and the resolution of its noisy sums.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ValueBounds {
    pub lo: f64,
    pub hi: f64,
    pub step: f64,
}

impl ValueBounds {
    /// The largest absolute value a clamped value can take.
    pub fn magnitude(&self) -> f64 {
        self.lo.abs().max(self.hi.abs())
    }
}

const fn b(lo: f64, hi: f64, step: f64) -> Option<ValueBounds> {
    Some(ValueBounds { lo, hi, step })
}

/// The declared range of the numeric column `name`, if any.
pub fn for_column(name: &str) -> Option<ValueBounds> {
    match name.to_ascii_lowercase().as_str() {
        // Laboratory and observation results, in their own units: covers
        // HbA1c (%), creatinine (µmol/L), haemoglobin (g/L), PSA (ng/mL).
        "value_as_number" | "range_low" | "range_high" => b(0.0, 1000.0, 0.01),
        "quantity" => b(0.0, 1000.0, 1.0),
        "days_supply" => b(0.0, 365.0, 1.0),
        "refills" => b(0.0, 12.0, 1.0),
        "year_of_birth" => b(1900.0, 2030.0, 1.0),
        "month_of_birth" => b(1.0, 12.0, 1.0),
        "day_of_birth" => b(1.0, 31.0, 1.0),
        "variant_allele_frequency" => b(0.0, 1.0, 0.001),
        "variant_read_depth" | "fusion_supporting_reads" => b(0.0, 10_000.0, 1.0),
        "variant_exon_number" => b(0.0, 500.0, 1.0),
        "copy_number" => b(0.0, 20.0, 0.01),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema;
    use datafusion::arrow::datatypes::DataType;

    #[test]
    fn every_bound_names_a_numeric_column_and_integer_columns_have_integer_steps() {
        let mut named = 0;
        for t in schema::tables() {
            for f in t.schema.fields() {
                let Some(bounds) = for_column(f.name()) else {
                    continue;
                };
                named += 1;
                assert!(bounds.lo < bounds.hi && bounds.step > 0.0, "{}", f.name());
                match f.data_type() {
                    DataType::Float64 => {}
                    DataType::Int32 | DataType::Int64 => {
                        assert_eq!(bounds.step.fract(), 0.0, "{}", f.name());
                    }
                    other => panic!("{} is {other}", f.name()),
                }
            }
        }
        assert!(named >= 10);
        assert_eq!(
            for_column("VALUE_AS_NUMBER").map(|b| b.magnitude()),
            Some(1000.0)
        );
        assert_eq!(for_column("person_id"), None);
    }
}
