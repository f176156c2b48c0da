//! A generated query as the fuzzer sends it: the federation's text with
//! positional parameters, the oracle's text with their literals, and the
//! values. Every shape ([`super::shapes`], [`super::binned`]) ends here.

/// One generated query, and how many group keys lead its columns.
#[derive(Debug, Clone)]
pub struct Generated {
    /// What the federation is sent; `$1`, `$2`, … where parameters are.
    pub sql: String,
    /// The same query with each parameter written as its literal, for
    /// the pooled oracle.
    pub oracle_sql: String,
    /// The values of `$1`, `$2`, … (none: a plain statement).
    pub params: Vec<i64>,
    pub keys: usize,
}

/// Marks a literal that becomes a positional parameter (`\u{1}value\u{2}`),
/// written by [`super::predicate`]; [`finish`] turns each into `$n` for the
/// federation and back into the literal for the oracle.
pub(super) fn parameter(value: i64) -> String {
    format!("\u{1}{value}\u{2}")
}

pub(super) fn finish(text: String, keys: usize) -> Generated {
    let (mut sql, mut oracle_sql, mut params) = (String::new(), String::new(), Vec::new());
    let mut rest = text.as_str();
    while let Some(start) = rest.find('\u{1}') {
        let end = rest[start..]
            .find('\u{2}')
            .map_or(rest.len(), |e| start + e);
        let value = &rest[start + 1..end];
        sql.push_str(&rest[..start]);
        oracle_sql.push_str(&rest[..start]);
        params.push(value.parse().unwrap_or(0));
        sql.push_str(&format!("${}", params.len()));
        oracle_sql.push_str(value);
        rest = rest.get(end + 1..).unwrap_or("");
    }
    sql.push_str(rest);
    oracle_sql.push_str(rest);
    Generated {
        sql,
        oracle_sql,
        params,
        keys,
    }
}
