//! `FlightSqlService` for the coordinator: each method is a thin dispatch
//! to the module that owns the behaviour (statements run here; prepared
//! statements, metadata, type info, actions and refusals live beside it).

use std::pin::Pin;
use std::sync::Arc;

use arrow_flight::flight_service_server::FlightService;
use arrow_flight::sql::server::{FlightSqlService, PeekableFlightDataStream};
use arrow_flight::sql::{
    ActionBeginSavepointRequest, ActionBeginSavepointResult, ActionBeginTransactionRequest,
    ActionBeginTransactionResult, ActionCancelQueryRequest, ActionCancelQueryResult,
    ActionClosePreparedStatementRequest, ActionCreatePreparedStatementRequest,
    ActionCreatePreparedStatementResult, ActionCreatePreparedSubstraitPlanRequest,
    ActionEndSavepointRequest, ActionEndTransactionRequest, CommandGetCatalogs,
    CommandGetCrossReference, CommandGetDbSchemas, CommandGetExportedKeys, CommandGetImportedKeys,
    CommandGetPrimaryKeys, CommandGetSqlInfo, CommandGetTableTypes, CommandGetTables,
    CommandGetXdbcTypeInfo, CommandPreparedStatementQuery, CommandPreparedStatementUpdate,
    CommandStatementIngest, CommandStatementQuery, CommandStatementSubstraitPlan,
    CommandStatementUpdate, DoPutPreparedStatementResult, ProstMessageExt, SqlInfo,
    TicketStatementQuery,
};
use arrow_flight::{
    Action, ActionType, FlightDescriptor, FlightEndpoint, FlightInfo, HandshakeRequest,
    HandshakeResponse, Ticket,
};
use futures::Stream;
use ihdsi_engine::{Coordinator, QueryContext};
use prost::Message;
use tonic::{Request, Response, Status, Streaming};

use super::actions::{self, PROGRESS_ACTION, ProgressBoard};
use super::prepared::{self, Handle};
use super::replies::{
    encode, info, no_foreign_keys, no_substrait, one_batch, read_only, sql_info, xdbc_types,
};
use super::{Drain, ResultCache, metadata, types};
use crate::auth::Authenticator;
use crate::permits::{self, PermitStore};
use crate::status::to_status;

/// How long a result waits for its `DoGet`.
const RESULT_TTL: std::time::Duration = std::time::Duration::from_secs(600);

/// Flight SQL front of the federation.
#[derive(Debug, Clone)]
pub struct CoordinatorService {
    coordinator: Arc<Coordinator>,
    results: Arc<ResultCache>,
    auth: Arc<Authenticator>,
    progress: Arc<ProgressBoard>,
    permits: Arc<PermitStore>,
    drain: Arc<Drain>,
}

impl CoordinatorService {
    /// Run a query and keep its result for `DoGet`; the FlightInfo announces
    /// the result's exact schema.
    async fn run(
        &self,
        sql: &str,
        params: Option<Vec<datafusion::common::ScalarValue>>,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let _running = self.drain.enter()?;
        let analyst = actions::analyst(&request)?.name.clone();
        let query_id = uuid::Uuid::new_v4().to_string();
        let cx = QueryContext::new(&analyst, &query_id);
        let cx = permits::attach(&self.permits, &self.coordinator, cx, sql, &request).await?;
        // Per-site progress times each site's work on the data: dp mode
        // reports none (attack A16), so a poll finds no sites.
        let shown = self.coordinator.shows_progress();
        if let Some(request_id) = ProgressBoard::request_id(&request).filter(|_| shown) {
            self.progress
                .follow(&analyst, request_id, cx.progress.clone());
        }
        let outcome = self
            .coordinator
            .execute_with_params(sql, params, &cx)
            .await
            .map_err(|e| {
                tracing::info!(query_id, analyst, error = %e, "query failed");
                to_status(&e)
            })?;
        let rows: usize = outcome.batches.iter().map(|b| b.num_rows()).sum();
        let ticket = TicketStatementQuery {
            statement_handle: query_id.clone().into(),
        };
        let endpoint =
            FlightEndpoint::new().with_ticket(Ticket::new(ticket.as_any().encode_to_vec()));
        let info = FlightInfo::new()
            .try_with_schema(&outcome.schema)
            .map_err(|e| Status::internal(format!("cannot encode schema: {e}")))?
            .with_endpoint(endpoint)
            .with_descriptor(request.into_inner())
            .with_total_records(rows as i64)
            .with_ordered(true);
        self.results.insert(&analyst, outcome)?;
        Ok(Response::new(info))
    }

