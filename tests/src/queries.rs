//! Reading the text-based query files in `tests/queries/`.
//!
//! ```text
//! -- name: some_query
//! -- oracle: SELECT ... (optional, one line)
//! -- error: expected error text (optional)
//! -- policy: no-min-max (optional)
//! SELECT ...;
//! ```

use std::path::Path;

/// One query of a query file.
#[derive(Debug, Clone, Default)]
pub struct Case {
    pub name: String,
    pub sql: String,
    pub oracle: Option<String>,
    pub error: Option<String>,
    pub policy: Option<String>,
}

/// Parse a query file.
pub fn load(file: &str) -> Vec<Case> {
    // Relative to the package folder, where `cargo test` runs the tests: a
    // path compiled in (env!) would name whichever checkout built the
    // binary, and CI reuses a cached target/ across checkout paths.
    let path = Path::new("queries").join(file);
    let text =
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    let mut cases = Vec::new();
    let mut current: Option<Case> = None;
    for line in text.lines() {
        if let Some(name) = line.strip_prefix("-- name:") {
            if let Some(c) = current.take() {
                cases.push(c);
            }
            current = Some(Case {
                name: name.trim().to_string(),
                ..Case::default()
            });
            continue;
        }
        let Some(case) = current.as_mut() else {
            continue;
        };
        if let Some(v) = line.strip_prefix("-- oracle:") {
            case.oracle = Some(v.trim().trim_end_matches(';').to_string());
        } else if let Some(v) = line.strip_prefix("-- error:") {
            case.error = Some(v.trim().to_string());
        } else if let Some(v) = line.strip_prefix("-- policy:") {
            case.policy = Some(v.trim().to_string());
        } else if !line.starts_with("--") {
            case.sql.push_str(line);
            case.sql.push('\n');
        }
    }
    if let Some(c) = current.take() {
        cases.push(c);
    }
    for c in &mut cases {
        c.sql = c.sql.trim().trim_end_matches(';').trim().to_string();
    }
    cases
}
