//! The query suites in `tests/queries/*.slt`, read with the sqllogictest
//! parser (the format DataFusion's own suites use).
//!
//! ```text
//! query II rowsort some_query          <- the label names the case
//! SELECT ...
//!
//! onlyif oracle                        <- the oracle of the case above
//! query II rowsort some_query
//! SELECT ... HAVING count(DISTINCT person_id) >= 10
//!
//! # a_refused_query                    <- a comment names an error case
//! connection strict                    <- run on the federation without MIN/MAX
//! query error refused: row\-level output
//! SELECT * FROM person
//! ```
//!
//! Rows are not pinned in the files: every suite compares the federation
//! with the oracle, live, over the same generated cohort.

use std::path::Path;

use sqllogictest::{
    Condition, Connection, DefaultColumnType, ExpectedError, QueryExpect, Record, StatementExpect,
};

/// One case of a suite.
#[derive(Debug, Clone)]
pub struct Case {
    pub name: String,
    pub sql: String,
    /// The SQL whose answer on the oracle the federated answer must equal,
    /// when it is not `sql` itself.
    pub oracle: Option<String>,
    /// The error the query must fail with.
    pub error: Option<ExpectedError>,
    /// The named connection (federation) it runs on; the default when absent.
    pub connection: Option<String>,
}

impl Case {
    /// Whether `message` is the error this case expects.
    pub fn error_matches(&self, message: &str) -> bool {
        self.error.as_ref().is_some_and(|e| e.is_match(message))
    }
}

/// Read `tests/queries/<file>`.
pub fn load(file: &str) -> Vec<Case> {
    // Relative to the package folder, where `cargo test` runs the tests: a
    // path compiled in (env!) would name whichever checkout built the
    // binary, and CI reuses a cached target/ across checkout paths.
    let path = Path::new("queries").join(file);
    let records = sqllogictest::parse_file::<DefaultColumnType>(&path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut cases: Vec<Case> = Vec::new();
    let mut comment: Option<String> = None;
    for record in records {
        let (sql, conditions, connection, label, error) = match record {
            Record::Comment(lines) => {
                comment = lines.first().map(|l| l.trim().to_string());
                continue;
            }
            Record::Query {
                sql,
                conditions,
                connection,
                expected,
                ..
            } => match expected {
                QueryExpect::Results { label, .. } => (sql, conditions, connection, label, None),
                QueryExpect::Error(e) => (sql, conditions, connection, None, Some(e)),
            },
            Record::Statement {
                sql,
                conditions,
                connection,
                expected,
                ..
            } => match expected {
                StatementExpect::Error(e) => (sql, conditions, connection, None, Some(e)),
                _ => (sql, conditions, connection, None, None),
            },
            _ => continue,
        };
        let name = label
            .or_else(|| comment.take())
            .unwrap_or_else(|| panic!("{}: a case without a name: {sql}", path.display()));
        let sql = sql.trim().trim_end_matches(';').trim().to_string();
        if is_oracle(&conditions) {
            let case = cases
                .last_mut()
                .filter(|c| c.name == name)
                .unwrap_or_else(|| {
                    panic!(
                        "{}: oracle of {name} follows no case of that name",
                        path.display()
                    )
                });
            case.oracle = Some(sql);
            continue;
        }
        cases.push(Case {
            name,
            sql,
            oracle: None,
            error,
            connection: match connection {
                Connection::Default => None,
                Connection::Named(n) => Some(n),
            },
        });
    }
    cases
}

fn is_oracle(conditions: &[Condition]) -> bool {
    conditions
        .iter()
        .any(|c| matches!(c, Condition::OnlyIf { label } if label == "oracle"))
}
