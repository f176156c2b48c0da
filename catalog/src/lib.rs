//! The virtual cross-border cohort schema that every analyst query is written
//! against, and the registry of sites that hold its rows.
//!
//! No site stores a table called `person` that the coordinator could read:
//! the tables here are *virtual*. The coordinator plans against their schemas
//! only, and each site binds the same names to its own Parquet files. Because
//! both sides share this one definition, a subplan that type-checks at the
//! coordinator type-checks at every site.
//!
//! * [`schema`]: OMOP CDM v5.4 clinical tables, the genomic
//!   `variant_occurrence` table and the public `concept` vocabulary, with the
//!   virtual `site` column and each table's privacy unit (`person_id`).
//! * [`registry`]: sites and federation as read from TOML.
//! * [`privacy`]: the privacy mode, contribution bounding and DP parameters.
//! * [`bounds`]: declared value ranges of the columns SUM and AVG may read.
//! * [`permit`]: EHDS data permits (ed25519-signed) and a site's own
//!   narrowing of them.
//! * [`security`]: TLS, audit and opt-out settings.
//! * [`limits`]: how big a statement may be before it is planned.
//! * [`resources`]: how much memory, rows, time and concurrency one query
//!   may take.
//! * [`vocabulary`]: the OMOP concepts the synthetic cohort uses.
//!
//! The synthetic cohort generator behind `ihdsi generate` lives in its own
//! crate, `ihdsi-synthetic`, so that what every crate compiles stays small.

pub mod auth;
pub mod bounds;
pub mod error;
pub mod limits;
pub mod permit;
pub mod privacy;
pub mod registry;
pub mod resources;
pub mod schema;
pub mod security;
pub mod vocabulary;

pub use auth::AuthSection;
pub use error::{CatalogError, Result};
pub use limits::QueryLimits;
pub use privacy::{Bounding, DpSettings, PrivacyMode, PrivacyPolicy};
pub use registry::{FederationConfig, SiteConfig, SiteEntry};
pub use resources::{CoordinatorResources, SiteResources};
pub use schema::{PRIVACY_UNIT, SITE_COLUMN, TableDef, TableKind};
