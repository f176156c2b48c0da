//! An `arbitrary`-driven target for planning and site admission, on stable
//! and for a bounded time (`IHDSI_ARBITRARY_SECS`, default 20 s in the
//! suite; `IHDSI_ARBITRARY_SEED` picks the byte stream).
//!
//! Bytes from a seeded generator become structured statements through
//! `arbitrary` (a SELECT over any table and column of the catalog, with
//! nested expressions, predicates, aggregates, FILTER, CASE, casts, joins,
//! subqueries and set operations), or a soup of SQL tokens. Each goes
//! through what the coordinator does (the statement limits, then
//! planning) and, when planned, each release's site SQL through what a
//! site does (parse, admission, cell layout). What must hold, whatever the
//! input: no panic, no internal planner error, and every release the
//! coordinator plans is admitted by a site.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use arbitrary::{Arbitrary, Unstructured};
use datafusion::execution::SessionState;
use ihdsi_catalog::{PrivacyPolicy, QueryLimits, schema};
use ihdsi_planner::partials::cells;
use ihdsi_planner::{PlanError, admit_subplan, check_limits, plan_query};

#[derive(Debug, Arbitrary)]
enum Table {
    Person,
    Condition,
    Drug,
    Measurement,
    Observation,
    Variant,
    Concept,
}

impl Table {
    fn name(&self) -> &'static str {
        match self {
            Table::Person => "person",
            Table::Condition => "condition_occurrence",
            Table::Drug => "drug_exposure",
            Table::Measurement => "measurement",
            Table::Observation => "observation",
            Table::Variant => "variant_occurrence",
            Table::Concept => "concept",
        }
    }
}

/// A column of the table in scope, by position in its catalog entry.
#[derive(Debug, Arbitrary)]
struct Column(u8);

#[derive(Debug, Arbitrary)]
enum Scalar {
    Column(Column),
    PersonId,
    Int(i16),
    Float(i8),
    Text(u8),
    Null,
    Date(u16),
    Binary(Box<Scalar>, BinaryOp, Box<Scalar>),
    Negate(Box<Scalar>),
    Function(Function, Vec<Scalar>),
    Case(Box<Predicate>, Box<Scalar>, Box<Scalar>),
    Cast(Box<Scalar>, Type, bool),
}

#[derive(Debug, Arbitrary)]
enum BinaryOp {
    Add,
    Subtract,
    Multiply,
    Divide,
    Modulo,
    Concat,
}

#[derive(Debug, Arbitrary)]
enum Function {
    Abs,
    Floor,
    Round,
    Coalesce,
    Upper,
    Length,
    DatePart,
    DateTrunc,
    Ln,
    Substr,
}

#[derive(Debug, Arbitrary)]
enum Type {
    Int,
    BigInt,
    Double,
    Text,
    Date,
}

#[derive(Debug, Arbitrary)]
enum Predicate {
    Compare(Scalar, CompareOp, Scalar),
    IsNull(Scalar, bool),
    And(Box<Predicate>, Box<Predicate>),
    Or(Box<Predicate>, Box<Predicate>),
    Not(Box<Predicate>),
    In(Scalar, Vec<Scalar>),
    Between(Scalar, Scalar, Scalar),
    Like(Scalar, u8),
    InSubquery(Box<Select>, bool),
    Exists(Box<Select>, bool),
}

#[derive(Debug, Arbitrary)]
enum CompareOp {
    Eq,
    NotEq,
    Lt,
    GtEq,
}

#[derive(Debug, Arbitrary)]
enum Aggregate {
    CountStar,
    Count(Scalar),
    CountDistinct(Scalar),
    Sum(Scalar),
    Avg(Scalar),
    Min(Scalar),
    Max(Scalar),
    Stddev(Scalar),
    Median(Scalar),
    Filtered(Box<Aggregate>, Predicate),
}

#[derive(Debug, Arbitrary)]
enum SetOp {
    Union,
    UnionAll,
    Intersect,
    Except,
}

#[derive(Debug, Arbitrary)]
struct Select {
    from: Table,
    join: Option<(Table, bool)>,
    keys: Vec<Scalar>,
    aggregates: Vec<Aggregate>,
    filter: Option<Predicate>,
    having: Option<Predicate>,
    limit: Option<u8>,
    then: Option<(SetOp, Box<Select>)>,
}

/// Renders the generated trees as SQL; `depth` names each SELECT's alias.
struct Writer {
    depth: usize,
}

impl Writer {
    fn alias(&self) -> String {
        format!("t{}", self.depth)
    }

