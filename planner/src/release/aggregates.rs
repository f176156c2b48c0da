//! What the analyst's aggregates are, how each is merged from the sites'
//! partials, and what each partial column measures: the part of the
//! release contract the merge and the disclosure layer read.
//!
//! | analyst asks                | each site computes           | coordinator merges             |
//! |-----------------------------|------------------------------|--------------------------------|
//! | `count(*)`, `count(x)`      | the same                     | Σ                              |
//! | `count(DISTINCT person_id)` | the same                     | Σ (patients are site-local)    |
//! | `sum(x)`                    | `sum(x)`                     | Σ                              |
//! | `avg(x)`                    | `sum(x)`, `count(x)`         | Σsum / Σcount                  |
//! | `var_*`, `stddev_*`         | `count(x)`, `avg(x)`, `var_pop(x)` | Chan et al. parallel merge |
//! | `min(x)`, `max(x)` (policy) | the same                     | min / max                      |

use ihdsi_catalog::bounds::ValueBounds;

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
