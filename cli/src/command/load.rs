//! `ihdsi load`: put a generated site's data where a site backend reads it.

use std::path::PathBuf;

use clap::Subcommand;

use crate::error::Result;

/// Where to load a site.
#[derive(Debug, Subcommand)]
pub(super) enum Load {
    /// Create the OMOP CDM v5.4 tables in a PostgreSQL database and copy a
    /// site's Parquet files into them (tables of the same names are
    /// replaced).
    Postgres {
        /// The site's folder: DIR/<site> of `ihdsi generate`.
        #[arg(long)]
        data: PathBuf,
        /// The database, e.g. postgres://ihdsi@127.0.0.1:5432/omop.
        #[arg(long)]
        url: String,
        /// The vocabulary file (DIR/concept.parquet of `ihdsi generate`),
        /// loaded as `concept`.
        #[arg(long)]
        vocabulary: Option<PathBuf>,
    },
}

#[expect(clippy::print_stdout, reason = "the command's report")]
pub(super) async fn load(command: Load) -> Result<()> {
    match command {
        Load::Postgres {
            data,
            url,
            vocabulary,
        } => {
            let report =
                ihdsi_engine::site::postgres::load::load_site(&data, vocabulary.as_deref(), &url)
                    .await?;
            for (table, rows) in &report.tables {
                println!("{table}: {rows} rows");
            }
            Ok(())
        }
    }
}
