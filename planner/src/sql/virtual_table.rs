//! The coordinator's view of the patient tables: schemas without data.
//!
//! The coordinator plans against the virtual schema but must never read a
//! patient table itself. [`VirtualTable`] has the schema and refuses every
//! scan, so a planner bug surfaces as an error instead of an empty (and
//! silently wrong) answer.

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::catalog::{Session, TableProvider};
use datafusion::datasource::TableType;
use datafusion::error::{DataFusionError, Result};
use datafusion::logical_expr::Expr;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::prelude::SessionContext;

use ihdsi_catalog::schema::{self, TableKind};

/// A patient table known only by its schema.
#[derive(Debug)]
pub struct VirtualTable {
    name: &'static str,
    schema: SchemaRef,
}

#[async_trait]
impl TableProvider for VirtualTable {
    fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    async fn scan(
        &self,
        _: &dyn Session,
        _: Option<&Vec<usize>>,
        _: &[Expr],
        _: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        Err(DataFusionError::Plan(format!(
            "patient table '{}' cannot be read at the coordinator; only released aggregates are available here",
            self.name
        )))
    }
}

/// Register every patient table of the virtual schema as a [`VirtualTable`].
pub fn register_tables(ctx: &SessionContext) -> datafusion::error::Result<()> {
    for t in schema::tables()
        .iter()
        .filter(|t| t.kind == TableKind::Patient)
    {
        ctx.register_table(
            t.name,
            Arc::new(VirtualTable {
                name: t.name,
                schema: Arc::clone(&t.schema),
            }),
        )?;
    }
    Ok(())
}
