//! Splitting the boundary aggregates into portable site partials and the
//! coordinator's merge (the table is [`crate::release::aggregates`]).
//!
//! Partials are plain SQL aggregates, never DataFusion's opaque accumulator
//! state: the site SQL stays readable and runnable by other engines, and
//! nothing but ordinary aggregate values leaves a site.

use datafusion::functions_aggregate::{
    average::avg_udaf, count::count_udaf, sum::sum_udaf, variance::var_pop_udaf,
};
use datafusion::logical_expr::Expr;
use datafusion::logical_expr::expr::AggregateFunction;

use crate::analysis::aggregates::argument_bounds;
use crate::release::aggregates::{AggKind, Merge, PartialKind};

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
