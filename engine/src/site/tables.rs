//! Binding the virtual schema to Parquet files through object_store.
//!
//! A site's data folder holds `<table>.parquet` per patient table. Each table
//! becomes a view named after the virtual table:
//!
//! ```sql
//! SELECT <file columns>, '<site id>' AS site FROM <the site's person.parquet>
//! ```
//!
//! The inner scan is named after the virtual table too, so the privacy unit
//! is traced through it exactly as through the coordinator's virtual tables.
//! The raw files are never registered under a name a subplan could use.
//! Several sites can be bound into one session (the union of their views):
//! that is the centralized oracle the differential tests compare against.

use std::sync::Arc;

use datafusion::arrow::array::{Int64Array, RecordBatch};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::common::tree_node::Transformed;
use datafusion::common::{Column, JoinType};
use datafusion::datasource::MemTable;
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::{
    ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl,
};
use datafusion::datasource::{ViewTable, provider_as_source, source_as_provider};
use datafusion::logical_expr::{Expr, Filter, LogicalPlan, LogicalPlanBuilder, lit};
use datafusion::prelude::SessionContext;

use crate::site::error::{Result, SiteError};
use ihdsi_catalog::schema::{self, PRIVACY_UNIT, SITE_COLUMN, TableDef, TableKind};

/// One site's data location.
#[derive(Debug, Clone)]
pub struct SiteData {
    /// Site id, the value of the virtual `site` column.
    pub id: String,
    /// URL or path of the folder holding `<table>.parquet`.
    pub location: String,
}

/// Normalise a plain path or URL to a folder URL ending in `/`.
pub fn folder_url(location: &str) -> Result<String> {
    let url = if location.contains("://") {
        location.to_string()
    } else {
        let abs = std::path::absolute(location)
            .map_err(|e| SiteError::Data(format!("{location}: {e}")))?;
        format!("file://{}", abs.display())
    };
    Ok(if url.ends_with('/') {
        url
    } else {
        format!("{url}/")
    })
}

fn local_path(url: &str) -> Option<std::path::PathBuf> {
    url.strip_prefix("file://").map(std::path::PathBuf::from)
}

/// Whether the file exists; remote object stores are assumed to hold it.
fn present(url: &str) -> bool {
    local_path(url).is_none_or(|p| p.exists())
}

/// A Parquet listing table at `url` with the given (file) schema.
fn parquet_table(
    url: &str,
    schema: datafusion::arrow::datatypes::SchemaRef,
) -> Result<ListingTable> {
    let data_err = |e: datafusion::error::DataFusionError| SiteError::Data(format!("{url}: {e}"));
    let table_url = ListingTableUrl::parse(url).map_err(data_err)?;
    let options =
        ListingOptions::new(Arc::new(ParquetFormat::default())).with_file_extension(".parquet");
    let config = ListingTableConfig::new(table_url)
        .with_listing_options(options)
        .with_schema(schema);
    ListingTable::try_new(config).map_err(data_err)
}

fn parquet_scan(table: &TableDef, url: &str) -> Result<LogicalPlan> {
    let provider = parquet_table(url, table.file_schema())?;
    Ok(
        LogicalPlanBuilder::scan(table.name, provider_as_source(Arc::new(provider)), None)?
            .build()?,
    )
}

/// `SELECT <file columns>, '<site>' AS site FROM <scan>`.
fn with_site_column(scan: LogicalPlan, site: &str) -> Result<LogicalPlan> {
    let mut exprs: Vec<Expr> = scan
        .schema()
        .columns()
        .into_iter()
        .map(Expr::Column)
        .collect();
    exprs.push(lit(site).alias(SITE_COLUMN));
    Ok(LogicalPlanBuilder::from(scan).project(exprs)?.build()?)
}

