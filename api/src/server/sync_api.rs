//! `connector-types`, `connections` and `jobs` endpoints.

use super::auth::BearerAuth;
use super::envelope::{self, ApiError, ApiResult, ok, path_id};
use super::runs_api::{default_page, default_page_size};
use super::sync_views::*;
use poem_openapi::param::{Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, OpenApi, Tags};
use weft_api_types::sync::*;
use weft_api_types::{Envelope, RunView};
use weft_engine::{Engine, PageRequest};
use weft_model::{ConnectionId, ConnectorRole, SyncJobId};

#[derive(Tags)]
enum Tag {
    /// Installed connectors and their config schemas.
    ConnectorTypes,
    /// Configured sources and destinations.
    Connections,
    /// Sync jobs: streams from a source to a destination, their syncs and state.
    Jobs,
}

/// Connector, connection and job endpoints.
pub struct SyncApi {
    /// The engine.
    pub engine: Engine,
}

#[derive(ApiResponse)]
enum ConnectionCreated {
    /// Created.
    #[oai(status = 201)]
    Created(
        Json<Envelope<ConnectionView>>,
        #[oai(header = "Location")] String,
    ),
}

#[derive(ApiResponse)]
enum JobCreated {
    /// Created.
    #[oai(status = 201)]
    Created(
        Json<Envelope<SyncJobView>>,
        #[oai(header = "Location")] String,
    ),
}

