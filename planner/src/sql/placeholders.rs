//! `?` placeholders, as JDBC, ODBC, the ADBC DBAPI's default paramstyle,
//! Tableau, DBeaver and Power BI write them, become the positional
//! parameters DataFusion plans (`$1`, `$2`, … in order of appearance).
//!
//! The rewrite works on the statement's tokens, so a `?` inside a string
//! literal, a quoted name or a comment is left alone. A statement that mixes
//! `?` with `$n` is refused: which value goes where would be a guess.

use std::borrow::Cow;

use datafusion::sql::sqlparser::dialect::GenericDialect;
use datafusion::sql::sqlparser::tokenizer::{Token, Tokenizer};

use crate::error::{PlanError, Result};

/// `sql` with each `?` placeholder numbered in order (`$1`, `$2`, …); the
/// statement itself when it has none.
pub fn positional(sql: &str) -> Result<Cow<'_, str>> {
    if !sql.contains('?') {
        return Ok(Cow::Borrowed(sql));
    }
    let tokens = Tokenizer::new(&GenericDialect {}, sql)
        .tokenize()
        .map_err(|e| PlanError::Syntax(e.to_string()))?;
    let is_question = |t: &Token| matches!(t, Token::Placeholder(p) if p == "?");
    if !tokens.iter().any(is_question) {
        return Ok(Cow::Borrowed(sql));
    }
    if tokens
        .iter()
        .any(|t| matches!(t, Token::Placeholder(p) if p.starts_with('$')))
    {
        return Err(PlanError::Schema(
            "the statement mixes ? and $n placeholders; write all its parameters one way".into(),
        ));
    }
    let mut n = 0;
    let mut out = String::with_capacity(sql.len() + 8);
    for token in &tokens {
        if is_question(token) {
            n += 1;
            out.push_str(&format!("${n}"));
        } else {
            out.push_str(&token.to_string());
        }
    }
    Ok(Cow::Owned(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn question_marks_are_numbered_in_order_outside_literals() {
        let sql = "SELECT count(*) FROM person WHERE year_of_birth > ? AND gender_concept_id = ? AND person_source_value <> '?' -- ?\n";
        assert_eq!(
            positional(sql).expect("rewritten"),
            "SELECT count(*) FROM person WHERE year_of_birth > $1 AND gender_concept_id = $2 AND person_source_value <> '?' -- ?\n"
        );
        let plain = "SELECT count(*) FROM person WHERE year_of_birth > $1";
        assert!(matches!(positional(plain), Ok(Cow::Borrowed(_))));
        let quoted = "SELECT count(*) AS \"why?\" FROM person";
        assert_eq!(positional(quoted).expect("untouched"), quoted);
    }

    #[test]
    fn mixing_the_two_styles_is_refused() {
        let err = positional(
            "SELECT count(*) FROM person WHERE year_of_birth > ? AND gender_concept_id = $1",
        )
        .expect_err("mixed")
        .to_string();
        assert!(err.contains("mixes ? and $n"), "{err}");
    }
}