    fn column(&self, table: &Table, c: &Column) -> String {
        let def = schema::table(table.name()).expect("catalog table");
        let columns = def.file_schema();
        let field = columns.field(usize::from(c.0) % columns.fields().len());
        format!("{}.{}", self.alias(), field.name())
    }

    fn scalar(&mut self, table: &Table, s: &Scalar) -> String {
        match s {
            Scalar::Column(c) => self.column(table, c),
            Scalar::PersonId if matches!(table, Table::Concept) => "1".into(),
            Scalar::PersonId => format!("{}.person_id", self.alias()),
            Scalar::Int(i) => i.to_string(),
            Scalar::Float(f) => format!("{}.5", f),
            Scalar::Text(t) => format!("'v{t}'"),
            Scalar::Null => "NULL".into(),
            Scalar::Date(d) => format!("DATE '{}-01-01'", 1900 + d % 200),
            Scalar::Binary(a, op, b) => {
                let op = match op {
                    BinaryOp::Add => "+",
                    BinaryOp::Subtract => "-",
                    BinaryOp::Multiply => "*",
                    BinaryOp::Divide => "/",
                    BinaryOp::Modulo => "%",
                    BinaryOp::Concat => "||",
                };
                format!("({} {op} {})", self.scalar(table, a), self.scalar(table, b))
            }
            Scalar::Negate(a) => format!("(-{})", self.scalar(table, a)),
            Scalar::Function(f, args) => self.function(table, f, args),
            Scalar::Case(p, a, b) => format!(
                "CASE WHEN {} THEN {} ELSE {} END",
                self.predicate(table, p),
                self.scalar(table, a),
                self.scalar(table, b)
            ),
            Scalar::Cast(a, t, try_cast) => {
                let t = match t {
                    Type::Int => "INT",
                    Type::BigInt => "BIGINT",
                    Type::Double => "DOUBLE",
                    Type::Text => "VARCHAR",
                    Type::Date => "DATE",
                };
                let cast = if *try_cast { "TRY_CAST" } else { "CAST" };
                format!("{cast}({} AS {t})", self.scalar(table, a))
            }
        }
    }

    fn function(&mut self, table: &Table, f: &Function, args: &[Scalar]) -> String {
        let mut rendered: Vec<String> = args.iter().map(|a| self.scalar(table, a)).collect();
        if rendered.is_empty() {
            rendered.push("1".into());
        }
        let first = rendered[0].clone();
        match f {
            Function::Abs => format!("abs({first})"),
            Function::Floor => format!("floor({first})"),
            Function::Round => format!("round({first})"),
            Function::Coalesce => format!("coalesce({})", rendered.join(", ")),
            Function::Upper => format!("upper({first})"),
            Function::Length => format!("length({first})"),
            Function::DatePart => format!("date_part('year', {first})"),
            Function::DateTrunc => format!("date_trunc('month', {first})"),
            Function::Ln => format!("ln({first})"),
            Function::Substr => format!("substr({first}, 1, 3)"),
        }
    }

    fn predicate(&mut self, table: &Table, p: &Predicate) -> String {
        match p {
            Predicate::Compare(a, op, b) => {
                let op = match op {
                    CompareOp::Eq => "=",
                    CompareOp::NotEq => "<>",
                    CompareOp::Lt => "<",
                    CompareOp::GtEq => ">=",
                };
                format!("{} {op} {}", self.scalar(table, a), self.scalar(table, b))
            }
            Predicate::IsNull(a, not) => {
                let not = if *not { " NOT" } else { "" };
                format!("{} IS{not} NULL", self.scalar(table, a))
            }
            Predicate::And(a, b) => format!(
                "({} AND {})",
                self.predicate(table, a),
                self.predicate(table, b)
            ),
            Predicate::Or(a, b) => format!(
                "({} OR {})",
                self.predicate(table, a),
                self.predicate(table, b)
            ),
            Predicate::Not(a) => format!("NOT ({})", self.predicate(table, a)),
            Predicate::In(a, list) => {
                let mut items: Vec<String> = list.iter().map(|s| self.scalar(table, s)).collect();
                if items.is_empty() {
                    items.push("0".into());
                }
                format!("{} IN ({})", self.scalar(table, a), items.join(", "))
            }
            Predicate::Between(a, lo, hi) => format!(
                "{} BETWEEN {} AND {}",
                self.scalar(table, a),
                self.scalar(table, lo),
                self.scalar(table, hi)
            ),
            Predicate::Like(a, n) => format!("{} LIKE 'v{n}%'", self.scalar(table, a)),
            Predicate::InSubquery(inner, not) => {
                let not = if *not { "NOT " } else { "" };
                let outer = self.scalar(table, &Scalar::PersonId);
                format!("{outer} {not}IN ({})", self.subquery(inner))
            }
            Predicate::Exists(inner, not) => {
                let not = if *not { "NOT " } else { "" };
                format!("{not}EXISTS ({})", self.subquery(inner))
            }
        }
    }

