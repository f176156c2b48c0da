//! The federated planner: SQL over the virtual cohort schema → DataFusion
//! `LogicalPlan` → release boundaries → per-site subplan SQL and the
//! coordinator's merge.
//!
//! ```text
//!   analyst SQL
//!       │  placeholders::positional     (`?` → `$1`, `$2`, …)
//!       │  constructs::check            (SQL the engine would not honour, refused)
//!       │  split::plan_query
//!       │  parameters::bind             (bound values checked and typed)
//!       │  grouping_sets                (ROLLUP/CUBE/GROUPING SETS: a release per set)
//!       │  distinct_values              (count(DISTINCT x): released groups of GROUP BY x)
//!       │  survival                     (kaplan_meier: a release per bin, finished above)
//!       ▼
//!   LogicalPlan (unoptimised) ──► admission::check_site_local   (below each boundary)
//!       │                         admission::identifier         (where person_id may appear)
//!       │                         admission::free_text          (source values never filtered or grouped)
//!       │                         admission::dates              (dates only generalised or relative)
//!       │                         admission::functions          (allow-list; every call total)
//!       │                         admission::values             (sums only of declared quantities)
//!       │                         admission::amplification      (dp: joins that cannot multiply rows)
//!       │                         aggregates::classify          (the boundary aggregate)
//!       │                         cells::layout                 (the patients behind every cell)
//!       ▼
//!   FederatedPlan
//!     ├─ releases[i].site_sql      ──► every site: site::admit_subplan, run, threshold
//!     ├─ releases[i].merges        ──► coordinator: merge partials, threshold
//!     └─ coordinator_plan(released) ─► coordinator: HAVING / ORDER BY / LIMIT / joins
//! ```
//!
//! The same admission code runs at the coordinator and at every site, so a
//! site refuses whatever the coordinator should have refused.

pub mod admission;
pub mod aggregates;
pub mod bounding;
pub mod cells;
pub mod columns;
pub mod constructs;
pub mod distinct_values;
pub mod dominance;
pub mod error;
pub mod explain;
pub mod exprs;
pub mod grouping_sets;
pub mod limits;
pub mod lineage;
pub mod parameters;
pub mod placeholders;
pub mod pruning;
pub mod release;
pub mod rules;
pub mod site;
pub mod split;
pub mod survival;
pub mod unparse;
pub mod virtual_table;

pub use error::{PlanError, Result};
pub use limits::{check_limits, plan_within};
pub use release::{PATIENTS_COLUMN, Release};
pub use rules::Rule;
pub use site::{SiteAdmission, admit_subplan};
pub use split::{
    FederatedPlan, parameter_types, plan_query, plan_query_with_params, release_table,
};
pub use virtual_table::register_virtual_schema;
