//! SQL intake: what the analyst sent, before it is a plan.
//!
//! The statement limits are checked on tokens ([`limits`]), constructs the
//! engine would not honour are refused by name ([`constructs`]), `?`
//! placeholders become positional parameters ([`placeholders`]) and bound
//! values are checked against their places ([`parameters`]); the virtual
//! cohort schema every statement is planned against is [`virtual_table`].
//! Nothing here reads patient data or knows about sites.

pub mod constructs;
pub mod limits;
pub mod parameters;
pub mod placeholders;
pub mod virtual_table;
