//! The SQL a PostgreSQL site sends and the rows it reads back: a prepared
//! plan unparsed with DataFusion's `PostgreSqlDialect`, its `TRY_CAST`s
//! rewritten (PostgreSQL 15 has none), each output column cast to the
//! type it travels as, and the rows read into Arrow. Both ways of running
//! a subplan use it: whole inside the database ([`super::backend`]) and
//! as reads for DataFusion ([`super::fetch`]).

use std::sync::Arc;

use datafusion::arrow::array::{
    ArrayRef, BooleanArray, Float64Array, Int32Array, Int64Array, RecordBatch, StringArray,
};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Schema};
use datafusion::common::DFSchema;
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::error::DataFusionError;
use datafusion::logical_expr::{Cast, Expr, ExprSchemable, LogicalPlan, lit, when};
use datafusion::sql::unparser::Unparser;
use datafusion::sql::unparser::dialect::PostgreSqlDialect;
use tokio_postgres::Row;

use super::pg_error;
use crate::site::error::{Result, SiteError};

/// How the columns of a statement's output are named.
#[derive(Debug, Clone, Copy)]
pub(super) enum Naming {
    /// As the plan names them (a subplan's answer).
    AsPlanned,
    /// By position (rows read for DataFusion, whose names may repeat
    /// under different qualifiers).
    Positional,
}

impl Naming {
    /// The name of output column `i` under [`Naming::Positional`].
    pub(super) fn position(i: usize) -> String {
        format!("ihdsi_r{i}")
    }
}

/// The statement of a prepared `plan`: `TRY_CAST`s rewritten, unparsed,
/// each output column cast to the type the plan promises.
pub(super) fn statement(plan: LogicalPlan, naming: Naming) -> Result<String> {
    let schema = plan.schema().as_arrow().clone();
    let plan = plan
        .transform_up_with_subqueries(without_try_casts)
        .map_err(|e| match e {
            DataFusionError::External(inner) => match inner.downcast::<SiteError>() {
                Ok(engine) => *engine,
                Err(other) => SiteError::Internal(other.to_string()),
            },
            other => SiteError::from(other),
        })?
        .data;
    let inner = Unparser::new(&PostgreSqlDialect {})
        .plan_to_sql(&plan)
        .map_err(|e| {
            SiteError::Internal(format!("cannot unparse the subplan for PostgreSQL: {e}"))
        })?;
    let columns: Vec<String> = schema
        .fields()
        .iter()
        .enumerate()
        .map(|(i, f)| {
            let name = f.name().replace('"', "\"\"");
            let alias = match naming {
                Naming::AsPlanned => name.clone(),
                Naming::Positional => Naming::position(i),
            };
            format!(
                "CAST(ihdsi_subplan.\"{name}\" AS {}) AS \"{alias}\"",
                wire_type(f.data_type())
            )
        })
        .collect();
    Ok(format!(
        "SELECT {} FROM ({inner}) AS ihdsi_subplan",
        columns.join(", ")
    ))
}

pub(super) fn external(e: SiteError) -> DataFusionError {
    DataFusionError::External(Box::new(e))
}

