//! The coordinator's Flight SQL service.
//!
//! `CommandStatementQuery` is answered in two steps, as Flight SQL requires:
//! `GetFlightInfo` runs the federated query and keeps the (small, already
//! aggregated and thresholded) result under a fresh handle; `DoGet` streams
//! it. Running at `GetFlightInfo` means the schema announced in FlightInfo
//! is byte-for-byte the schema streamed by `DoGet`, metadata (the
//! suppressed-group count) and nullability included, which strict clients
//! such as ADBC check; and errors reach the client at execute time.

pub mod actions;
pub mod drain;
mod held;
pub mod metadata;
pub mod prepared;
mod replies;
mod results;
mod service;
pub mod types;

pub use drain::Drain;
pub use results::ResultCache;
pub use service::CoordinatorService;
