//! The statement limits of `[limits]` ([`QueryLimits`]), checked on the
//! tokens of a statement before anything parses it into a tree.
//!
//! The tokenizer is a loop, so this check cannot itself run out of stack,
//! whatever the input. Once it passes, every tree a later step walks is
//! bounded: its depth is at most the chained binary operators plus the
//! nesting of parentheses.
//!
//! Planning then runs on a thread of its own ([`plan_within`]) whose stack
//! is sized for those bounds, so that no statement within the limits can
//! overflow it, and it is given up after `max_planning_ms`; at most four
//! such threads a core run at once in a process.

use datafusion::sql::sqlparser::dialect::GenericDialect;
use datafusion::sql::sqlparser::keywords::Keyword;
use datafusion::sql::sqlparser::tokenizer::{Token, Tokenizer};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use ihdsi_catalog::QueryLimits;

use crate::error::{PlanError, Result};

/// What a statement measures against the limits.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Size {
    chain_terms: usize,
    nesting: usize,
    joins: usize,
    set_operations: usize,
}

fn measure(sql: &str) -> Result<Size> {
    let tokens = Tokenizer::new(&GenericDialect {}, sql)
        .tokenize()
        .map_err(|e| PlanError::Syntax(e.to_string()))?;
    let mut size = Size::default();
    let mut depth = 0usize;
    let mut previous: Option<&Token> = None;
    for token in &tokens {
        if matches!(token, Token::Whitespace(_)) {
            continue;
        }
        let after = previous.replace(token);
        match token {
            // `*` as a wildcard (`count(*)`, `SELECT *`, `t.*`) is no operator.
            Token::Mul if is_wildcard_position(after) => {}
            Token::LParen => {
                depth += 1;
                size.nesting = size.nesting.max(depth);
            }
            Token::RParen => depth = depth.saturating_sub(1),
            Token::Plus
            | Token::Minus
            | Token::Mul
            | Token::Div
            | Token::Mod
            | Token::StringConcat => size.chain_terms += 1,
            Token::Word(w) => match w.keyword {
                Keyword::AND | Keyword::OR => size.chain_terms += 1,
                Keyword::JOIN => size.joins += 1,
                Keyword::UNION | Keyword::INTERSECT | Keyword::EXCEPT => size.set_operations += 1,
                _ => {}
            },
            _ => {}
        }
    }
    Ok(size)
}

/// Whether a `*` after `previous` is a wildcard rather than a product.
fn is_wildcard_position(previous: Option<&Token>) -> bool {
    match previous {
        None | Some(Token::LParen | Token::Comma | Token::Period) => true,
        Some(Token::Word(w)) => matches!(
            w.keyword,
            Keyword::SELECT | Keyword::DISTINCT | Keyword::ALL
        ),
        _ => false,
    }
}

