//! What happens to a released count after its merge: rounded to a
//! multiple in threshold mode (after the threshold, which always sees the
//! exact count), floored at zero in dp mode (post-processing of a noisy
//! total, which costs no privacy). The merge calls back into this through
//! the closure [`CountFinish::apply`] gives it.

use datafusion::common::ScalarValue;

use crate::error::Result;
use crate::merge::{as_i64, overflow};

/// The finishing of every released count of a release.
#[derive(Debug, Clone, Copy)]
pub(crate) enum CountFinish {
    /// Threshold mode: round to the nearest multiple (1 = exact).
    Round(u64),
    /// DP mode: floor the noisy count at zero.
    FloorAtZero,
}

impl CountFinish {
    /// Finish one released count.
    pub(crate) fn apply(self, v: ScalarValue) -> Result<ScalarValue> {
        match self {
            CountFinish::Round(base) => round_count(v, base),
            CountFinish::FloorAtZero => Ok(non_negative(v)),
        }
    }
}

/// Floor a released count at zero (post-processing of its noisy total).
fn non_negative(v: ScalarValue) -> ScalarValue {
    match v {
        ScalarValue::Int64(Some(x)) if x < 0 => ScalarValue::Int64(Some(0)),
        other => other,
    }
}

/// Round a released count to the nearest multiple of `base` (halves up), as
/// statistical offices and OpenSAFELY do; `base` 1 leaves it exact. Applied
/// after the threshold, which always sees the exact count.
fn round_count(v: ScalarValue, base: u64) -> Result<ScalarValue> {
    if base <= 1 || v.is_null() {
        return Ok(v);
    }
    let data_type = v.data_type();
    let n = as_i64(&v)?;
    let base = i64::try_from(base).map_err(|_| overflow())?;
    let rounded = n
        .checked_add(base / 2)
        .map(|x| x / base * base)
        .ok_or_else(overflow)?;
    Ok(ScalarValue::Int64(Some(rounded)).cast_to(&data_type)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_round_to_the_nearest_multiple_and_stay_typed() {
        let cases = [(10, 10), (12, 10), (13, 15), (17, 15), (18, 20), (25, 25)];
        for (n, want) in cases {
            assert_eq!(
                round_count(ScalarValue::Int64(Some(n)), 5).expect("round"),
                ScalarValue::Int64(Some(want))
            );
        }
        assert_eq!(
            round_count(ScalarValue::Int64(Some(13)), 1).expect("exact"),
            ScalarValue::Int64(Some(13))
        );
        assert_eq!(
            round_count(ScalarValue::Int64(None), 5).expect("null"),
            ScalarValue::Int64(None)
        );
    }

    #[test]
    fn noisy_counts_are_floored_at_zero() {
        assert_eq!(
            CountFinish::FloorAtZero
                .apply(ScalarValue::Int64(Some(-3)))
                .expect("floor"),
            ScalarValue::Int64(Some(0))
        );
    }
}
