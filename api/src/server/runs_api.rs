//! `workflow-runs` endpoints: start, list, inspect, control, answer,
//! steps, logs (JSON pages or live SSE) and run events (SSE).

// Endpoint functions take one argument per HTTP parameter; poem-openapi
// extracts and documents them individually, so a request struct is not an option.
#![allow(clippy::too_many_arguments)]

use super::auth::BearerAuth;
use super::envelope::{self, ApiError, ApiResult, ok, path_id};
use futures::StreamExt;
use poem_openapi::param::{Header, Path, Query};
use poem_openapi::payload::{EventStream, Json};
use poem_openapi::{ApiResponse, OpenApi, Tags};
use weft_api_types::{
    AnswerBody, AttemptView, Envelope, EventView, LogView, RunView, StartRunBody, StepView,
};
use weft_engine::RunFilter;
use weft_engine::{Engine, PageRequest, StartRunRequest};
use weft_engine::{FeedSpec, Logs};
use weft_model::{RunId, RunStatus, StepKey};

#[derive(Tags)]
enum Tag {
    /// Start, watch and control workflow runs.
    WorkflowRuns,
}

#[derive(ApiResponse)]
enum Started {
    /// Started (or, with a reused `Idempotency-Key`, the existing run).
    #[oai(status = 201)]
    Created(Json<Envelope<RunView>>, #[oai(header = "Location")] String),
}

#[derive(ApiResponse)]
enum LogsResponse {
    /// A page of log lines, or a live stream with `Accept: text/event-stream`.
    #[oai(status = 200)]
    Page(Json<Envelope<Vec<LogView>>>),
    /// Live log lines; event ids are sequence numbers (resume with `Last-Event-ID`).
    #[oai(status = 200, content_type = "text/event-stream")]
    Stream(EventStream<futures::stream::BoxStream<'static, LogView>>),
}

/// Run endpoints.
pub struct RunsApi {
    /// The engine.
    pub engine: Engine,
}

#[OpenApi]
impl RunsApi {
    /// Starts a run of a template. The same `Idempotency-Key` returns the
    /// same run; a key is 1 to 255 printable ASCII characters (else 400
    /// `INVALID_IDEMPOTENCY_KEY`).
    #[oai(
        path = "/workflow-runs",
        method = "post",
        tag = "Tag::WorkflowRuns",
        operation_id = "startRun"
    )]
    async fn start(
        &self,
        auth: BearerAuth,
        #[oai(name = "Idempotency-Key")] key: Header<Option<String>>,
        body: Json<StartRunBody>,
    ) -> ApiResult<Started> {
        if let Some(k) = &key.0 {
            check_idempotency_key(k)?;
        }
        let req = StartRunRequest {
            template: body.0.template.into(),
            inputs: body.0.inputs.or_default().into(),
            idempotency_key: key.0,
        };
        let run = self.engine.start_run(&auth.0, req).await?;
        let location = format!("/api/v1/workflow-runs/{}", run.run_id);
        Ok(Started::Created(ok(run.into()), location))
    }

