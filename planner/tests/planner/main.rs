//! The planner's integration tests, in one binary: the site SQL pinned in
//! `tests/site_sql.slt`, and the `arbitrary`-driven target that throws
//! generated statements at planning and site admission.

mod arbitrary_sql;
mod site_sql;