    /// A subquery selecting the persons of `inner`'s table.
    fn subquery(&mut self, inner: &Select) -> String {
        self.depth += 1;
        let alias = self.alias();
        let person = if matches!(inner.from, Table::Concept) {
            "concept_id"
        } else {
            "person_id"
        };
        let filter = inner
            .filter
            .as_ref()
            .map(|p| format!(" WHERE {}", self.predicate(&inner.from, p)))
            .unwrap_or_default();
        self.depth -= 1;
        format!(
            "SELECT {alias}.{person} FROM {} {alias}{filter}",
            inner.from.name()
        )
    }

    fn aggregate(&mut self, table: &Table, a: &Aggregate) -> String {
        match a {
            Aggregate::CountStar => "count(*)".into(),
            Aggregate::Count(s) => format!("count({})", self.scalar(table, s)),
            Aggregate::CountDistinct(s) => format!("count(DISTINCT {})", self.scalar(table, s)),
            Aggregate::Sum(s) => format!("sum({})", self.scalar(table, s)),
            Aggregate::Avg(s) => format!("avg({})", self.scalar(table, s)),
            Aggregate::Min(s) => format!("min({})", self.scalar(table, s)),
            Aggregate::Max(s) => format!("max({})", self.scalar(table, s)),
            Aggregate::Stddev(s) => format!("stddev({})", self.scalar(table, s)),
            Aggregate::Median(s) => format!("median({})", self.scalar(table, s)),
            Aggregate::Filtered(inner, p) => format!(
                "{} FILTER (WHERE {})",
                self.aggregate(table, inner),
                self.predicate(table, p)
            ),
        }
    }

    fn select(&mut self, s: &Select) -> String {
        let alias = self.alias();
        let table = &s.from;
        let mut from = format!("{} {alias}", table.name());
        if let Some((other, left)) = &s.join {
            let kind = if *left { "LEFT JOIN" } else { "JOIN" };
            let on = if matches!(other, Table::Concept) || matches!(table, Table::Concept) {
                format!("j.concept_id = {alias}.{}", self.column(table, &Column(1)))
            } else {
                format!("j.person_id = {alias}.person_id")
            };
            from.push_str(&format!(" {kind} {} j ON {on}", other.name()));
        }
        let keys: Vec<String> = s.keys.iter().map(|k| self.scalar(table, k)).collect();
        let mut select: Vec<String> = keys
            .iter()
            .enumerate()
            .map(|(i, k)| format!("{k} AS k{i}"))
            .collect();
        select.extend(
            s.aggregates
                .iter()
                .enumerate()
                .map(|(i, a)| format!("{} AS a{i}", self.aggregate(table, a))),
        );
        if select.is_empty() {
            select.push("count(*) AS a0".into());
        }
        let mut sql = format!("SELECT {} FROM {from}", select.join(", "));
        if let Some(p) = &s.filter {
            sql.push_str(&format!(" WHERE {}", self.predicate(table, p)));
        }
        if !keys.is_empty() {
            sql.push_str(&format!(" GROUP BY {}", keys.join(", ")));
        }
        if let Some(p) = &s.having {
            sql.push_str(&format!(
                " HAVING count(*) > 0 AND {}",
                self.predicate(table, p)
            ));
        }
        if let Some((op, other)) = &s.then {
            let op = match op {
                SetOp::Union => "UNION",
                SetOp::UnionAll => "UNION ALL",
                SetOp::Intersect => "INTERSECT",
                SetOp::Except => "EXCEPT",
            };
            self.depth += 1;
            let other = self.select(other);
            self.depth -= 1;
            sql = format!("{sql} {op} {other}");
        }
        if let Some(n) = s.limit {
            sql = format!("SELECT * FROM ({sql}) l LIMIT {n}");
        }
        sql
    }
}

/// Tokens of the token soup: keywords, names of the schema, literals and
/// punctuation, strung together at random.
const TOKENS: &[&str] = &[
    "SELECT",
    "FROM",
    "WHERE",
    "GROUP BY",
    "HAVING",
    "JOIN",
    "ON",
    "AND",
    "OR",
    "NOT",
    "(",
    ")",
    ",",
    "*",
    "+",
    "-",
    "/",
    "=",
    "<",
    "count(",
    "sum(",
    "avg(",
    "DISTINCT",
    "person",
    "person_id",
    "measurement",
    "value_as_number",
    "year_of_birth",
    "site",
    "1",
    "0",
    "'x'",
    "NULL",
    "CASE",
    "WHEN",
    "THEN",
    "ELSE",
    "END",
    "UNION",
    "EXCEPT",
    "WITH",
    "AS",
    "LIMIT",
    "ORDER BY",
    "OVER",
    "PARTITION BY",
    "$1",
    "?",
    ";",
    "CAST(",
    "INT",
    "DATE '2020-01-01'",
];

