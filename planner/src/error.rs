//! Planning and admission errors.
//!
//! Every variant is something an analyst (or a site operator reading a
//! refusal) can act on. Messages name the cause and, where it helps, the
//! aggregate form that would work. They never contain data values: they are
//! built only from the query text, the schema and fixed wording.

use crate::rules::Rule;

/// Result alias for this crate.
pub type Result<T, E = PlanError> = std::result::Result<T, E>;

/// Why a query cannot be federated.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    /// The SQL text does not parse.
    #[error("SQL syntax error: {0}")]
    Syntax(String),
    /// The SQL parses but does not resolve against the virtual schema:
    /// unknown table, unknown column, type mismatch.
    #[error("{0}")]
    Schema(String),
    /// The query would release patient-level rows.
    #[error(
        "refused: row-level output. {detail} Only aggregates leave a site: group and count instead, e.g. SELECT gender_concept_id, count(*) FROM person GROUP BY gender_concept_id ({})",
        Rule::OnlyAggregates
    )]
    RowLevel { detail: String },
    /// A construct the federated planner cannot split without changing the
    /// answer, or that a rule keeps from patient data: `what` names it,
    /// `why` says why and what to write instead.
    #[error("unsupported: {what}. {why} ({rule})")]
    Unsupported {
        what: String,
        why: String,
        rule: Rule,
    },
    /// The federation's privacy policy forbids this query.
    #[error("refused by privacy policy: {reason} ({rule})")]
    Policy { reason: String, rule: Rule },
    /// A subplan received by a site is not in the canonical form.
    #[error("subplan rejected: {0}")]
    NotCanonical(String),
    /// Statements other than queries (DDL, DML, SET, ...).
    #[error("only read-only SELECT queries are accepted; got {0}")]
    NotAQuery(String),
    /// A bug: an invariant of the planner does not hold.
    #[error("internal planner error: {0}")]
    Internal(String),
    /// The statement is past one of the `[limits]`, checked before planning.
    #[error(
        "refused: the statement is too large to plan: {value} against the limit {limit} = {max} ([limits] in the config)"
    )]
    Limit {
        limit: &'static str,
        value: usize,
        max: usize,
    },
    /// Planning the statement took longer than `[limits] max_planning_ms`.
    #[error(
        "refused: planning the statement took longer than the limit max_planning_ms = {max_ms} ([limits] in the config); simplify it (fewer terms, joins or branches)"
    )]
    PlanningTime { max_ms: u64 },
}

impl PlanError {
    /// The stable refusal code recorded in audit trails (one per variant).
    pub fn code(&self) -> &'static str {
        match self {
            Self::Syntax(_) => "plan.syntax",
            Self::Schema(_) => "plan.schema",
            Self::RowLevel { .. } => "privacy.row_level",
            Self::Unsupported { .. } => "plan.unsupported",
            Self::Policy { .. } => "privacy.policy",
            Self::NotCanonical(_) => "plan.not_canonical",
            Self::NotAQuery(_) => "plan.not_a_query",
            Self::Internal(_) => "internal",
            Self::Limit { .. } => "plan.limit",
            Self::PlanningTime { .. } => "plan.time",
        }
    }

    pub(crate) fn unsupported(rule: Rule, what: impl Into<String>, why: impl Into<String>) -> Self {
        Self::Unsupported {
            what: what.into(),
            why: why.into(),
            rule,
        }
    }

    pub fn policy(rule: Rule, reason: impl Into<String>) -> Self {
        Self::Policy {
            reason: reason.into(),
            rule,
        }
    }

    /// The documented rule a refusal cites, if it is one.
    pub fn rule(&self) -> Option<Rule> {
        match self {
            Self::RowLevel { .. } => Some(Rule::OnlyAggregates),
            Self::Unsupported { rule, .. } | Self::Policy { rule, .. } => Some(*rule),
            _ => None,
        }
    }

    /// Classify a DataFusion error raised while planning analyst SQL.
    pub fn from_datafusion(e: datafusion::error::DataFusionError) -> Self {
        use datafusion::error::DataFusionError as D;
        match e.find_root() {
            D::SQL(err, _) => Self::Syntax(err.to_string()),
            D::SchemaError(err, _) => Self::Schema(err.to_string()),
            D::Plan(msg) => match unknown_table(msg) {
                Some(name) => Self::Schema(format!(
                    "unknown table '{name}'. Tables: {}",
                    ihdsi_catalog::schema::tables()
                        .iter()
                        .map(|t| t.name)
                        .collect::<Vec<_>>()
                        .join(", ")
                )),
                None => Self::Schema(analyst_words(msg)),
            },
            D::NotImplemented(msg) => Self::unsupported(
                Rule::HonouredAsWritten,
                msg.clone(),
                "The engine cannot plan it; write it another way",
            ),
            // Type errors (a function given arguments it has no signature
            // for, an aggregate of text) come as DataFusion's internal or
            // execution errors: they are the analyst's, so they are told
            // as such, without the bug-report boilerplate.
            D::Internal(msg) | D::Execution(msg) => Self::Schema(analyst_words(msg)),
            other => Self::Schema(analyst_words(&other.to_string())),
        }
    }
}

/// `msg` without what DataFusion adds for its own developers.
fn analyst_words(msg: &str) -> String {
    const BOILERPLATE: &str = "This issue was likely caused by a bug in DataFusion's code";
    let msg = msg.split(BOILERPLATE).next().unwrap_or(msg).trim_end();
    msg.strip_prefix("Internal error: ")
        .unwrap_or(msg)
        .trim_end_matches('.')
        .to_string()
}

/// `table 'datafusion.public.x' not found` → `x`.
fn unknown_table(msg: &str) -> Option<&str> {
    let rest = msg.strip_prefix("table '")?;
    let (qualified, tail) = rest.split_once('\'')?;
    tail.trim_start()
        .starts_with("not found")
        .then(|| qualified.rsplit('.').next().unwrap_or(qualified))
}

impl From<datafusion::error::DataFusionError> for PlanError {
    fn from(e: datafusion::error::DataFusionError) -> Self {
        Self::Internal(e.to_string())
    }
}