/// `scan` without the rows of opted-out persons: a left anti join on
/// `person_id`, inside the view, so no subplan can reach around it.
fn without_opted_out(scan: LogicalPlan, table: &str, opted_out: &[i64]) -> Result<LogicalPlan> {
    if opted_out.is_empty() {
        return Ok(scan);
    }
    let schema = Arc::new(Schema::new(vec![Field::new(
        PRIVACY_UNIT,
        DataType::Int64,
        false,
    )]));
    let ids = RecordBatch::try_new(
        Arc::clone(&schema),
        vec![Arc::new(Int64Array::from(opted_out.to_vec()))],
    )?;
    let list = MemTable::try_new(schema, vec![vec![ids]])?;
    let excluded =
        LogicalPlanBuilder::scan(OPT_OUT_TABLE, provider_as_source(Arc::new(list)), None)?
            .build()?;
    Ok(LogicalPlanBuilder::from(scan)
        .join(
            excluded,
            JoinType::LeftAnti,
            (
                vec![Column::new(Some(table), PRIVACY_UNIT)],
                vec![Column::new(Some(OPT_OUT_TABLE), PRIVACY_UNIT)],
            ),
            None,
        )?
        .build()?)
}

/// `plan` with the opt-out anti joins of the site's views replaced by the
/// equivalent filters `person_id NOT IN (…)` of literals, for a backend the
/// plan travels to (serialised to a Ballista cluster, unparsed into a
/// database's SQL), which cannot receive an in-memory list.
///
/// Admission sees the join, not the filter: it accepts joining identifiers
/// and refuses comparing them with literals (in an analyst's query that is
/// a differencing attack on one patient). The site makes this rewrite
/// after admission, only on the joins with its own opt-out list, which no
/// subplan can name.
pub fn opt_out_as_filters(plan: LogicalPlan) -> Result<LogicalPlan> {
    let rewritten = plan.transform_up_with_subqueries(|node| {
        let LogicalPlan::Join(join) = &node else {
            return Ok(Transformed::no(node));
        };
        let ([(key, _)], JoinType::LeftAnti, None) =
            (join.on.as_slice(), join.join_type, &join.filter)
        else {
            return Ok(Transformed::no(node));
        };
        let Some(ids) = opt_out_list(&join.right)? else {
            return Ok(Transformed::no(node));
        };
        let keep = key
            .clone()
            .in_list(ids.into_iter().map(lit).collect(), true);
        let filter = Filter::try_new(keep, Arc::clone(&join.left))?;
        Ok(Transformed::yes(LogicalPlan::Filter(filter)))
    })?;
    Ok(rewritten.data)
}

/// The person ids of `plan` if it is the scan of a site's opt-out list.
fn opt_out_list(plan: &LogicalPlan) -> datafusion::error::Result<Option<Vec<i64>>> {
    let LogicalPlan::TableScan(scan) = plan else {
        return Ok(None);
    };
    if scan.table_name.table() != OPT_OUT_TABLE {
        return Ok(None);
    }
    let provider = source_as_provider(&scan.source)?;
    let Some(list) = provider.downcast_ref::<MemTable>() else {
        return Ok(None);
    };
    let mut ids = Vec::new();
    for partition in &list.batches {
        let batches = partition.try_read().map_err(|_| {
            datafusion::error::DataFusionError::Internal("opt-out list is being written".into())
        })?;
        for batch in batches.iter() {
            let column = batch
                .column(0)
                .as_any()
                .downcast_ref::<Int64Array>()
                .ok_or_else(|| {
                    datafusion::error::DataFusionError::Internal("opt-out ids are not Int64".into())
                })?;
            ids.extend(column.iter().flatten());
        }
    }
    Ok(Some(ids))
}

/// Register the patient tables `present` of a site whose data lives in a
/// database, for planning and admission only: views (the `site` column,
/// opted-out persons removed by the same anti join as Parquet sites) over schema-only tables
/// named as the CDM's. The site's backend runs the plans in the database,
/// with the views inlined into the SQL; `concept` is registered the same
/// way when the database has it.
pub fn register_relational_tables(
    ctx: &SessionContext,
    site: &str,
    present: &[String],
    opted_out: &[i64],
) -> Result<Vec<String>> {
    let mut registered = Vec::new();
    for table in schema::tables() {
        if !present.iter().any(|p| p == table.name) {
            continue;
        }
        let empty = datafusion::catalog::empty::EmptyTable::new(table.file_schema());
        let scan = LogicalPlanBuilder::scan(table.name, provider_as_source(Arc::new(empty)), None)?
            .build()?;
        if table.kind == TableKind::Vocabulary {
            // A projection, not a bare scan: the unparser drops the alias
            // of an aliased view that is only a scan (`concept AS c`).
            let columns: Vec<Expr> = scan
                .schema()
                .columns()
                .into_iter()
                .map(Expr::Column)
                .collect();
            let view = LogicalPlanBuilder::from(scan).project(columns)?.build()?;
            ctx.register_table(table.name, Arc::new(ViewTable::new(view, None)))?;
            continue;
        }
        let scan = without_opted_out(scan, table.name, opted_out)?;
        let view = ViewTable::new(with_site_column(scan, site)?, None);
        ctx.register_table(table.name, Arc::new(view))?;
        registered.push(table.name.to_string());
    }
    Ok(registered)
}

