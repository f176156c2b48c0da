//! The `ihdsi` command and everything an analyst or an operator drives
//! from a terminal; the services themselves live in `ihdsi-flight-server`.
//!
//! * [`command`]: the `ihdsi` command line, one argument struct per command.
//! * [`client`], [`format`]: `ihdsi query` and the client library the shell,
//!   the demo, the tests and the benchmarks log in with.
//! * [`shell`]: `ihdsi shell`, the interactive SQL shell.
//! * [`federation`]: the one way to start a federation (demo, tests,
//!   benchmarks): real config structs, written with `toml`.
//! * [`demo`]: a whole federation on loopback (`ihdsi demo`).
//! * [`signals`]: Ctrl-C and SIGTERM, on which every server drains.

pub mod client;
pub mod command;
pub mod demo;
pub mod error;
pub mod federation;
pub mod format;
pub mod shell;
pub mod signals;

pub use error::{CliError, Result};
