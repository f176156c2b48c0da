//! Values bound to a statement's positional parameters, checked at the
//! coordinator before anything is sent to a site: one value per parameter,
//! each of the type the parameter's place in the statement asks for (cast
//! there when it can be, refused when it cannot). A value that does not fit
//! is the analyst's mistake, told with the parameter's position, never a
//! site's refusal. The checked values become literals before the split, so
//! the same generalisation rules hold for a date given as a parameter as
//! for the same date written in the statement.

use std::collections::HashMap;

use datafusion::arrow::datatypes::DataType;
use datafusion::common::ScalarValue;
use datafusion::logical_expr::LogicalPlan;

use crate::error::{PlanError, Result};

/// The position of a parameter named `$n`.
fn position(name: &str) -> Option<usize> {
    name.strip_prefix('$')?.parse().ok()
}

/// `plan` with `values` bound to its parameters `$1`, `$2`, …
pub fn bind(plan: LogicalPlan, values: Vec<ScalarValue>) -> Result<LogicalPlan> {
    let types: HashMap<String, Option<DataType>> = plan
        .get_parameter_types()
        .map_err(PlanError::from_datafusion)?;
    let mut positions: Vec<usize> = types.keys().filter_map(|n| position(n)).collect();
    positions.sort_unstable();
    let expected = positions.last().copied().unwrap_or(0);
    if values.len() > expected {
        return Err(PlanError::Schema(format!(
            "{} parameter values were bound, but the statement has {expected} parameter{}",
            values.len(),
            if expected == 1 { "" } else { "s" }
        )));
    }
    if let Some(missing) = (1..=expected).find(|i| *i > values.len()) {
        return Err(PlanError::Schema(format!(
            "parameter ${missing} has no value: bind one value for each of the statement's {expected} parameters"
        )));
    }
    let checked = values
        .into_iter()
        .enumerate()
        .map(|(i, value)| {
            let wanted = types.get(&format!("${}", i + 1)).cloned().flatten();
            typed(i + 1, value, wanted)
        })
        .collect::<Result<Vec<_>>>()?;
    plan.with_param_values(checked)
        .map_err(PlanError::from_datafusion)
}

/// `value` as a value of `wanted` (the type of parameter `$n`'s place).
fn typed(n: usize, value: ScalarValue, wanted: Option<DataType>) -> Result<ScalarValue> {
    match wanted.filter(|w| *w != DataType::Null) {
        Some(w) if value.data_type() != w => value.cast_to(&w).map_err(|_| mismatch(n, &value, &w)),
        _ => Ok(value),
    }
}

fn mismatch(n: usize, value: &ScalarValue, wanted: &DataType) -> PlanError {
    PlanError::Schema(format!(
        "parameter ${n}: the value {value} ({}) cannot be used where the statement needs {wanted}",
        value.data_type()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::prelude::SessionContext;

    async fn plan(sql: &str) -> LogicalPlan {
        let ctx = SessionContext::new();
        crate::register_virtual_schema(&ctx).expect("schema");
        ctx.state().create_logical_plan(sql).await.expect("plan")
    }

    #[tokio::test]
    async fn counts_and_types_are_checked_with_the_position() {
        let sql = "SELECT count(*) FROM person WHERE year_of_birth < $1 AND gender_concept_id = $2";
        let err = |values: Vec<ScalarValue>| async {
            bind(plan(sql).await, values)
                .expect_err("refused")
                .to_string()
        };
        let e = err(vec![ScalarValue::Int64(Some(1950))]).await;
        assert!(e.contains("parameter $2 has no value"), "{e}");
        let three = vec![ScalarValue::Int64(Some(1)); 3];
        let e = err(three).await;
        assert!(
            e.contains("3 parameter values were bound, but the statement has 2"),
            "{e}"
        );
        let e = err(vec![
            ScalarValue::Utf8(Some("abc".into())),
            ScalarValue::Int64(Some(8507)),
        ])
        .await;
        assert!(e.contains("parameter $1: the value abc (Utf8)"), "{e}");
        let bound = bind(
            plan(sql).await,
            vec![
                ScalarValue::Utf8(Some("1950".into())),
                ScalarValue::Int64(Some(8507)),
            ],
        )
        .expect("a text that is a number is cast");
        assert!(bound.get_parameter_types().expect("types").is_empty());
    }
}