    /// Serve `coordinator`; `auth` issues the handshake's tokens (the
    /// [`crate::auth::layer::AuthLayer`] in front checks every call), and
    /// new queries are refused once `drain` begins.
    pub fn new(
        coordinator: Coordinator,
        auth: Arc<Authenticator>,
        permits: PermitStore,
        drain: Arc<Drain>,
    ) -> Self {
        let cache_bytes = coordinator.resources().result_cache_bytes();
        Self {
            coordinator: Arc::new(coordinator),
            results: ResultCache::start(RESULT_TTL, cache_bytes, Arc::clone(&drain)),
            auth,
            progress: Arc::new(ProgressBoard::default()),
            permits: Arc::new(permits),
            drain,
        }
    }
}

#[tonic::async_trait]
impl FlightSqlService for CoordinatorService {
    type FlightService = CoordinatorService;

    async fn do_handshake(
        &self,
        request: Request<Streaming<HandshakeRequest>>,
    ) -> Result<
        Response<Pin<Box<dyn Stream<Item = Result<HandshakeResponse, Status>> + Send>>>,
        Status,
    > {
        actions::handshake(&self.auth, &request)
    }

    async fn do_action_fallback(
        &self,
        request: Request<Action>,
    ) -> Result<Response<<Self as FlightService>::DoActionStream>, Status> {
        let analyst = actions::analyst(&request)?;
        let body = match request.get_ref().r#type.as_str() {
            PROGRESS_ACTION => self.progress.poll(&analyst.name, &request.get_ref().body)?,
            "CancelFlightInfo" => self
                .results
                .cancel(&analyst.name, &request.get_ref().body)?,
            other => return Err(actions::unsupported_action(other)),
        };
        let result = arrow_flight::Result { body: body.into() };
        Ok(Response::new(Box::pin(futures::stream::iter([Ok(result)]))))
    }

    async fn list_custom_actions(&self) -> Option<Vec<Result<ActionType, Status>>> {
        Some(actions::custom_actions())
    }

    async fn get_flight_info_statement(
        &self,
        query: CommandStatementQuery,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        self.run(&query.query, None, request).await
    }

    async fn get_flight_info_prepared_statement(
        &self,
        query: CommandPreparedStatementQuery,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let handle = Handle::decode(&query.prepared_statement_handle)?;
        let values = handle.values()?;
        self.run(&handle.sql, values, request).await
    }

    async fn do_action_create_prepared_statement(
        &self,
        query: ActionCreatePreparedStatementRequest,
        request: Request<Action>,
    ) -> Result<ActionCreatePreparedStatementResult, Status> {
        let analyst = actions::analyst(&request)?;
        prepared::create(&self.coordinator, &analyst.name, query.query).await
    }

    async fn do_put_prepared_statement_query(
        &self,
        query: CommandPreparedStatementQuery,
        request: Request<PeekableFlightDataStream>,
    ) -> Result<DoPutPreparedStatementResult, Status> {
        prepared::bind(&query.prepared_statement_handle, request.into_inner()).await
    }

    async fn do_action_close_prepared_statement(
        &self,
        query: ActionClosePreparedStatementRequest,
        _request: Request<Action>,
    ) -> Result<(), Status> {
        Handle::decode(&query.prepared_statement_handle).map(|_| ())
    }

    async fn do_get_statement(
        &self,
        ticket: TicketStatementQuery,
        request: Request<Ticket>,
    ) -> Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        let handle = String::from_utf8(ticket.statement_handle.to_vec())
            .map_err(|_| Status::invalid_argument("malformed statement handle"))?;
        let analyst = &actions::analyst(&request)?.name;
        let outcome = self.results.get(analyst, &handle).ok_or_else(|| {
            Status::not_found("unknown or expired statement handle; run the query again")
        })?;
        Ok(Response::new(encode(outcome.schema, outcome.batches)))
    }

    async fn get_flight_info_sql_info(
        &self,
        query: CommandGetSqlInfo,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let schema = query.clone().into_builder(sql_info()?).schema();
        let endpoint =
            FlightEndpoint::new().with_ticket(Ticket::new(query.as_any().encode_to_vec()));
        let info = FlightInfo::new()
            .try_with_schema(schema.as_ref())
            .map_err(|e| Status::internal(format!("cannot encode schema: {e}")))?
            .with_endpoint(endpoint)
            .with_descriptor(request.into_inner());
        Ok(Response::new(info))
    }

    async fn do_get_sql_info(
        &self,
        query: CommandGetSqlInfo,
        _request: Request<Ticket>,
    ) -> Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        let batch = query
            .into_builder(sql_info()?)
            .build()
            .map_err(|e| Status::internal(e.to_string()))?;
        Ok(one_batch(batch))
    }

    async fn get_flight_info_catalogs(
        &self,
        query: CommandGetCatalogs,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let schema = query.into_builder().schema();
        info(schema, query.as_any().encode_to_vec(), request)
    }

    async fn do_get_catalogs(
        &self,
        query: CommandGetCatalogs,
        _request: Request<Ticket>,
    ) -> Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        let batch = metadata::catalogs(query)?;
        Ok(one_batch(batch))
    }

    async fn get_flight_info_schemas(
        &self,
        query: CommandGetDbSchemas,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let schema = query.clone().into_builder().schema();
        info(schema, query.as_any().encode_to_vec(), request)
    }

    async fn do_get_schemas(
        &self,
        query: CommandGetDbSchemas,
        _request: Request<Ticket>,
    ) -> Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        let batch = metadata::db_schemas(query)?;
        Ok(one_batch(batch))
    }

    async fn get_flight_info_tables(
        &self,
        query: CommandGetTables,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let schema = query.clone().into_builder().schema();
        info(schema, query.as_any().encode_to_vec(), request)
    }

    async fn do_get_tables(
        &self,
        query: CommandGetTables,
        _request: Request<Ticket>,
    ) -> Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        let batch = metadata::tables(query)?;
        Ok(one_batch(batch))
    }

    async fn get_flight_info_table_types(
        &self,
        query: CommandGetTableTypes,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let schema = query.into_builder().schema();
        info(schema, query.as_any().encode_to_vec(), request)
    }

    async fn do_get_table_types(
        &self,
        query: CommandGetTableTypes,
        _request: Request<Ticket>,
    ) -> Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        let batch = metadata::table_types(query)?;
        Ok(one_batch(batch))
    }

    async fn get_flight_info_xdbc_type_info(
        &self,
        query: CommandGetXdbcTypeInfo,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let data = xdbc_types()?;
        info(
            query.into_builder(data).schema(),
            query.as_any().encode_to_vec(),
            request,
        )
    }

    async fn do_get_xdbc_type_info(
        &self,
        query: CommandGetXdbcTypeInfo,
        _request: Request<Ticket>,
    ) -> Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        let batch = query
            .into_builder(xdbc_types()?)
            .build()
            .map_err(|e| Status::internal(e.to_string()))?;
        Ok(one_batch(batch))
    }

    async fn get_flight_info_primary_keys(
        &self,
        query: CommandGetPrimaryKeys,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        info(
            types::primary_keys_schema(),
            query.as_any().encode_to_vec(),
            request,
        )
    }

    async fn do_get_primary_keys(
        &self,
        _query: CommandGetPrimaryKeys,
        _request: Request<Ticket>,
    ) -> Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        let schema = types::primary_keys_schema();
        Ok(Response::new(encode(
            Arc::clone(&schema),
            vec![types::empty(schema)],
        )))
    }

    async fn get_flight_info_imported_keys(
        &self,
        query: CommandGetImportedKeys,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        info(
            types::foreign_keys_schema(),
            query.as_any().encode_to_vec(),
            request,
        )
    }

    async fn do_get_imported_keys(
        &self,
        _query: CommandGetImportedKeys,
        _request: Request<Ticket>,
    ) -> Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        no_foreign_keys()
    }

    async fn get_flight_info_exported_keys(
        &self,
        query: CommandGetExportedKeys,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        info(
            types::foreign_keys_schema(),
            query.as_any().encode_to_vec(),
            request,
        )
    }

    async fn do_get_exported_keys(
        &self,
        _query: CommandGetExportedKeys,
        _request: Request<Ticket>,
    ) -> Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        no_foreign_keys()
    }

    async fn get_flight_info_cross_reference(
        &self,
        query: CommandGetCrossReference,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        info(
            types::foreign_keys_schema(),
            query.as_any().encode_to_vec(),
            request,
        )
    }

    async fn do_get_cross_reference(
        &self,
        _query: CommandGetCrossReference,
        _request: Request<Ticket>,
    ) -> Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        no_foreign_keys()
    }

    async fn do_put_statement_update(
        &self,
        _query: CommandStatementUpdate,
        _request: Request<PeekableFlightDataStream>,
    ) -> Result<i64, Status> {
        Err(read_only())
    }

    async fn do_put_prepared_statement_update(
        &self,
        _query: CommandPreparedStatementUpdate,
        _request: Request<PeekableFlightDataStream>,
    ) -> Result<i64, Status> {
        Err(read_only())
    }

    async fn do_put_statement_ingest(
        &self,
        _query: CommandStatementIngest,
        _request: Request<PeekableFlightDataStream>,
    ) -> Result<i64, Status> {
        Err(read_only())
    }

    async fn do_action_begin_transaction(
        &self,
        _query: ActionBeginTransactionRequest,
        _request: Request<Action>,
    ) -> Result<ActionBeginTransactionResult, Status> {
        Err(read_only())
    }

    async fn get_flight_info_substrait_plan(
        &self,
        _query: CommandStatementSubstraitPlan,
        _request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        Err(no_substrait())
    }

    async fn do_action_end_transaction(
        &self,
        _query: ActionEndTransactionRequest,
        _request: Request<Action>,
    ) -> Result<(), Status> {
        Err(read_only())
    }

    async fn do_action_begin_savepoint(
        &self,
        _query: ActionBeginSavepointRequest,
        _request: Request<Action>,
    ) -> Result<ActionBeginSavepointResult, Status> {
        Err(read_only())
    }

    async fn do_action_end_savepoint(
        &self,
        _query: ActionEndSavepointRequest,
        _request: Request<Action>,
    ) -> Result<(), Status> {
        Err(read_only())
    }

    async fn do_put_substrait_plan(
        &self,
        _query: CommandStatementSubstraitPlan,
        _request: Request<PeekableFlightDataStream>,
    ) -> Result<i64, Status> {
        Err(read_only())
    }

    async fn do_action_create_prepared_substrait_plan(
        &self,
        _query: ActionCreatePreparedSubstraitPlanRequest,
        _request: Request<Action>,
    ) -> Result<ActionCreatePreparedStatementResult, Status> {
        Err(no_substrait())
    }

    async fn do_action_cancel_query(
        &self,
        _query: ActionCancelQueryRequest,
        _request: Request<Action>,
    ) -> Result<ActionCancelQueryResult, Status> {
        Err(Status::unimplemented(
            "CancelQuery: a query runs to completion inside GetFlightInfo, so there is nothing left to cancel",
        ))
    }

    async fn register_sql_info(&self, _id: i32, _result: &SqlInfo) {}
}
