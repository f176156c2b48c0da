//! The network faces of `ihdsi` and its command line.
//!
//! * [`auth`]: analyst authentication in front of the coordinator.
//! * [`site_service`]: a site's Arrow Flight service (DoGet a subplan ticket).
//! * [`coordinator`]: the coordinator's Flight SQL service for analysts.
//! * [`status`]: the one mapping from engine errors to gRPC statuses.
//! * [`tls`]: mutual TLS between coordinator and sites, `ihdsi certs init`.
//! * [`permits`]: the coordinator's store of data permits and how an
//!   analyst selects one; `ihdsi permit`.
//! * [`serve`]: binding and running the servers.
//! * [`client`], [`format`]: `ihdsi query`.
//! * [`shell`]: `ihdsi shell`, the interactive SQL shell.
//! * [`demo`]: a whole federation on loopback.
//! * [`cli`]: the `ihdsi` command.

pub mod auth;
pub mod cli;
pub mod client;
pub mod coordinator;
pub mod demo;
pub mod error;
pub mod format;
pub mod permits;
pub mod serve;
pub mod shell;
pub mod site_service;
pub mod status;
pub mod tls;

pub use error::{Result, ServerError};