/// Name of the opt-out list inside a site's views.
const OPT_OUT_TABLE: &str = "ihdsi_opt_out";

/// Register the patient tables of `sites` (their union, if several) and the
/// public vocabulary. Returns the names of the patient tables registered.
pub async fn register_tables(
    ctx: &SessionContext,
    sites: &[SiteData],
    vocabulary: Option<&str>,
) -> Result<Vec<String>> {
    register_tables_excluding(ctx, sites, vocabulary, &[]).await
}

/// [`register_tables`], with the persons in `opted_out` removed from every
/// patient table.
pub async fn register_tables_excluding(
    ctx: &SessionContext,
    sites: &[SiteData],
    vocabulary: Option<&str>,
    opted_out: &[i64],
) -> Result<Vec<String>> {
    let mut registered = Vec::new();
    for table in schema::patient_tables() {
        let mut parts = Vec::new();
        for site in sites {
            let url = format!("{}{}.parquet", folder_url(&site.location)?, table.name);
            if present(&url) {
                let scan = parquet_scan(table, &url)?;
                let scan = without_opted_out(scan, table.name, opted_out)?;
                parts.push(with_site_column(scan, &site.id)?);
            }
        }
        let Some(first) = parts.pop() else { continue };
        let mut builder = LogicalPlanBuilder::from(first);
        for p in parts.into_iter().rev() {
            builder = builder.union(p)?;
        }
        let view = ViewTable::new(builder.build()?, None);
        ctx.register_table(table.name, Arc::new(view))?;
        registered.push(table.name.to_string());
    }
    if let Some(vocab) = vocabulary {
        register_vocabulary(ctx, vocab).await?;
    }
    Ok(registered)
}

/// Register the public `concept` table from a Parquet file URL or path.
pub async fn register_vocabulary(ctx: &SessionContext, location: &str) -> Result<()> {
    let def = schema::tables()
        .iter()
        .find(|t| t.kind == TableKind::Vocabulary)
        .ok_or_else(|| SiteError::Internal("no vocabulary table".into()))?;
    let url = if location.contains("://") {
        location.to_string()
    } else {
        folder_url(location)?.trim_end_matches('/').to_string()
    };
    if !present(&url) {
        return Err(SiteError::Data(format!(
            "vocabulary file {url} does not exist"
        )));
    }
    let provider = parquet_table(&url, def.file_schema())?;
    ctx.register_table(def.name, Arc::new(provider))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The opt-out join of every view a subplan reads, in subqueries too,
    /// becomes a `NOT IN` filter of the same ids; nothing else changes.
    #[tokio::test]
    async fn opt_out_joins_become_filters_of_the_same_ids() {
        let ctx = SessionContext::new();
        let present = ["person".to_string(), "condition_occurrence".to_string()];
        register_relational_tables(&ctx, "lu", &present, &[17, 42]).expect("views");
        let sql = "SELECT gender_concept_id, count(*) FROM person WHERE person_id IN \
                   (SELECT person_id FROM condition_occurrence) GROUP BY 1";
        let plan = ctx.state().create_logical_plan(sql).await.expect("plan");
        let before = plan.display_indent().to_string();
        assert_eq!(before.matches("LeftAnti Join").count(), 2, "{before}");
        let after = opt_out_as_filters(plan).expect("rewrite");
        let text = after.display_indent().to_string();
        assert!(!text.contains(OPT_OUT_TABLE), "{text}");
        assert!(!text.contains("LeftAnti"), "{text}");
        assert_eq!(
            text.matches("NOT IN ([Int64(17), Int64(42)])").count(),
            2,
            "{text}"
        );
        assert_eq!(
            after.schema(),
            ctx.state()
                .create_logical_plan(sql)
                .await
                .expect("plan")
                .schema()
        );
    }
}
