//! The planner's integration tests, in one binary: the site SQL pinned in
//! `tests/site_sql.slt`, and the `arbitrary`-driven target that throws
//! generated statements at planning and site admission.

// The arbitrary target plans each statement on a task it awaits.
#![allow(clippy::disallowed_methods)]

mod arbitrary_sql;
mod metamorphic;
mod site_sql;