/// Refuse `sql` if it is past any of `limits`, naming the limit.
pub fn check_limits(sql: &str, limits: &QueryLimits) -> Result<()> {
    let over = |limit: &'static str, value: usize, max: usize| {
        (value > max).then_some(PlanError::Limit { limit, value, max })
    };
    if let Some(e) = over("max_statement_bytes", sql.len(), limits.max_statement_bytes) {
        return Err(e);
    }
    let size = measure(sql)?;
    let checks = [
        over("max_chain_terms", size.chain_terms, limits.max_chain_terms),
        over("max_nesting", size.nesting, limits.max_nesting),
        over("max_joins", size.joins, limits.max_joins),
        over(
            "max_set_operations",
            size.set_operations,
            limits.max_set_operations,
        ),
    ];
    match checks.into_iter().flatten().next() {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// Run `planning` on a thread of its own, with a stack sized for
/// `limits` ([`QueryLimits::planning_stack_bytes`]), and refuse the
/// statement if it has not finished within `limits.max_planning_ms`.
///
/// The thread runs the future on the caller's tokio runtime
/// ([`tokio::runtime::Handle::block_on`]), so anything planning awaits
/// works as before. A thread past its time cannot be stopped; it finishes
/// on its own (its work is bounded by the statement limits) and its plan
/// is dropped. A panic while planning ends that thread only, and the
/// statement is refused as an internal error.
pub async fn plan_within<T, E, F>(limits: &QueryLimits, planning: F) -> Result<T, E>
where
    F: Future<Output = Result<T, E>> + Send + 'static,
    T: Send + 'static,
    E: From<PlanError> + Send + 'static,
{
    let stack = limits.planning_stack_bytes();
    let planned = async move {
        // The thread holds its turn until it ends, past its time limit too.
        let turn = Arc::clone(&PLANNERS)
            .acquire_owned()
            .await
            .map_err(|_| PlanError::Internal("the planning threads are closed".into()))?;
        let runtime = tokio::runtime::Handle::current();
        let (tx, rx) = tokio::sync::oneshot::channel();
        std::thread::Builder::new()
            .name("ihdsi-plan".into())
            .stack_size(stack)
            .spawn(move || {
                let _turn = turn;
                let _ = tx.send(runtime.block_on(planning));
            })
            .map_err(|e| PlanError::Internal(format!("cannot start a planning thread: {e}")))?;
        rx.await.map_err(|_| {
            PlanError::Internal("planning stopped without an answer (a panic; see the log)".into())
        })
    };
    let max_ms = limits.max_planning_ms;
    match tokio::time::timeout(Duration::from_millis(max_ms), planned).await {
        Ok(Ok(planned)) => planned,
        Ok(Err(e)) => Err(e.into()),
        Err(_) => {
            tracing::warn!(
                max_ms,
                code = "plan.time",
                "planning given up at its time limit"
            );
            Err(PlanError::PlanningTime { max_ms }.into())
        }
    }
}

/// Planning threads at once in this process. A statement past its time
/// limit keeps its thread until it finishes (its work is bounded by the
/// limits), so one analyst's runaway statements cannot pile threads up
/// beyond this; a statement waiting for a turn waits within its own time
/// limit.
static PLANNERS: std::sync::LazyLock<Arc<tokio::sync::Semaphore>> =
    std::sync::LazyLock::new(|| {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        Arc::new(tokio::sync::Semaphore::new(4 * cores))
    });

#[cfg(test)]
mod tests {
    use super::*;

    /// Planning past `max_planning_ms` is refused by name, at the limit
    /// and not when the planning ends; planning in time and a panic while
    /// planning come back as what they are.
    #[tokio::test]
    async fn planning_is_timed_out_and_a_panic_stays_on_its_thread() {
        let limits = QueryLimits {
            max_planning_ms: 50,
            ..QueryLimits::default()
        };
        let started = std::time::Instant::now();
        let slow = async {
            std::thread::sleep(Duration::from_millis(400));
            Ok::<_, PlanError>(())
        };
        let err = plan_within(&limits, slow).await.expect_err("too slow");
        assert!(started.elapsed() < Duration::from_millis(300));
        assert_eq!(err.code(), "plan.time");
        assert!(err.to_string().contains("max_planning_ms = 50"), "{err}");
        let quick = async { Ok::<_, PlanError>(7) };
        assert_eq!(plan_within(&limits, quick).await.expect("in time"), 7);
        let joins = limits.max_joins;
        let broken = async move {
            if joins > 0 {
                panic!("a planner bug");
            }
            Ok::<_, PlanError>(())
        };
        // Printing a panic's backtrace takes a while in a debug build.
        let patient = QueryLimits {
            max_planning_ms: 20_000,
            ..limits
        };
        let err = plan_within(&patient, broken).await.expect_err("panicked");
        assert_eq!(err.code(), "internal");
    }

    /// The planning thread's stack grows with the limits.
    #[test]
    fn the_planning_stack_is_sized_for_the_limits() {
        let small = QueryLimits::default().planning_stack_bytes();
        let large = QueryLimits {
            max_chain_terms: 4_096,
            ..QueryLimits::default()
        }
        .planning_stack_bytes();
        assert!(small >= 16 << 20);
        assert!(large > small + (100 << 20), "{small} {large}");
    }

    fn chain(op: &str, n: usize) -> String {
        let terms: Vec<String> = (0..n).map(|i| format!("year_of_birth > {i}")).collect();
        format!(
            "SELECT count(*) FROM person WHERE {}",
            terms.join(&format!(" {op} "))
        )
    }

    #[test]
    fn long_chains_of_every_kind_are_past_the_limit() {
        let limits = QueryLimits::default();
        let ones = vec!["1"; 2_000].join(" + ");
        for sql in [
            chain("AND", 2_000),
            chain("OR", 2_000),
            format!("SELECT sum({ones}) FROM person"),
            format!(
                "SELECT count(*) FROM concept WHERE {}",
                vec!["concept_id > 1"; 2_000].join(" AND ")
            ),
        ] {
            match check_limits(&sql, &limits) {
                Err(PlanError::Limit { limit, value, max }) => {
                    assert_eq!(limit, "max_chain_terms");
                    assert!(value >= 1_999 && max == 256, "{value} {max}");
                }
                other => panic!("{other:?}"),
            }
        }
    }

    #[test]
    fn a_chain_at_the_limit_passes_and_one_more_does_not() {
        let limits = QueryLimits::default();
        assert!(check_limits(&chain("AND", 257), &limits).is_ok());
        assert!(check_limits(&chain("AND", 258), &limits).is_err());
    }

    #[test]
    fn wildcards_are_no_products() {
        let limits = QueryLimits {
            max_chain_terms: 1,
            ..QueryLimits::default()
        };
        let sql = "SELECT count(*), count(DISTINCT person_id) * 2 FROM (SELECT * FROM person p) t";
        assert!(check_limits(sql, &limits).is_ok());
        assert!(check_limits("SELECT 2 * 3 * 4", &limits).is_err());
    }

    #[test]
    fn words_inside_strings_and_quoted_names_do_not_count() {
        let limits = QueryLimits {
            max_chain_terms: 1,
            ..QueryLimits::default()
        };
        let sql = "SELECT count(*) FROM person WHERE person_source_value = 'a AND b OR c + d'";
        assert!(check_limits(sql, &limits).is_ok());
    }

    #[test]
    fn nesting_joins_set_operations_and_size_are_bounded() {
        let limits = QueryLimits {
            max_nesting: 2,
            max_joins: 1,
            max_set_operations: 1,
            max_statement_bytes: 200,
            ..QueryLimits::default()
        };
        let refused = |sql: &str| match check_limits(sql, &limits) {
            Err(PlanError::Limit { limit, .. }) => limit,
            other => panic!("{sql}: {other:?}"),
        };
        assert_eq!(
            refused("SELECT count(*) FROM (SELECT (((1))) AS x) t"),
            "max_nesting"
        );
        assert_eq!(
            refused(
                "SELECT count(*) FROM person JOIN death USING (person_id) JOIN drug_exposure USING (person_id)"
            ),
            "max_joins"
        );
        assert_eq!(
            refused("SELECT 1 UNION SELECT 2 UNION SELECT 3"),
            "max_set_operations"
        );
        assert_eq!(
            refused(&format!("SELECT '{}'", "x".repeat(300))),
            "max_statement_bytes"
        );
    }
}
