//! `ihdsi generate`: a deterministic, realistic multi-site OMOP cohort.
//!
//! Each site gets a disjoint `person_id` range (`(k + 1) · 10⁹ + i` for the
//! k-th site), its own size and case mix, and its own random stream derived
//! from `--seed`, so the output does not depend on thread scheduling. Sites
//! are generated in parallel, one thread each.
//!
//! Case mix of the three reference sites: bladder cancer is concentrated at
//! the Luxembourg site (`lu`), Parkinson's disease at the Korean site (`kr`);
//! the US site (`us`) is the largest and the most diverse. Other site ids get
//! a generic profile.

mod buffer;
mod clinical;
mod courses;
mod error;
mod patient;
mod profile;
mod record;
mod rng;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, Date32Array, Int32Array, StringArray};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::parquet::arrow::ArrowWriter;

pub use error::{Result, SyntheticError};
use ihdsi_catalog::schema;
use ihdsi_catalog::vocabulary::CONCEPTS;
pub use profile::SiteProfile;

/// What to generate.
#[derive(Debug, Clone)]
pub struct GenerateOptions {
    /// Output folder; receives `<site>/<table>.parquet` and `concept.parquet`.
    pub out: PathBuf,
    /// Total persons across all sites.
    pub persons: u64,
    /// Seed of the whole cohort.
    pub seed: u64,
    /// Site ids, e.g. `["lu", "us", "kr"]`.
    pub sites: Vec<String>,
}

impl Default for GenerateOptions {
    fn default() -> Self {
        Self {
            out: PathBuf::from("demo-data"),
            persons: 30_000,
            seed: 42,
            sites: vec!["lu".into(), "us".into(), "kr".into()],
        }
    }
}

/// Rows written per site and table.
#[derive(Debug, Clone, Default)]
pub struct GenerateSummary {
    /// `(site, persons, rows over all tables)`.
    pub sites: Vec<(String, u64, u64)>,
}

/// Split `total` persons over sites in proportion to their profile weights.
fn split_persons(total: u64, profiles: &[SiteProfile]) -> Vec<u64> {
    let weight: f64 = profiles.iter().map(|p| p.weight).sum();
    let mut counts: Vec<u64> = profiles
        .iter()
        .map(|p| (total as f64 * p.weight / weight).floor() as u64)
        .collect();
    let assigned: u64 = counts.iter().sum();
    if let Some(first) = counts.first_mut() {
        *first += total - assigned;
    }
    counts
}

/// Generate the cohort. Existing files in `out` are overwritten.
pub fn generate(opts: &GenerateOptions) -> Result<GenerateSummary> {
    if opts.sites.is_empty() {
        return Err(SyntheticError::InvalidOptions(
            "--sites needs at least one site id".into(),
        ));
    }
    for (i, site) in opts.sites.iter().enumerate() {
        ihdsi_catalog::registry::validate_id(site)?;
        if opts.sites[..i].contains(site) {
            return Err(SyntheticError::InvalidOptions(format!(
                "site id '{site}' is listed twice"
            )));
        }
    }
    let profiles: Vec<SiteProfile> = opts
        .sites
        .iter()
        .map(|s| SiteProfile::for_site(s))
        .collect();
    let counts = split_persons(opts.persons, &profiles);
    std::fs::create_dir_all(&opts.out).map_err(|source| SyntheticError::Write {
        path: opts.out.clone(),
        source,
    })?;
    write_concepts(&opts.out.join("concept.parquet"))?;
    let results: Vec<Result<(String, u64, u64)>> = std::thread::scope(|scope| {
        let handles: Vec<_> = opts
            .sites
            .iter()
            .enumerate()
            .map(|(k, site)| {
                let profile = profiles[k].clone();
                let n = counts[k];
                let dir = opts.out.join(site);
                let seed = opts.seed.wrapping_mul(1_000_003).wrapping_add(k as u64);
                scope.spawn(move || {
                    let rows = patient::generate_site(
                        &dir,
                        &profile,
                        (k as i64 + 1) * 1_000_000_000,
                        n,
                        seed,
                    )?;
                    Ok((site.clone(), n, rows))
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join().unwrap_or_else(|_| {
                    Err(SyntheticError::InvalidOptions(
                        "generator thread panicked".into(),
                    ))
                })
            })
            .collect()
    });
    let sites = results.into_iter().collect::<Result<Vec<_>>>()?;
    tracing::info!(
        persons = opts.persons,
        sites = sites.len(),
        "cohort generated"
    );
    Ok(GenerateSummary { sites })
}

fn write_concepts(path: &Path) -> Result<()> {
    let def =
        schema::table("concept").ok_or_else(|| SyntheticError::UnknownTable("concept".into()))?;
    let start = rng::days_from_civil(1970, 1, 1);
    let end = rng::days_from_civil(2099, 12, 31);
    let n = CONCEPTS.len();
    let text = |f: fn(&ihdsi_catalog::vocabulary::Concept) -> &str| -> ArrayRef {
        Arc::new(StringArray::from_iter_values(CONCEPTS.iter().map(f)))
    };
    let standard: ArrayRef = Arc::new(StringArray::from_iter(
        CONCEPTS
            .iter()
            .map(|c| (c.vocabulary != "IHDSI" && c.id != 0).then_some("S")),
    ));
    let columns: Vec<ArrayRef> = vec![
        Arc::new(Int32Array::from_iter_values(CONCEPTS.iter().map(|c| c.id))),
        text(|c| c.name),
        text(|c| c.domain),
        text(|c| c.vocabulary),
        text(|c| c.class),
        standard,
        text(|c| c.code),
        Arc::new(Date32Array::from(vec![start; n])),
        Arc::new(Date32Array::from(vec![end; n])),
        Arc::new(StringArray::from(vec![None::<&str>; n])),
    ];
    let encode = |e: &dyn std::fmt::Display| SyntheticError::Encode {
        table: "concept".into(),
        message: e.to_string(),
    };
    let batch = RecordBatch::try_new(def.file_schema(), columns).map_err(|e| encode(&e))?;
    let file = std::fs::File::create(path).map_err(|source| SyntheticError::Write {
        path: path.to_path_buf(),
        source,
    })?;
    let mut writer = ArrowWriter::try_new(file, batch.schema(), Some(buffer::writer_properties()))
        .map_err(|e| encode(&e))?;
    writer.write(&batch).map_err(|e| encode(&e))?;
    writer.close().map_err(|e| encode(&e))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_is_exact_and_weighted() {
        let profiles: Vec<SiteProfile> = ["lu", "us", "kr"]
            .iter()
            .map(|s| SiteProfile::for_site(s))
            .collect();
        let c = split_persons(30_001, &profiles);
        assert_eq!(c.iter().sum::<u64>(), 30_001);
        assert!(c[1] > c[2] && c[2] > c[0], "{c:?}");
    }
}
