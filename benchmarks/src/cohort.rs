//! The synthetic cohort each sweep point runs on, generated once and kept.
//!
//! Generation is deterministic (seed 42), so a cached folder is reused as
//! long as the generator has not changed: bump [`GENERATOR_VERSION`] when it
//! does. A cohort is written to `<name>.partial` and renamed when complete,
//! so an interrupted run never leaves a half cohort that looks cached.

use std::path::{Path, PathBuf};

use ihdsi_synthetic::{GenerateOptions, generate};

use crate::error::{BenchError, Result};

/// Bump when `ihdsi_synthetic` changes what it writes.
pub const GENERATOR_VERSION: u32 = 1;

/// A generated cohort.
#[derive(Debug, Clone)]
pub struct Cohort {
    pub dir: PathBuf,
    pub persons: u64,
    pub sites: Vec<String>,
    /// Rows over all tables and sites.
    pub rows: u64,
    /// Bytes of Parquet on disk.
    pub bytes: u64,
}

/// Site ids for a federation of `n` sites: the three reference sites
/// first, then generic ones.
pub fn site_ids(n: usize) -> Vec<String> {
    let named = ["lu", "us", "kr"];
    (0..n)
        .map(|i| match named.get(i) {
            Some(id) if n > 1 => (*id).to_string(),
            _ if n == 1 => "us".to_string(),
            _ => format!("s{}", i + 1),
        })
        .collect()
}

/// The cohort of `persons` over `sites` under `root`, generated if absent.
pub fn ensure(root: &Path, persons: u64, sites: &[String]) -> Result<Cohort> {
    let name = format!("v{GENERATOR_VERSION}-p{persons}-{}", sites.join("_"));
    let dir = root.join(&name);
    let fail = |path: &Path, e: &dyn std::fmt::Display| BenchError::Cohort {
        path: path.to_path_buf(),
        message: e.to_string(),
    };
    if !dir.join("concept.parquet").exists() {
        let partial = root.join(format!("{name}.partial"));
        let _ = std::fs::remove_dir_all(&partial);
        let started = std::time::Instant::now();
        eprintln!(
            "generating {persons} persons over {} sites ...",
            sites.len()
        );
        generate(&GenerateOptions {
            out: partial.clone(),
            persons,
            seed: 42,
            sites: sites.to_vec(),
        })
        .map_err(|e| fail(&partial, &e))?;
        std::fs::rename(&partial, &dir).map_err(|e| fail(&dir, &e))?;
        eprintln!("  generated in {:.1} s", started.elapsed().as_secs_f64());
    }
    let (rows, bytes) = measure(&dir).map_err(|e| fail(&dir, &e))?;
    Ok(Cohort {
        dir,
        persons,
        sites: sites.to_vec(),
        rows,
        bytes,
    })
}

/// Rows (from Parquet footers) and bytes of every patient table file.
fn measure(dir: &Path) -> std::result::Result<(u64, u64), String> {
    use datafusion::parquet::file::reader::{FileReader, SerializedFileReader};
    let (mut rows, mut bytes) = (0u64, 0u64);
    for site in std::fs::read_dir(dir).map_err(|e| e.to_string())? {
        let site = site.map_err(|e| e.to_string())?.path();
        if !site.is_dir() {
            continue;
        }
        for file in std::fs::read_dir(&site).map_err(|e| e.to_string())? {
            let path = file.map_err(|e| e.to_string())?.path();
            let f = std::fs::File::open(&path).map_err(|e| e.to_string())?;
            bytes += f.metadata().map_err(|e| e.to_string())?.len();
            let reader = SerializedFileReader::new(f).map_err(|e| e.to_string())?;
            rows += u64::try_from(reader.metadata().file_metadata().num_rows()).unwrap_or(0);
        }
    }
    Ok((rows, bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn site_ids_for_sweeps() {
        assert_eq!(site_ids(1), vec!["us"]);
        assert_eq!(site_ids(3), vec!["lu", "us", "kr"]);
        assert_eq!(site_ids(8)[3..], ["s4", "s5", "s6", "s7", "s8"]);
    }
}