fn soup(u: &mut Unstructured<'_>) -> String {
    let n = u.int_in_range(1..=40).unwrap_or(1);
    (0..n)
        .map(|_| *u.choose(TOKENS).unwrap_or(&"1"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// SplitMix64 bytes: a reproducible stream for `Unstructured`.
fn bytes(seed: &mut u64, n: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(n + 8);
    while out.len() < n {
        *seed = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = *seed;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        out.extend_from_slice(&(z ^ (z >> 31)).to_le_bytes());
    }
    out.truncate(n);
    out
}

/// What one statement came to.
#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Outcome {
    /// Planned, and every release admitted at a site.
    Planned,
    /// Refused, with the refusal's code.
    Refused(&'static str),
    /// A broken invariant: described.
    Broken(String),
}

/// What the coordinator and then a site do with `sql`.
async fn run(state: &SessionState, sql: &str) -> Outcome {
    let policy = PrivacyPolicy::threshold(10, false);
    if let Err(e) = check_limits(sql, &QueryLimits::default()) {
        return Outcome::Refused(e.code());
    }
    let plan = match plan_query(state, sql, &policy).await {
        Ok(plan) => plan,
        Err(e @ PlanError::Internal(_)) => return Outcome::Broken(e.to_string()),
        Err(e) => return Outcome::Refused(e.code()),
    };
    for release in &plan.releases {
        let site = PrivacyPolicy::threshold(10, false);
        let admitted = async {
            check_limits(&release.site_sql, &QueryLimits::for_site())?;
            let reparsed = state
                .create_logical_plan(&release.site_sql)
                .await
                .map_err(PlanError::from_datafusion)?;
            admit_subplan(&reparsed, &site)?;
            cells::layout(&reparsed).map(|_| ())
        };
        if let Err(e) = admitted.await {
            return Outcome::Broken(format!("release {} not admitted: {e}", release.index));
        }
    }
    Outcome::Planned
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[expect(
    clippy::print_stdout,
    reason = "the run's outcome counts, for the record"
)]
async fn arbitrary_statements_never_break_planning_or_admission() {
    let env = |name: &str, default: u64| {
        std::env::var(name)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    let budget = Duration::from_secs(env("IHDSI_ARBITRARY_SECS", 20));
    let mut seed = env("IHDSI_ARBITRARY_SEED", 20_261_206);
    let state = super::site_sql::session();
    let started = Instant::now();
    let mut outcomes: BTreeMap<String, u64> = BTreeMap::new();
    let mut broken = Vec::new();
    let mut n = 0u64;
    while started.elapsed() < budget {
        n += 1;
        let data = bytes(&mut seed, 64 + (n % 8) as usize * 128);
        let mut u = Unstructured::new(&data);
        let sql = if n.is_multiple_of(5) {
            soup(&mut u)
        } else {
            match Select::arbitrary(&mut u) {
                Ok(select) => Writer { depth: 0 }.select(&select),
                Err(_) => continue,
            }
        };
        // On a task of its own, so that a panic is an outcome, not the end.
        let (st, text) = (state.clone(), sql.clone());
        let outcome = tokio::spawn(async move { run(&st, &text).await })
            .await
            .unwrap_or_else(|e| Outcome::Broken(format!("panicked: {e}")));
        let kind = match &outcome {
            Outcome::Planned => "planned".to_string(),
            Outcome::Refused(code) => format!("refused {code}"),
            Outcome::Broken(_) => "broken".to_string(),
        };
        *outcomes.entry(kind).or_default() += 1;
        if let Outcome::Broken(why) = outcome {
            broken.push(format!("{sql}\n  {why}"));
        }
    }
    println!("arbitrary: {n} statements in {:?}", started.elapsed());
    for (kind, count) in &outcomes {
        println!("  {count:>7}  {kind}");
    }
    assert!(
        outcomes.get("planned").copied().unwrap_or(0) > 0,
        "nothing planned: the generator is not exercising the planner"
    );
    assert!(
        broken.is_empty(),
        "{} statements broke an invariant:\n{}",
        broken.len(),
        broken
            .iter()
            .take(10)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
}
