//! Splitting the boundary aggregates into portable site partials and the
//! coordinator's merge.
//!
//! | analyst asks                | each site computes           | coordinator merges             |
//! |-----------------------------|------------------------------|--------------------------------|
//! | `count(*)`, `count(x)`      | the same                     | Σ                              |
//! | `count(DISTINCT person_id)` | the same                     | Σ (patients are site-local)    |
//! | `sum(x)`                    | `sum(x)`                     | Σ                              |
//! | `avg(x)`                    | `sum(x)`, `count(x)`         | Σsum / Σcount                  |
//! | `var_*`, `stddev_*`         | `count(x)`, `avg(x)`, `var_pop(x)` | Chan et al. parallel merge |
//! | `min(x)`, `max(x)` (policy) | the same                     | min / max                      |
//!
//! Partials are plain SQL aggregates, never DataFusion's opaque accumulator
//! state: the site SQL stays readable and runnable by other engines, and
//! nothing but ordinary aggregate values leaves a site.

use datafusion::functions_aggregate::{
    average::avg_udaf, count::count_udaf, sum::sum_udaf, variance::var_pop_udaf,
};
use datafusion::logical_expr::expr::AggregateFunction;
use datafusion::logical_expr::{Expr, ExprSchemable, LogicalPlan};

use crate::error::{PlanError, Result};
use crate::exprs::strip_alias;
use crate::lineage::{Lineage, expr_is_unit};
use crate::rules::Rule;
use ihdsi_catalog::bounds::{self, ValueBounds};
use ihdsi_catalog::{PrivacyMode, PrivacyPolicy};

/// The aggregates the federated planner knows how to split.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AggKind {
    Count,
    CountDistinctUnit,
    Sum,
    Avg,
    Min,
    Max,
    /// `var`/`var_samp` (`sample`), `var_pop`, and with `sqrt` the stddevs.
    Variance {
        sample: bool,
        sqrt: bool,
    },
}

/// How one aggregate output is computed from the merged site partials
/// (indices are into the release's partial columns).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Merge {
    /// Σ of a count partial: `count(*)`, `count(x)`, `count(DISTINCT
    /// person_id)`. Released counts may be rounded by the policy.
    Count(usize),
    /// Σ of a sum partial.
    Sum(usize),
    Min(usize),
    Max(usize),
    /// Σ sum / Σ count.
    Avg {
        sum: usize,
        count: usize,
    },
    /// Chan et al.'s parallel merge of `(n, mean, n·var_pop)`.
    Variance {
        count: usize,
        mean: usize,
        var_pop: usize,
        sample: bool,
        sqrt: bool,
    },
}

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
    // releases before it gets here (`crate::distinct_values`); what still
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
    let args: Vec<String> = args.iter().map(crate::exprs::sql_text).collect();
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

/// What one partial column measures, for contribution bounding and for
/// the sensitivity of its noise.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum PartialKind {
    /// `count(*)` or `count(x)`: rows.
    Rows,
    /// `count(DISTINCT person_id)`: patients.
    Patients,
    /// `sum(x)`, with the declared range of `x` if it has one.
    Sum(Option<ValueBounds>),
    /// `min`, `max`, `avg` and `var_pop` partials: not boundable.
    Other,
}

/// The declared range of a SUM or AVG argument: only a plain column has
/// one (see [`ihdsi_catalog::bounds`]).
pub fn argument_bounds(f: &AggregateFunction) -> Option<ValueBounds> {
    match f.params.args.first().map(strip_alias) {
        Some(Expr::Column(c)) => bounds::for_column(&c.name),
        _ => None,
    }
}

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
                    .map(crate::exprs::sql_text)
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

/// The partial aggregates a release sends to the sites, and the merge of
/// each analyst aggregate.
#[derive(Debug, Default)]
pub struct Partials {
    /// Site-side aggregate expressions, deduplicated.
    pub exprs: Vec<Expr>,
    /// What each partial measures, parallel to `exprs`.
    pub kinds: Vec<PartialKind>,
    /// One per analyst aggregate, in order.
    pub merges: Vec<Merge>,
}

impl Partials {
    fn add(&mut self, e: Expr, kind: PartialKind) -> usize {
        if let Some(i) = self.exprs.iter().position(|x| *x == e) {
            return i;
        }
        self.exprs.push(e);
        self.kinds.push(kind);
        self.exprs.len() - 1
    }

    fn with_fn(
        f: &AggregateFunction,
        udf: std::sync::Arc<datafusion::logical_expr::AggregateUDF>,
    ) -> Expr {
        Expr::AggregateFunction(AggregateFunction::new_udf(
            udf,
            f.params.args.clone(),
            false,
            f.params.filter.clone(),
            vec![],
            None,
        ))
    }

    /// Add the partials of one classified analyst aggregate.
    pub fn push(&mut self, kind: AggKind, f: &AggregateFunction) {
        let same = Expr::AggregateFunction(f.clone());
        let sum = PartialKind::Sum(argument_bounds(f));
        let merge = match kind {
            AggKind::Count => Merge::Count(self.add(same, PartialKind::Rows)),
            AggKind::CountDistinctUnit => Merge::Count(self.add(same, PartialKind::Patients)),
            AggKind::Sum => Merge::Sum(self.add(same, sum)),
            AggKind::Min => Merge::Min(self.add(same, PartialKind::Other)),
            AggKind::Max => Merge::Max(self.add(same, PartialKind::Other)),
            AggKind::Avg => Merge::Avg {
                sum: self.add(Self::with_fn(f, sum_udaf()), sum),
                count: self.add(Self::with_fn(f, count_udaf()), PartialKind::Rows),
            },
            AggKind::Variance { sample, sqrt } => Merge::Variance {
                count: self.add(Self::with_fn(f, count_udaf()), PartialKind::Rows),
                mean: self.add(Self::with_fn(f, avg_udaf()), PartialKind::Other),
                var_pop: self.add(Self::with_fn(f, var_pop_udaf()), PartialKind::Other),
                sample,
                sqrt,
            },
        };
        self.merges.push(merge);
    }
}

/// Whether `kind` is a primitive a site may compute directly.
pub fn is_site_primitive(kind: AggKind) -> bool {
    !matches!(
        kind,
        AggKind::Variance { sample: true, .. } | AggKind::Variance { sqrt: true, .. }
    )
}
