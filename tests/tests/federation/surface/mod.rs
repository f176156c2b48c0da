//! The Flight SQL surface analysts and BI tools meet: authentication, every
//! command and its schemas, the JDBC call sequence, statement limits and clear
//! errors.

mod auth;
mod commands;
pub(crate) mod errors;
mod jdbc;
mod limits;
mod metadata;
