//! Column buffers that stream generated rows into one Parquet file per table.
//!
//! Rows are appended sparsely: a table buffer is told once which columns the
//! generator fills, and every other column of the OMOP table is written as
//! NULL. Buffers flush to the Parquet writer every [`FLUSH_ROWS`] rows, so
//! memory stays flat however many persons are generated.

use std::fs::File;
use std::path::Path;
use std::sync::Arc;

use datafusion::arrow::array::{
    ArrayBuilder, ArrayRef, Date32Builder, Float64Builder, Int32Builder, Int64Builder,
    StringBuilder, TimestampMicrosecondBuilder,
};
use datafusion::arrow::datatypes::{DataType, SchemaRef, TimeUnit};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::parquet::arrow::ArrowWriter;
use datafusion::parquet::basic::{Compression, ZstdLevel};
use datafusion::parquet::file::properties::{EnabledStatistics, WriterProperties};

use crate::error::{Result, SyntheticError};

const FLUSH_ROWS: usize = 64 * 1024;
/// Row groups of 128k rows keep per-group statistics useful for pruning.
const ROW_GROUP_ROWS: usize = 128 * 1024;

/// One generated cell value.
#[derive(Debug, Clone, Copy)]
pub(crate) enum V<'a> {
    I64(i64),
    I32(i32),
    F64(f64),
    S(&'a str),
    D(i32),
    Null,
}

#[derive(Debug)]
enum Col {
    I64(Int64Builder),
    I32(Int32Builder),
    F64(Float64Builder),
    S(StringBuilder),
    D(Date32Builder),
    Ts(TimestampMicrosecondBuilder),
}

impl Col {
    fn for_type(t: &DataType) -> Option<Self> {
        Some(match t {
            DataType::Int64 => Col::I64(Int64Builder::new()),
            DataType::Int32 => Col::I32(Int32Builder::new()),
            DataType::Float64 => Col::F64(Float64Builder::new()),
            DataType::Utf8 => Col::S(StringBuilder::new()),
            DataType::Date32 => Col::D(Date32Builder::new()),
            DataType::Timestamp(TimeUnit::Microsecond, None) => {
                Col::Ts(TimestampMicrosecondBuilder::new())
            }
            _ => return None,
        })
    }

    /// Append `v`; returns false on a type mismatch (a NULL is appended).
    fn push(&mut self, v: V<'_>) -> bool {
        match (self, v) {
            (Col::I64(b), V::I64(x)) => b.append_value(x),
            (Col::I32(b), V::I32(x)) => b.append_value(x),
            (Col::F64(b), V::F64(x)) => b.append_value(x),
            (Col::S(b), V::S(x)) => b.append_value(x),
            (Col::D(b), V::D(x)) => b.append_value(x),
            (c, V::Null) => c.null(),
            (c, _) => {
                c.null();
                return false;
            }
        }
        true
    }

    fn null(&mut self) {
        match self {
            Col::I64(b) => b.append_null(),
            Col::I32(b) => b.append_null(),
            Col::F64(b) => b.append_null(),
            Col::S(b) => b.append_null(),
            Col::D(b) => b.append_null(),
            Col::Ts(b) => b.append_null(),
        }
    }

    fn finish(&mut self) -> ArrayRef {
        match self {
            Col::I64(b) => Arc::new(b.finish()),
            Col::I32(b) => Arc::new(b.finish()),
            Col::F64(b) => Arc::new(b.finish()),
            Col::S(b) => Arc::new(b.finish()),
            Col::D(b) => Arc::new(b.finish()),
            Col::Ts(b) => Arc::new(b.finish()),
        }
    }
}

/// Rows of one table on their way to `<table>.parquet`.
#[derive(Debug)]
pub(crate) struct TableBuffer {
    table: &'static str,
    schema: SchemaRef,
    cols: Vec<Col>,
    fill: Vec<usize>,
    rest: Vec<usize>,
    rows: usize,
    written: u64,
    mismatches: u64,
    writer: ArrowWriter<File>,
}

/// Parquet settings for generated data: zstd, page-level statistics.
pub(crate) fn writer_properties() -> WriterProperties {
    WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::default()))
        .set_max_row_group_row_count(Some(ROW_GROUP_ROWS))
        .set_statistics_enabled(EnabledStatistics::Page)
        .build()
}

fn encode_err(table: &str, e: impl std::fmt::Display) -> SyntheticError {
    SyntheticError::Encode {
        table: table.to_string(),
        message: e.to_string(),
    }
}

impl TableBuffer {
    /// A buffer writing `path`, filled in the order of `fill` column names.
    pub(crate) fn create(
        table: &'static str,
        schema: SchemaRef,
        fill: &[&str],
        path: &Path,
    ) -> Result<Self> {
        let cols = schema
            .fields()
            .iter()
            .map(|f| {
                Col::for_type(f.data_type())
                    .ok_or_else(|| encode_err(table, format!("unsupported type of {}", f.name())))
            })
            .collect::<Result<Vec<_>>>()?;
        let fill = fill
            .iter()
            .map(|c| schema.index_of(c).map_err(|e| encode_err(table, e)))
            .collect::<Result<Vec<_>>>()?;
        let rest = (0..cols.len()).filter(|i| !fill.contains(i)).collect();
        let file = File::create(path).map_err(|source| SyntheticError::Write {
            path: path.to_path_buf(),
            source,
        })?;
        let writer = ArrowWriter::try_new(file, Arc::clone(&schema), Some(writer_properties()))
            .map_err(|e| encode_err(table, e))?;
        Ok(Self {
            table,
            schema,
            cols,
            fill,
            rest,
            rows: 0,
            written: 0,
            mismatches: 0,
            writer,
        })
    }

    /// Append one row: `values` in the order given to [`TableBuffer::create`].
    pub(crate) fn push(&mut self, values: &[V<'_>]) -> Result<()> {
        for (&i, v) in self.fill.iter().zip(values) {
            if !self.cols[i].push(*v) {
                self.mismatches += 1;
            }
        }
        for &i in self.fill.iter().skip(values.len()).chain(self.rest.iter()) {
            self.cols[i].null();
        }
        self.rows += 1;
        if self.rows >= FLUSH_ROWS {
            self.flush()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<()> {
        if self.cols.first().is_some_and(|c| match c {
            Col::I64(b) => b.is_empty(),
            _ => false,
        }) && self.rows == 0
        {
            return Ok(());
        }
        let arrays: Vec<ArrayRef> = self.cols.iter_mut().map(Col::finish).collect();
        let batch = RecordBatch::try_new(Arc::clone(&self.schema), arrays)
            .map_err(|e| encode_err(self.table, e))?;
        self.writer
            .write(&batch)
            .map_err(|e| encode_err(self.table, e))?;
        self.written += self.rows as u64;
        self.rows = 0;
        Ok(())
    }

    /// Flush, close the file and return the number of rows written.
    pub(crate) fn finish(mut self) -> Result<u64> {
        self.flush()?;
        if self.mismatches > 0 {
            return Err(encode_err(
                self.table,
                format!("{} values of the wrong type", self.mismatches),
            ));
        }
        self.writer.close().map_err(|e| encode_err(self.table, e))?;
        Ok(self.written)
    }
}