    /// Lists runs, newest first, filtered by status, template and creation time.
    #[oai(
        path = "/workflow-runs",
        method = "get",
        tag = "Tag::WorkflowRuns",
        operation_id = "listRuns"
    )]
    async fn list(
        &self,
        auth: BearerAuth,
        status: Query<Option<RunStatus>>,
        template: Query<Option<String>>,
        #[oai(name = "createdAfter")] created_after: Query<Option<i64>>,
        #[oai(name = "createdBefore")] created_before: Query<Option<i64>>,
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
    ) -> ApiResult<Json<Envelope<Vec<RunView>>>> {
        let template_id = match template.0 {
            Some(t) => Some(self.engine.template(&auth.0, &t).await?.template_id),
            None => None,
        };
        let filter = RunFilter {
            status: status.0,
            template_id,
            created_after: created_after.0,
            created_before: created_before.0,
            page: page.0,
            page_size: page_size.0,
        };
        let p = self.engine.list_runs(&auth.0, &filter).await?;
        Ok(envelope::page(
            p.runs.into_iter().map(Into::into).collect(),
            filter.page,
            filter.page_size,
            p.total,
        ))
    }

    /// One run.
    #[oai(
        path = "/workflow-runs/:id",
        method = "get",
        tag = "Tag::WorkflowRuns",
        operation_id = "getRun"
    )]
    async fn get(&self, auth: BearerAuth, id: Path<String>) -> ApiResult<Json<Envelope<RunView>>> {
        let id: RunId = path_id(&id, "run")?;
        Ok(ok(self.engine.run(&auth.0, &id).await?.into()))
    }

    /// Pauses a run: no new steps start; in-flight ones finish.
    #[oai(
        path = "/workflow-runs/:id/pause",
        method = "post",
        tag = "Tag::WorkflowRuns",
        operation_id = "pauseRun"
    )]
    async fn pause(
        &self,
        auth: BearerAuth,
        id: Path<String>,
    ) -> ApiResult<Json<Envelope<RunView>>> {
        let id: RunId = path_id(&id, "run")?;
        self.engine.pause_run(&auth.0, &id).await?;
        Ok(ok(self.engine.run(&auth.0, &id).await?.into()))
    }

    /// Resumes a paused run.
    #[oai(
        path = "/workflow-runs/:id/resume",
        method = "post",
        tag = "Tag::WorkflowRuns",
        operation_id = "resumeRun"
    )]
    async fn resume(
        &self,
        auth: BearerAuth,
        id: Path<String>,
    ) -> ApiResult<Json<Envelope<RunView>>> {
        let id: RunId = path_id(&id, "run")?;
        self.engine.resume_run(&auth.0, &id).await?;
        Ok(ok(self.engine.run(&auth.0, &id).await?.into()))
    }

    /// Cancels a run; in-flight plugin code is stopped.
    #[oai(
        path = "/workflow-runs/:id/cancel",
        method = "post",
        tag = "Tag::WorkflowRuns",
        operation_id = "cancelRun"
    )]
    async fn cancel(
        &self,
        auth: BearerAuth,
        id: Path<String>,
    ) -> ApiResult<Json<Envelope<RunView>>> {
        let id: RunId = path_id(&id, "run")?;
        self.engine.cancel_run(&auth.0, &id).await?;
        Ok(ok(self.engine.run(&auth.0, &id).await?.into()))
    }

    /// Answers a step's input request.
    #[oai(
        path = "/workflow-runs/:id/input",
        method = "post",
        tag = "Tag::WorkflowRuns",
        operation_id = "answerRunInput"
    )]
    async fn input(
        &self,
        auth: BearerAuth,
        id: Path<String>,
        body: Json<AnswerBody>,
    ) -> ApiResult<Json<Envelope<RunView>>> {
        let id: RunId = path_id(&id, "run")?;
        let step: StepKey = path_id(&body.0.step_id, "step")?;
        self.engine
            .answer(&auth.0, &id, &step, body.0.values)
            .await?;
        Ok(ok(self.engine.run(&auth.0, &id).await?.into()))
    }

    /// A page of a run's steps (and `forEach` items, `id[i]`), in key order.
    #[oai(
        path = "/workflow-runs/:id/steps",
        method = "get",
        tag = "Tag::WorkflowRuns",
        operation_id = "listRunSteps"
    )]
    async fn steps(
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
            default = "max_page_size",
            validator(minimum(value = "1"), maximum(value = "100"))
        )]
        page_size: Query<u32>,
    ) -> ApiResult<Json<Envelope<Vec<StepView>>>> {
        let id: RunId = path_id(&id, "run")?;
        let req = PageRequest::new(page.0, page_size.0);
        let p = self.engine.list_steps(&auth.0, &id, req).await?;
        Ok(envelope::paged(p, req, Into::into))
    }

    /// One step of a run, with its latest attempt.
    #[oai(
        path = "/workflow-runs/:id/steps/:step_id",
        method = "get",
        tag = "Tag::WorkflowRuns",
        operation_id = "getRunStep"
    )]
    async fn step(
        &self,
        auth: BearerAuth,
        id: Path<String>,
        step_id: Path<String>,
    ) -> ApiResult<Json<Envelope<StepView>>> {
        let id: RunId = path_id(&id, "run")?;
        let step_id: StepKey = path_id(&step_id, "step")?;
        Ok(ok(self.engine.step(&auth.0, &id, &step_id).await?.into()))
    }

    /// A page of a step's attempts, oldest first.
    #[oai(
        path = "/workflow-runs/:id/steps/:step_id/attempts",
        method = "get",
        tag = "Tag::WorkflowRuns",
        operation_id = "listStepAttempts"
    )]
    async fn attempts(
        &self,
        auth: BearerAuth,
        id: Path<String>,
        step_id: Path<String>,
        #[oai(
            default = "default_page",
            validator(minimum(value = "1"), maximum(value = "4294967295"))
        )]
        page: Query<u32>,
        #[oai(
            name = "pageSize",
            default = "max_page_size",
            validator(minimum(value = "1"), maximum(value = "100"))
        )]
        page_size: Query<u32>,
    ) -> ApiResult<Json<Envelope<Vec<AttemptView>>>> {
        let id: RunId = path_id(&id, "run")?;
        let step_id: StepKey = path_id(&step_id, "step")?;
        let req = PageRequest::new(page.0, page_size.0);
        let p = self
            .engine
            .list_step_attempts(&auth.0, &id, &step_id, req)
            .await?;
        Ok(envelope::paged(p, req, Into::into))
    }

    /// A step's log lines after `after` (a sequence number), or a live SSE
    /// stream with `Accept: text/event-stream` (resumable with `Last-Event-ID`).
    #[oai(
        path = "/workflow-runs/:id/steps/:step_id/logs",
        method = "get",
        tag = "Tag::WorkflowRuns",
        operation_id = "getStepLogs"
    )]
    async fn logs(
        &self,
        auth: BearerAuth,
        id: Path<String>,
        step_id: Path<String>,
        #[oai(
            default,
            validator(minimum(value = "0"), maximum(value = "9007199254740991"))
        )]
        after: Query<u64>,
        #[oai(
            default = "default_log_limit",
            validator(minimum(value = "1"), maximum(value = "1000"))
        )]
        limit: Query<u32>,
        #[oai(name = "Accept")] accept: Header<Option<String>>,
        #[oai(name = "Last-Event-ID")] last_event_id: Header<Option<String>>,
    ) -> ApiResult<LogsResponse> {
        let id: RunId = path_id(&id, "run")?;
        let step_id: StepKey = path_id(&step_id, "step")?;
        if !accept
            .0
            .as_deref()
            .is_some_and(|a| a.contains("text/event-stream"))
        {
            let lines = self
                .engine
                .step_logs(&auth.0, &id, &step_id, after.0, limit.0)
                .await?;
            return Ok(LogsResponse::Page(ok(lines
                .into_iter()
                .map(Into::into)
                .collect())));
        }
        let start = resume_after(last_event_id.0, after.0);
        let spec = FeedSpec {
            run_id: id,
            events_after: None,
            logs: Logs::Step {
                key: step_id,
                after: start,
            },
        };
        let stream = self
            .engine
            .feed(&auth.0, spec)
            .await?
            .filter_map(|item| std::future::ready(item.into_log().map(LogView::from)))
            .boxed();
        Ok(LogsResponse::Stream(EventStream::new(stream).to_event(
            |l: LogView| {
                poem::web::sse::Event::message(serde_json::to_string(&l).unwrap_or_default())
                    .id(l.seq.to_string())
                    .event_type("log")
            },
        )))
    }

    /// Live run events (status changes, step transitions) as SSE.
    #[oai(
        path = "/workflow-runs/:id/events",
        method = "get",
        tag = "Tag::WorkflowRuns",
        operation_id = "listRunEvents"
    )]
    async fn events(
        &self,
        auth: BearerAuth,
        id: Path<String>,
        #[oai(name = "Last-Event-ID")] last_event_id: Header<Option<String>>,
    ) -> ApiResult<EventStream<futures::stream::BoxStream<'static, EventView>>> {
        let id: RunId = path_id(&id, "run")?;
        let start = resume_after(last_event_id.0, 0);
        let spec = FeedSpec {
            run_id: id,
            events_after: Some(start),
            logs: Logs::None,
        };
        let stream = self
            .engine
            .feed(&auth.0, spec)
            .await?
            .filter_map(|item| std::future::ready(item.into_event().map(EventView::from)))
            .boxed();
        Ok(EventStream::new(stream).to_event(|e: EventView| {
            poem::web::sse::Event::message(serde_json::to_string(&e).unwrap_or_default())
                .id(e.seq.to_string())
                .event_type(e.kind.as_str())
        }))
    }
}

