//! The network faces of `ihdsi`: the services a site and a coordinator
//! run. The command line, shell, client and demo that drive them are the
//! `ihdsi-cli` crate.
//!
//! * [`auth`]: analyst authentication in front of the coordinator.
//! * [`site_service`]: a site's Arrow Flight service (DoGet a subplan ticket).
//! * [`coordinator`]: the coordinator's Flight SQL service for analysts.
//! * [`status`]: the one mapping from engine errors to gRPC statuses.
//! * [`tls`]: mutual TLS between coordinator and sites, `ihdsi certs init`.
//! * [`permits`]: the coordinator's store of data permits and how an
//!   analyst selects one; `ihdsi permit`.
//! * [`serve`]: binding and running the servers.

pub mod auth;
pub mod coordinator;
pub mod error;
pub mod permits;
pub mod serve;
pub mod site_service;
pub mod status;
pub mod tls;

pub use error::{Result, ServerError};