#[derive(ApiResponse)]
enum SyncStarted {
    /// The sync's run was started.
    #[oai(status = 202)]
    Accepted(Json<Envelope<RunView>>, #[oai(header = "Location")] String),
}

/// One page of an in-memory list.
fn paged<T, V>(
    items: Vec<T>,
    page: u32,
    page_size: u32,
    view: impl Fn(T) -> V,
) -> Json<Envelope<Vec<V>>>
where
    V: poem_openapi::types::ParseFromJSON + poem_openapi::types::ToJSON,
{
    let req = PageRequest::new(page, page_size);
    let total = items.len() as u64;
    let skip = (req.page as usize - 1).saturating_mul(req.page_size as usize);
    let data = items
        .into_iter()
        .skip(skip)
        .take(req.page_size as usize)
        .map(view)
        .collect();
    envelope::page(data, req.page, req.page_size, total)
}

fn connection(id: &str) -> ApiResult<ConnectionId> {
    path_id(id, "connection")
}

fn job(id: &str) -> ApiResult<SyncJobId> {
    path_id(id, "job")
}

#[OpenApi]
impl SyncApi {
    /// Lists installed connectors: each plugin name that plays a source or
    /// destination role, with its versions.
    #[oai(
        path = "/connector-types",
        method = "get",
        tag = "Tag::ConnectorTypes",
        operation_id = "listConnectorTypes"
    )]
    async fn connector_types(
        &self,
        auth: BearerAuth,
    ) -> ApiResult<Json<Envelope<Vec<ConnectorTypeView>>>> {
        Ok(ok(connector_types(self.engine.plugins(&auth.0)?)))
    }

    /// A connector's config schemas (of its newest version, or of the
    /// version given).
    #[oai(
        path = "/connector-types/:name/spec",
        method = "get",
        tag = "Tag::ConnectorTypes",
        operation_id = "getConnectorSpec"
    )]
    async fn connector_spec(
        &self,
        auth: BearerAuth,
        name: Path<String>,
        #[oai(validator(min_length = 1, max_length = 128))] version: Query<Option<String>>,
    ) -> ApiResult<Json<Envelope<ConnectorSpecView>>> {
        let plugins = self.engine.plugins(&auth.0)?;
        let best = plugins
            .iter()
            .filter(|p| p.manifest.name == name.0)
            .filter(|p| p.manifest.roles.source || p.manifest.roles.destination)
            .filter(|p| {
                version
                    .0
                    .as_deref()
                    .is_none_or(|v| p.manifest.version.to_string() == v)
            })
            .max_by(|a, b| a.manifest.version.cmp(&b.manifest.version));
        best.map(|p| ok(connector_spec(p))).ok_or_else(|| {
            ApiError::not_found(format!(
                "connector {:?}{} not found",
                name.0,
                version
                    .0
                    .map(|v| format!(" version {v}"))
                    .unwrap_or_default()
            ))
        })
    }

    /// Creates a connection. Its config is validated against the
    /// connector's schema (422 with a pointer per problem) before it is
    /// stored; no plugin is called. Secret fields are sealed at rest.
    #[oai(
        path = "/connections",
        method = "post",
        tag = "Tag::Connections",
        operation_id = "createConnection"
    )]
    async fn create_connection(
        &self,
        auth: BearerAuth,
        body: Json<ConnectionBody>,
    ) -> ApiResult<ConnectionCreated> {
        let e = self
            .engine
            .create_connection(&auth.0, connection_request(body.0)?)
            .await?;
        let location = format!("/api/v1/connections/{}", e.connection.connection_id);
        Ok(ConnectionCreated::Created(ok(connection_view(e)), location))
    }

    /// Lists connections, optionally of one role and connector, each with
    /// the jobs that use it and their latest run.
    #[oai(
        path = "/connections",
        method = "get",
        tag = "Tag::Connections",
        operation_id = "listConnections"
    )]
    async fn list_connections(
        &self,
        auth: BearerAuth,
        role: Query<Option<ConnectorRole>>,
        #[oai(validator(min_length = 1, max_length = 128))] connector: Query<Option<String>>,
        #[oai(
            default = "default_page",
            validator(minimum(value = "1"), maximum(value = "4294967295"))
        )]
        page: Query<u32>,
        #[oai(
            name = "pageSize",
            default = "default_page_size",
            validator(minimum(value = "1"), maximum(value = "100"))
        )]
        page_size: Query<u32>,
    ) -> ApiResult<Json<Envelope<Vec<ConnectionView>>>> {
        let all = self
            .engine
            .connections(&auth.0, role.0, connector.0.as_deref())
            .await?;
        Ok(paged(all, page.0, page_size.0, connection_view))
    }

    /// Checks an unsaved connection: validation, then the connector's `check`.
    #[oai(
        path = "/connections/test",
        method = "post",
        tag = "Tag::Connections",
        operation_id = "testConnectionConfig"
    )]
    async fn test_config(
        &self,
        auth: BearerAuth,
        body: Json<ConnectionBody>,
    ) -> ApiResult<Json<Envelope<ConnectionCheckView>>> {
        let r = self
            .engine
            .test_connection_config(&auth.0, connection_request(body.0)?)
            .await?;
        Ok(ok(check_view(r)))
    }

    /// One connection.
    #[oai(
        path = "/connections/:id",
        method = "get",
        tag = "Tag::Connections",
        operation_id = "getConnection"
    )]
    async fn get_connection(
        &self,
        auth: BearerAuth,
        id: Path<String>,
    ) -> ApiResult<Json<Envelope<ConnectionView>>> {
        let e = self.engine.connection(&auth.0, &connection(&id)?).await?;
        Ok(ok(connection_view(e)))
    }

    /// Replaces a connection's name, version and config. A secret field
    /// left out, or sent back as `"********"`, keeps its stored value.
    #[oai(
        path = "/connections/:id",
        method = "put",
        tag = "Tag::Connections",
        operation_id = "updateConnection"
    )]
    async fn update_connection(
        &self,
        auth: BearerAuth,
        id: Path<String>,
        body: Json<ConnectionBody>,
    ) -> ApiResult<Json<Envelope<ConnectionView>>> {
        let e = self
            .engine
            .update_connection(&auth.0, &connection(&id)?, connection_request(body.0)?)
            .await?;
        Ok(ok(connection_view(e)))
    }

    /// Deletes a connection; 409 while a job uses it.
    #[oai(
        path = "/connections/:id",
        method = "delete",
        tag = "Tag::Connections",
        operation_id = "deleteConnection"
    )]
    async fn delete_connection(
        &self,
        auth: BearerAuth,
        id: Path<String>,
    ) -> ApiResult<Json<Envelope<ConnectionView>>> {
        let id = connection(&id)?;
        let e = self.engine.connection(&auth.0, &id).await?;
        self.engine.delete_connection(&auth.0, &id).await?;
        Ok(ok(connection_view(e)))
    }

    /// Checks a stored connection with the connector's `check`.
    #[oai(
        path = "/connections/:id/test",
        method = "post",
        tag = "Tag::Connections",
        operation_id = "testConnection"
    )]
    async fn test_connection(
        &self,
        auth: BearerAuth,
        id: Path<String>,
    ) -> ApiResult<Json<Envelope<ConnectionCheckView>>> {
        let r = self
            .engine
            .test_connection(&auth.0, &connection(&id)?)
            .await?;
        Ok(ok(check_view(r)))
    }

    /// Whether a connection works now (its connector's `check`).
    #[oai(
        path = "/connections/:id/health",
        method = "get",
        tag = "Tag::Connections",
        operation_id = "getConnectionHealth"
    )]
    async fn health(
        &self,
        auth: BearerAuth,
        id: Path<String>,
    ) -> ApiResult<Json<Envelope<ConnectionCheckView>>> {
        self.test_connection(auth, id).await
    }

    /// What a source connection can read: streams with their schemas,
    /// sync modes, cursor and primary-key candidates.
    #[oai(
        path = "/connections/:id/discover",
        method = "post",
        tag = "Tag::Connections",
        operation_id = "discoverConnection"
    )]
    async fn discover(
        &self,
        auth: BearerAuth,
        id: Path<String>,
    ) -> ApiResult<Json<Envelope<CatalogView>>> {
        let c = self.engine.discover(&auth.0, &connection(&id)?).await?;
        Ok(ok(catalog_view(c)))
    }

    /// Creates a job. Its streams are checked against the source's catalog
    /// and the destination's write modes (422 with a pointer per problem).
    #[oai(
        path = "/jobs",
        method = "post",
        tag = "Tag::Jobs",
        operation_id = "createJob"
    )]
    async fn create_job(&self, auth: BearerAuth, body: Json<SyncJobBody>) -> ApiResult<JobCreated> {
        let e = self
            .engine
            .create_sync_job(&auth.0, job_request(body.0)?)
            .await?;
        let location = format!("/api/v1/jobs/{}", e.job.job_id);
        Ok(JobCreated::Created(ok(job_view(e)), location))
    }

    /// Lists jobs, optionally reading from one source or writing to one destination.
    #[oai(
        path = "/jobs",
        method = "get",
        tag = "Tag::Jobs",
        operation_id = "listJobs"
    )]
    async fn list_jobs(
        &self,
        auth: BearerAuth,
        #[oai(validator(min_length = 1, max_length = 128))] source: Query<Option<String>>,
        #[oai(validator(min_length = 1, max_length = 128))] destination: Query<Option<String>>,
        #[oai(
            default = "default_page",
            validator(minimum(value = "1"), maximum(value = "4294967295"))
        )]
        page: Query<u32>,
        #[oai(
            name = "pageSize",
            default = "default_page_size",
            validator(minimum(value = "1"), maximum(value = "100"))
        )]
        page_size: Query<u32>,
    ) -> ApiResult<Json<Envelope<Vec<SyncJobView>>>> {
        // An id that cannot exist filters everything out.
        let parse = |v: Option<String>| -> Result<Option<ConnectionId>, ()> {
            v.map(|s| s.parse().map_err(|_| ())).transpose()
        };
        let (Ok(source), Ok(destination)) = (parse(source.0), parse(destination.0)) else {
            return Ok(paged(Vec::new(), page.0, page_size.0, job_view));
        };
        let all = self
            .engine
            .sync_jobs(&auth.0, source.as_ref(), destination.as_ref())
            .await?;
        Ok(paged(all, page.0, page_size.0, job_view))
    }

    /// One job, with its latest run and the sync running now.
    #[oai(
        path = "/jobs/:id",
        method = "get",
        tag = "Tag::Jobs",
        operation_id = "getJob"
    )]
    async fn get_job(
        &self,
        auth: BearerAuth,
        id: Path<String>,
    ) -> ApiResult<Json<Envelope<SyncJobView>>> {
        Ok(ok(job_view(
            self.engine.sync_job(&auth.0, &job(&id)?).await?,
        )))
    }

    /// Replaces a job's definition (its state stays).
    #[oai(
        path = "/jobs/:id",
        method = "put",
        tag = "Tag::Jobs",
        operation_id = "updateJob"
    )]
    async fn update_job(
        &self,
        auth: BearerAuth,
        id: Path<String>,
        body: Json<SyncJobBody>,
    ) -> ApiResult<Json<Envelope<SyncJobView>>> {
        let e = self
            .engine
            .update_sync_job(&auth.0, &job(&id)?, job_request(body.0)?)
            .await?;
        Ok(ok(job_view(e)))
    }

    /// Deletes a job, its state and its template; 409 while it syncs.
    #[oai(
        path = "/jobs/:id",
        method = "delete",
        tag = "Tag::Jobs",
        operation_id = "deleteJob"
    )]
    async fn delete_job(
        &self,
        auth: BearerAuth,
        id: Path<String>,
    ) -> ApiResult<Json<Envelope<SyncJobView>>> {
        let id = job(&id)?;
        let e = self.engine.sync_job(&auth.0, &id).await?;
        self.engine.delete_sync_job(&auth.0, &id).await?;
        Ok(ok(job_view(e)))
    }

    /// Turns a job's schedule on or off.
    #[oai(
        path = "/jobs/:id/activate",
        method = "post",
        tag = "Tag::Jobs",
        operation_id = "activateJob"
    )]
    async fn activate(
        &self,
        auth: BearerAuth,
        id: Path<String>,
        body: Json<ActivateBody>,
    ) -> ApiResult<Json<Envelope<SyncJobView>>> {
        let e = self
            .engine
            .activate_sync_job(&auth.0, &job(&id)?, body.0.activate)
            .await?;
        Ok(ok(job_view(e)))
    }

    /// Starts a sync now and returns its run (a workflow run: logs,
    /// events, live feed and cancel as for any run); 409 while one runs.
    #[oai(
        path = "/jobs/:id/sync",
        method = "post",
        tag = "Tag::Jobs",
        operation_id = "syncJob"
    )]
    async fn sync(&self, auth: BearerAuth, id: Path<String>) -> ApiResult<SyncStarted> {
        let run = self.engine.sync_now(&auth.0, &job(&id)?).await?;
        let location = format!("/api/v1/workflow-runs/{}", run.run_id);
        Ok(SyncStarted::Accepted(ok(RunView::from(run)), location))
    }

    /// Cancels a job's running sync and returns its run; 409 when none runs.
    #[oai(
        path = "/jobs/:id/cancel",
        method = "post",
        tag = "Tag::Jobs",
        operation_id = "cancelJobSync"
    )]
    async fn cancel(
        &self,
        auth: BearerAuth,
        id: Path<String>,
    ) -> ApiResult<Json<Envelope<RunView>>> {
        let run_id = self.engine.cancel_sync(&auth.0, &job(&id)?).await?;
        let run = self.engine.run(&auth.0, &run_id).await?;
        Ok(ok(RunView::from(run)))
    }

    /// A job's syncs, newest first, with rows and bytes per stream.
    #[oai(
        path = "/jobs/:id/runs",
        method = "get",
        tag = "Tag::Jobs",
        operation_id = "listJobRuns"
    )]
    async fn runs(
        &self,
        auth: BearerAuth,
        id: Path<String>,
        #[oai(
            default = "default_page",
            validator(minimum(value = "1"), maximum(value = "4294967295"))
        )]
        page: Query<u32>,
        #[oai(
            name = "pageSize",
            default = "default_page_size",
            validator(minimum(value = "1"), maximum(value = "100"))
        )]
        page_size: Query<u32>,
    ) -> ApiResult<Json<Envelope<Vec<SyncJobRunView>>>> {
        let req = PageRequest::new(page.0, page_size.0);
        let p = self.engine.sync_job_runs(&auth.0, &job(&id)?, req).await?;
        Ok(envelope::paged(p, req, job_run_view))
    }

    /// A job's per-stream state as of its last destination commit.
    #[oai(
        path = "/jobs/:id/state",
        method = "get",
        tag = "Tag::Jobs",
        operation_id = "getJobState"
    )]
    async fn get_state(
        &self,
        auth: BearerAuth,
        id: Path<String>,
    ) -> ApiResult<Json<Envelope<SyncStateView>>> {
        Ok(ok(state_view(
            self.engine.sync_state(&auth.0, &job(&id)?).await?,
        )))
    }

    /// Replaces a job's per-stream state; 423 while it syncs.
    #[oai(
        path = "/jobs/:id/state",
        method = "put",
        tag = "Tag::Jobs",
        operation_id = "replaceJobState"
    )]
    async fn put_state(
        &self,
        auth: BearerAuth,
        id: Path<String>,
        body: Json<SyncStateBody>,
    ) -> ApiResult<Json<Envelope<SyncStateView>>> {
        let s = self
            .engine
            .replace_sync_state(&auth.0, &job(&id)?, checkpoints(body.0))
            .await?;
        Ok(ok(state_view(s)))
    }

    /// Resets a job's state: the next sync reads every stream from the
    /// start; 423 while it syncs.
    #[oai(
        path = "/jobs/:id/state",
        method = "delete",
        tag = "Tag::Jobs",
        operation_id = "resetJobState"
    )]
    async fn reset_state(
        &self,
        auth: BearerAuth,
        id: Path<String>,
    ) -> ApiResult<Json<Envelope<SyncStateView>>> {
        let s = self.engine.reset_sync_state(&auth.0, &job(&id)?).await?;
        Ok(ok(state_view(s)))
    }

    /// Streams and columns added or removed at the source since the job
    /// was configured (one `discover`).
    #[oai(
        path = "/jobs/:id/catalog-diff",
        method = "get",
        tag = "Tag::Jobs",
        operation_id = "getJobCatalogDiff"
    )]
    async fn catalog_diff(
        &self,
        auth: BearerAuth,
        id: Path<String>,
    ) -> ApiResult<Json<Envelope<CatalogDiffView>>> {
        Ok(ok(diff_view(
            self.engine.catalog_diff(&auth.0, &job(&id)?).await?,
        )))
    }
}
