//! The intermediate-row guard: an operator placed above every operator
//! that can multiply rows (joins, unions, unnests) that counts what they
//! produce against one budget per query, and yields to the scheduler.
//!
//! Why both in one place: a join that multiplies rows is the query that
//! runs for minutes (a cross product, a self-join of a long table), and it
//! is also the operator that never yields. A cross join builds thousands
//! of output batches from one input batch, and the aggregation above it
//! consumes them in a loop that never returns `Pending`, so a cancelled or
//! timed-out query kept its thread busy until it was done. Each guarded
//! batch consumes a unit of tokio's cooperative budget
//! (`datafusion::physical_plan::coop`), so the task yields every few
//! batches, and dropping the query stops it there.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::{RecordBatchStream, SendableRecordBatchStream, TaskContext};
use datafusion::physical_plan::coop::make_cooperative;
use datafusion::physical_plan::unnest::UnnestExec;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, PhysicalExpr, PlanProperties,
};
use futures::{Stream, StreamExt};

/// The rows one query's guarded operators have produced, and the most
/// they may.
#[derive(Debug)]
pub(crate) struct RowBudget {
    produced: AtomicU64,
    max: u64,
}

impl RowBudget {
    pub(crate) fn new(max: u64) -> Arc<Self> {
        Arc::new(Self {
            produced: AtomicU64::new(0),
            max,
        })
    }

    /// Count `rows` more; whether the budget still holds.
    fn spend(&self, rows: usize) -> bool {
        let before = self.produced.fetch_add(rows as u64, Ordering::Relaxed);
        before.saturating_add(rows as u64) <= self.max
    }
}

/// The error a guarded operator fails with past the budget; the caller
/// recognises it (`super::classify`) and names the limit.
#[derive(Debug, thiserror::Error)]
#[error("intermediate rows past max_intermediate_rows = {max}")]
pub(crate) struct RowsExceeded {
    pub(crate) max: u64,
}

/// Whether `node` can produce more rows than one of its inputs has.
fn multiplies_rows(node: &Arc<dyn ExecutionPlan>) -> bool {
    node.children().len() >= 2 || node.is::<UnnestExec>()
}

/// `plan` with a [`RowGuardExec`] above each operator that can multiply
/// rows, all counting against `budget`.
pub(crate) fn guard(
    plan: Arc<dyn ExecutionPlan>,
    budget: &Arc<RowBudget>,
) -> Result<Arc<dyn ExecutionPlan>> {
    let guarded = plan.transform_up(|node| {
        if multiplies_rows(&node) {
            let guard = RowGuardExec {
                properties: Arc::clone(node.properties()),
                input: node,
                budget: Arc::clone(budget),
            };
            Ok(Transformed::yes(Arc::new(guard) as Arc<dyn ExecutionPlan>))
        } else {
            Ok(Transformed::no(node))
        }
    })?;
    Ok(guarded.data)
}

/// Passes its input through, counting rows against the query's budget and
/// consuming cooperative-scheduling budget per batch.
#[derive(Debug)]
pub(crate) struct RowGuardExec {
    input: Arc<dyn ExecutionPlan>,
    budget: Arc<RowBudget>,
    properties: Arc<PlanProperties>,
}

impl DisplayAs for RowGuardExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "RowGuardExec: max_rows={}", self.budget.max)
    }
}

impl ExecutionPlan for RowGuardExec {
    fn name(&self) -> &str {
        "RowGuardExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    fn maintains_input_order(&self) -> Vec<bool> {
        vec![true]
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![&self.input]
    }

    fn apply_expressions(
        &self,
        _f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>,
    ) -> Result<TreeNodeRecursion> {
        Ok(TreeNodeRecursion::Continue)
    }

    fn with_new_children(
        self: Arc<Self>,
        mut children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        if children.len() != 1 {
            return Err(DataFusionError::Internal(
                "RowGuardExec has exactly one input".into(),
            ));
        }
        let input = children.swap_remove(0);
        Ok(Arc::new(Self {
            properties: Arc::clone(input.properties()),
            input,
            budget: Arc::clone(&self.budget),
        }))
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        let input = self.input.execute(partition, context)?;
        Ok(make_cooperative(Box::pin(GuardedStream {
            input,
            budget: Arc::clone(&self.budget),
        })))
    }
}

struct GuardedStream {
    input: SendableRecordBatchStream,
    budget: Arc<RowBudget>,
}

impl Stream for GuardedStream {
    type Item = Result<RecordBatch>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        match self.input.poll_next_unpin(cx) {
            Poll::Ready(Some(Ok(batch))) if !self.budget.spend(batch.num_rows()) => Poll::Ready(
                Some(Err(DataFusionError::External(Box::new(RowsExceeded {
                    max: self.budget.max,
                })))),
            ),
            other => other,
        }
    }
}

impl RecordBatchStream for GuardedStream {
    fn schema(&self) -> SchemaRef {
        self.input.schema()
    }
}
