//! Recognising the aggregates of a release boundary: which of the
//! mergeable kinds ([`crate::release::aggregates::AggKind`]) each call is,
//! and the declared range of its argument. The split
//! ([`crate::split::aggregates`]), the site's admission and the partials
//! all classify the same way.

use datafusion::logical_expr::expr::AggregateFunction;
use datafusion::logical_expr::{Expr, ExprSchemable, LogicalPlan};

use crate::analysis::exprs::strip_alias;
use crate::analysis::lineage::{Lineage, expr_is_unit};
use crate::error::{PlanError, Result};
use crate::release::aggregates::AggKind;
use crate::rules::Rule;
use ihdsi_catalog::bounds::{self, ValueBounds};

/// Recognise one aggregate expression of a release boundary.
pub fn classify<'a>(
    expr: &'a Expr,
    input: &LogicalPlan,
    lineage: &Lineage,
) -> Result<(AggKind, &'a AggregateFunction)> {
    let Expr::AggregateFunction(f) = strip_alias(expr) else {
        return Err(PlanError::Internal(format!(
            "expected an aggregate function, got {expr}"
        )));
    };
    let name = f.func.name().to_ascii_lowercase();
    let p = &f.params;
    let untyped = p.args.iter().any(|a| {
        a.get_type(input.schema())
            .is_ok_and(|t| t == datafusion::arrow::datatypes::DataType::Null)
    });
    if untyped {
        return Err(PlanError::unsupported(
            Rule::HonouredAsWritten,
            format!("{name}(NULL)"),
            "An aggregate of a bare NULL has no type to merge across sites (and is NULL anyway); remove it, or CAST the argument to a type",
        ));
    }
    if !p.order_by.is_empty()
        && !name.contains("percentile")
        && !name.ends_with("_agg")
        && !name.ends_with("_value")
    {
        return Err(PlanError::unsupported(
            Rule::HonouredAsWritten,
            format!("{name}(... ORDER BY ...)"),
            "Ordered aggregates cannot be merged across sites",
        ));
    }
    if p.distinct {
        return distinct_kind(&name, &p.args, input, lineage).map(|kind| (kind, f));
    }
    mergeable_kind(&name).map(|kind| (kind, f))
}

/// A DISTINCT aggregate: a count of distinct privacy units, or of the
/// values of a vocabulary column; and, as a site partial only, the set of
/// a vocabulary column's values.
fn distinct_kind(
    name: &str,
    args: &[Expr],
    input: &LogicalPlan,
    lineage: &Lineage,
) -> Result<AggKind> {
    // A count of distinct values other than patients is rewritten into
    // releases before it gets here (`crate::split::distinct_values`); what still
    // arrives (with grouping sets, of several arguments, at a site) is
    // refused: one patient moves it by one inside a cell of thousands.
    match name {
        "count" if args.len() == 1 && expr_is_unit(&args[0], input, lineage) => {
            return Ok(AggKind::CountDistinctUnit);
        }
        "count" => {}
        _ => {
            return Err(PlanError::unsupported(
                Rule::ReleasedDistinctValues,
                format!("{}(DISTINCT ...)", name.to_uppercase()),
                "Only COUNT(DISTINCT person_id) can be merged across sites",
            ));
        }
    }
    let args: Vec<String> = args.iter().map(crate::analysis::exprs::sql_text).collect();
    Err(PlanError::unsupported(
        Rule::ReleasedDistinctValues,
        format!("COUNT(DISTINCT {})", args.join(", ")),
        "A count of distinct values is answered as the number of values a GROUP BY of the value would release, for one argument and without GROUPING SETS, ROLLUP or CUBE; write one query per grouping, or count the released groups yourself: SELECT k, count(*) OVER (PARTITION BY k) FROM (SELECT k, c, count(*) AS n FROM ... GROUP BY k, c) t",
    ))
}

/// The merge of a plain (not DISTINCT) aggregate, or why it has none.
fn mergeable_kind(name: &str) -> Result<AggKind> {
    let variance = |sample, sqrt| Ok(AggKind::Variance { sample, sqrt });
    match name {
        "count" => Ok(AggKind::Count),
        "sum" => Ok(AggKind::Sum),
        "avg" => Ok(AggKind::Avg),
        "min" => Ok(AggKind::Min),
        "max" => Ok(AggKind::Max),
        "var" | "var_samp" => variance(true, false),
        "var_pop" => variance(false, false),
        "stddev" | "stddev_samp" => variance(true, true),
        "stddev_pop" => variance(false, true),
        "median"
        | "approx_median"
        | "percentile_cont"
        | "approx_percentile_cont"
        | "approx_percentile_cont_with_weight"
        | "approx_distinct"
        | "mode" => Err(PlanError::unsupported(
            Rule::OnePatientsValue,
            format!("the aggregate {name}"),
            "It cannot be merged exactly from per-site results, and its merge state would carry individual patients' values",
        )),
        "array_agg" | "string_agg" | "first_value" | "last_value" | "nth_value" => {
            Err(PlanError::unsupported(
                Rule::OnlyAggregates,
                format!("the aggregate {name}"),
                "It returns individual patients' values",
            ))
        }
        _ => Err(PlanError::unsupported(
            Rule::HonouredAsWritten,
            format!("the aggregate {name}"),
            "Mergeable aggregates are count, count(DISTINCT person_id), sum, avg, min, max, var_samp, var_pop, stddev_samp and stddev_pop",
        )),
    }
}

/// The declared range of a SUM or AVG argument: only a plain column has
/// one (see [`ihdsi_catalog::bounds`]).
pub fn argument_bounds(f: &AggregateFunction) -> Option<ValueBounds> {
    match f.params.args.first().map(strip_alias) {
        Some(Expr::Column(c)) => bounds::for_column(&c.name),
        _ => None,
    }
}