/// `node` with its `TRY_CAST`s rewritten: a cast that cannot fail becomes
/// `CAST`; an integer narrowing becomes `CASE WHEN x BETWEEN min AND max
/// THEN CAST(x …) END` (NULL outside the range, as TRY_CAST). Others are
/// refused: PostgreSQL 15 has no cast that returns NULL on bad input.
fn without_try_casts(node: LogicalPlan) -> datafusion::error::Result<Transformed<LogicalPlan>> {
    let inputs: Vec<DFSchema> = node
        .inputs()
        .iter()
        .map(|i| i.schema().as_ref().clone())
        .collect();
    let schema = inputs
        .into_iter()
        .reduce(|mut a, b| {
            a.merge(&b);
            a
        })
        .unwrap_or_else(DFSchema::empty);
    node.map_expressions(|e| {
        e.transform_up(|e| {
            let Expr::TryCast(tc) = &e else {
                return Ok(Transformed::no(e));
            };
            let from = tc.expr.get_type(&schema)?;
            let to = tc.field.data_type().clone();
            let plain = Expr::Cast(Cast::new(tc.expr.clone(), to.clone()));
            if ihdsi_planner::admission::functions::total_cast(&from, &to) {
                return Ok(Transformed::yes(plain));
            }
            let bounds = (integer_bound(&to, false), integer_bound(&to, true));
            let (Some(lo), Some(hi), true) = (bounds.0, bounds.1, from.is_integer()) else {
                return Err(external(SiteError::Execution(format!(
                    "TRY_CAST from {} to {} cannot run on a PostgreSQL site; use a cast that cannot fail",
                    ihdsi_planner::analysis::exprs::sql_type(&from),
                    ihdsi_planner::analysis::exprs::sql_type(&to)
                ))));
            };
            let in_range = tc.expr.as_ref().clone().between(lit(lo), lit(hi));
            let case = when(in_range, plain).end()?;
            Ok(Transformed::yes(case))
        })
    })
}

/// The smallest or largest value of an integer type, as i64 when it fits.
fn integer_bound(t: &DataType, max: bool) -> Option<i64> {
    Some(match (t, max) {
        (DataType::Int8, false) => i64::from(i8::MIN),
        (DataType::Int8, true) => i64::from(i8::MAX),
        (DataType::Int16, false) => i64::from(i16::MIN),
        (DataType::Int16, true) => i64::from(i16::MAX),
        (DataType::Int32, false) => i64::from(i32::MIN),
        (DataType::Int32, true) => i64::from(i32::MAX),
        _ => return None,
    })
}

/// The PostgreSQL type a column travels as: itself for numbers, booleans
/// and text, text for the rest (dates, timestamps), cast back in Arrow.
fn wire_type(t: &DataType) -> &'static str {
    match t {
        DataType::Int64 => "BIGINT",
        DataType::Int32 => "INTEGER",
        DataType::Float64 => "DOUBLE PRECISION",
        DataType::Boolean => "BOOLEAN",
        _ => "TEXT",
    }
}

pub(super) fn to_batch(schema: &Arc<Schema>, rows: &[Row]) -> Result<RecordBatch> {
    let columns = schema
        .fields()
        .iter()
        .enumerate()
        .map(|(i, f)| column(rows, i, f.data_type()))
        .collect::<Result<Vec<_>>>()?;
    Ok(RecordBatch::try_new(Arc::clone(schema), columns)?)
}

fn column(rows: &[Row], i: usize, t: &DataType) -> Result<ArrayRef> {
    fn get<'a, T: tokio_postgres::types::FromSql<'a>>(row: &'a Row, i: usize) -> Result<T> {
        row.try_get(i)
            .map_err(|e| pg_error("reading a result column", e))
    }
    Ok(match t {
        DataType::Int64 => Arc::new(
            rows.iter()
                .map(|r| get::<Option<i64>>(r, i))
                .collect::<Result<Int64Array>>()?,
        ),
        DataType::Int32 => Arc::new(
            rows.iter()
                .map(|r| get::<Option<i32>>(r, i))
                .collect::<Result<Int32Array>>()?,
        ),
        DataType::Float64 => Arc::new(
            rows.iter()
                .map(|r| get::<Option<f64>>(r, i))
                .collect::<Result<Float64Array>>()?,
        ),
        DataType::Boolean => Arc::new(
            rows.iter()
                .map(|r| get::<Option<bool>>(r, i))
                .collect::<Result<BooleanArray>>()?,
        ),
        other => {
            let text: StringArray = rows
                .iter()
                .map(|r| get::<Option<String>>(r, i))
                .collect::<Result<_>>()?;
            // Arrow's message would quote the text it failed on: a group
            // key, possibly of a group the threshold withholds.
            cast(&text, other).map_err(|_| {
                SiteError::Execution(format!(
                    "PostgreSQL returned text Arrow cannot read as {other} in result column {i}"
                ))
            })?
        }
    })
}