/// Longest `Idempotency-Key` accepted: keys are stored with the run and
/// looked up on every retry, so an unbounded one is unbounded storage.
pub const MAX_IDEMPOTENCY_KEY: usize = 255;

/// 1 to [`MAX_IDEMPOTENCY_KEY`] bytes of printable ASCII (space to `~`).
fn check_idempotency_key(key: &str) -> ApiResult<()> {
    let printable = key.bytes().all(|b| (b' '..=b'~').contains(&b));
    if key.is_empty() || key.len() > MAX_IDEMPOTENCY_KEY || !printable {
        return Err(ApiError::BadRequest(Json(envelope::error_body(
            "INVALID_IDEMPOTENCY_KEY",
            format!(
                "Idempotency-Key must be 1 to {MAX_IDEMPOTENCY_KEY} printable ASCII characters (got {} bytes)",
                key.len()
            ),
        ))));
    }
    Ok(())
}

/// Where a resumed SSE stream starts: after the `Last-Event-ID` a
/// reconnecting client sends back (the sequence number of the last item it
/// saw), else after `otherwise`. An id that is not a number was not ours,
/// so it is ignored rather than refused.
fn resume_after(last_event_id: Option<String>, otherwise: u64) -> u64 {
    last_event_id
        .and_then(|s| s.trim().parse::<u64>().ok())
        .unwrap_or(otherwise)
}

/// Page number when none is given.
pub(super) fn default_page() -> u32 {
    1
}

/// Page size when none is given.
pub(super) fn default_page_size() -> u32 {
    20
}

/// Lists a client usually wants whole (a run's steps, a step's attempts)
/// come in pages of the largest size unless asked otherwise.
fn max_page_size() -> u32 {
    weft_engine::MAX_PAGE_SIZE
}

fn default_log_limit() -> u32 {
    100
}

#[cfg(test)]
mod tests {
    use super::check_idempotency_key;

    #[test]
    fn idempotency_keys_are_short_printable_ascii() {
        assert!(check_idempotency_key("order-42 retry#1").is_ok());
        assert!(check_idempotency_key(&"k".repeat(255)).is_ok());
        assert!(check_idempotency_key(&"k".repeat(256)).is_err());
        assert!(check_idempotency_key("").is_err());
        assert!(check_idempotency_key("tab\there").is_err());
        assert!(check_idempotency_key("caf\u{e9}").is_err());
    }
}
