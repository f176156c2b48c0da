//! The federated planner: SQL over the virtual cohort schema → DataFusion
//! `LogicalPlan` → release boundaries → per-site subplan SQL and the
//! coordinator's merge.
//!
//! Each folder is one arrow of the flow; a folder imports only the ones
//! above it in this picture (`scripts/import_cycles.py` checks there is no
//! circle):
//!
//! ```text
//!   analyst SQL
//!       │  sql/          limits on tokens, constructs refused by name,
//!       │                `?` → `$1`, bound values checked, the virtual schema
//!       ▼
//!   LogicalPlan (unoptimised)
//!       │  analysis/     reading a plan: expressions, where person_id flows
//!       │                (lineage), what a column carries, the scope an
//!       │                expression reads, aggregate kinds, additive terms,
//!       │                axes
//!       │  admission/    may each site run this below the boundary with its
//!       │                meaning intact? (identifier, free text, dates,
//!       │                functions, value ranges and magnitudes, values,
//!       │                amplification, one row per patient) — and, at a
//!       │                site, is the received subplan canonical
//!       │                (`admit_subplan`)?
//!       │  split/        release boundaries, grouping sets, distinct values,
//!       │                partial aggregates, site pruning, unparsing, EXPLAIN
//!       │  binned/       survival curves, histograms and quantiles as
//!       │                releases on an axis, and their finishing UDAFs
//!       ▼
//!   FederatedPlan
//!     ├─ releases[i]   release/   the contract the engine and the
//!     │                           disclosure layer read: Release, merges,
//!     │                           partial kinds, cells, dominance entries,
//!     │                           the time axis, column names
//!     ├─ site side     partials/  what a site adds next to the partials:
//!     │                           cell counts, contribution bounding,
//!     │                           dominance contributions
//!     └─ coordinator_plan(released) ─► HAVING / ORDER BY / LIMIT / joins
//! ```
//!
//! The same admission code runs at the coordinator and at every site, so a
//! site refuses whatever the coordinator should have refused.

pub mod admission;
pub mod analysis;
pub mod binned;
pub mod error;
pub mod partials;
pub mod release;
pub mod rules;
pub mod split;
pub mod sql;

pub use admission::{SiteAdmission, admit_subplan};
pub use error::{PlanError, Result};
pub use release::{PATIENTS_COLUMN, Release};
pub use rules::Rule;
pub use split::{
    FederatedPlan, parameter_types, plan_query, plan_query_with_params, release_table,
};
pub use sql::limits::{check_limits, plan_within};

/// Registers the virtual cohort schema a statement is planned against: every
/// patient table as a [`sql::virtual_table::VirtualTable`] (schema, no data)
/// and the binned statistics' SQL functions.
pub fn register_virtual_schema(
    ctx: &datafusion::prelude::SessionContext,
) -> datafusion::error::Result<()> {
    sql::virtual_table::register_tables(ctx)?;
    binned::register(ctx);
    Ok(())
}
