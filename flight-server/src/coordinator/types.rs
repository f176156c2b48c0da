//! What ODBC/JDBC-style clients ask about types and keys.
//!
//! * `GetXdbcTypeInfo` (Power BI asks before previewing a table): the SQL
//!   types the virtual schema uses.
//! * Primary/foreign keys: the virtual schema declares none, so these are
//!   empty, with exactly the schemas the Flight SQL specification gives, so
//!   that JDBC metadata browsing (DBeaver) works.

use std::sync::{Arc, LazyLock};

use arrow_flight::sql::metadata::{XdbcTypeInfo, XdbcTypeInfoData, XdbcTypeInfoDataBuilder};
use arrow_flight::sql::{Nullable, Searchable, XdbcDataType};
use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};

/// `(type name, XDBC type, column size, literal quote)`.
const TYPES: &[(&str, XdbcDataType, Option<i32>, Option<&str>)] = &[
    ("BIGINT", XdbcDataType::XdbcBigint, Some(64), None),
    ("INTEGER", XdbcDataType::XdbcInteger, Some(32), None),
    ("DOUBLE", XdbcDataType::XdbcDouble, Some(53), None),
    ("VARCHAR", XdbcDataType::XdbcVarchar, None, Some("'")),
    ("DATE", XdbcDataType::XdbcDate, None, Some("'")),
    ("TIMESTAMP", XdbcDataType::XdbcTimestamp, None, Some("'")),
];

/// The type catalogue, built once.
pub static XDBC_TYPES: LazyLock<Option<XdbcTypeInfoData>> = LazyLock::new(|| {
    let mut b = XdbcTypeInfoDataBuilder::new();
    for (name, t, size, quote) in TYPES {
        let numeric = size.is_some();
        b.append(XdbcTypeInfo {
            type_name: (*name).into(),
            data_type: *t,
            column_size: *size,
            literal_prefix: quote.map(String::from),
            literal_suffix: quote.map(String::from),
            create_params: None,
            nullable: Nullable::NullabilityNullable,
            case_sensitive: *t == XdbcDataType::XdbcVarchar,
            searchable: Searchable::Full,
            unsigned_attribute: numeric.then_some(false),
            fixed_prec_scale: false,
            auto_increment: numeric.then_some(false),
            local_type_name: Some((*name).into()),
            minimum_scale: None,
            maximum_scale: None,
            sql_data_type: *t,
            datetime_subcode: None,
            num_prec_radix: numeric.then_some(2),
            interval_precision: None,
        });
    }
    b.build().ok()
});

fn utf8(name: &str, nullable: bool) -> Field {
    Field::new(name, DataType::Utf8, nullable)
}

/// Schema of `GetPrimaryKeys` results.
pub fn primary_keys_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        utf8("catalog_name", true),
        utf8("db_schema_name", true),
        utf8("table_name", false),
        utf8("column_name", false),
        utf8("key_name", true),
        Field::new("key_sequence", DataType::Int32, false),
    ]))
}

/// Schema of `GetImportedKeys`, `GetExportedKeys` and `GetCrossReference`.
pub fn foreign_keys_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        utf8("pk_catalog_name", true),
        utf8("pk_db_schema_name", true),
        utf8("pk_table_name", false),
        utf8("pk_column_name", false),
        utf8("fk_catalog_name", true),
        utf8("fk_db_schema_name", true),
        utf8("fk_table_name", false),
        utf8("fk_column_name", false),
        Field::new("key_sequence", DataType::Int32, false),
        utf8("fk_key_name", true),
        utf8("pk_key_name", true),
        Field::new("update_rule", DataType::UInt8, false),
        Field::new("delete_rule", DataType::UInt8, false),
    ]))
}

/// An empty result of `schema`.
pub fn empty(schema: SchemaRef) -> RecordBatch {
    RecordBatch::new_empty(schema)
}
