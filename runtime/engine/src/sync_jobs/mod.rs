//! Sync jobs: a source, a destination, the streams between them and an
//! optional schedule. A job owns a template (one `weft/sync` step, plus
//! the schedule while the job is active), so each sync is a workflow run.

use crate::config::VALUE_LIMITS;
use crate::sync_step::{BUILTIN_PLUGIN, SYNC_STEP};
use crate::{Engine, EngineError, Operation, Page, PageRequest, StartRunRequest};
use serde_json::{Value, json};
use weft_model::template::ScheduleSpec;
use weft_model::{
    Checkpoint, ConfigProblem, ConfigProblemCode, ConfiguredStream, ConnectionId, ConnectorRole,
    LiveSync, Principal, RunStatus, StreamSelection, SyncJob, SyncJobId, SyncOutput, SyncState,
    TemplateId, WorkflowRun, check_json, sync_job_template_name,
};
use weft_store::RunFilter;

mod streams;

pub use streams::{CatalogDiff, StreamDiff};
pub(crate) use streams::{check_streams_exist, configure_streams, diff};

/// What a job request says: a new job or the whole of an existing one.
#[derive(Debug, Clone)]
pub struct SyncJobRequest {
    /// A name for people; unique.
    pub name: String,
    /// The source connection.
    pub source: ConnectionId,
    /// The destination connection.
    pub destination: ConnectionId,
    /// The streams to sync and how.
    pub streams: Vec<StreamSelection>,
    /// When syncs start on their own.
    pub schedule: Option<ScheduleSpec>,
    /// Whether the schedule fires.
    pub active: bool,
}

/// A job with where its syncs stand.
#[derive(Debug, Clone)]
pub struct SyncJobEntry {
    /// The job.
    pub job: SyncJob,
    /// The seq of its last destination commit.
    pub state_seq: u64,
    /// Its newest run: (start or creation time, status).
    pub last_run: Option<(i64, RunStatus)>,
    /// The sync running now, with live counters.
    pub running: Option<LiveSync>,
}

/// One sync of a job's history.
#[derive(Debug, Clone)]
pub struct SyncJobRun {
    /// The run.
    pub run: WorkflowRun,
    /// What its sync step output, once it succeeded.
    pub output: Option<SyncOutput>,
}

impl Engine {
    /// Creates a job: its streams are checked against the source's catalog
    /// (one `discover`) and the destination's spec, then the job and its
    /// template are stored.
    pub async fn create_sync_job(
        &self,
        caller: &Principal,
        req: SyncJobRequest,
    ) -> Result<SyncJobEntry, EngineError> {
        self.authorize(caller, Operation::ManageJobs)?;
        let job_id = SyncJobId::generate();
        let streams = self.configure_job(&req).await?;
        let template_id = TemplateId::generate();
        let body = job_template(&job_id, &req);
        self.check_job_template(&body)?;
        self.shared
            .store
            .create_template(&template_id, &sync_job_template_name(&job_id), &body)
            .await?;
        let now = crate::now_ms();
        let job = SyncJob {
            job_id,
            name: req.name,
            source: req.source,
            destination: req.destination,
            streams,
            schedule: req.schedule,
            active: req.active,
            template_id: template_id.clone(),
            created_at: now,
            updated_at: now,
        };
        if let Err(e) = self.shared.store.create_sync_job(&job).await {
            let _ = self.shared.store.delete_template(&template_id).await;
            return Err(e.into());
        }
        self.job_entry(job).await
    }

    /// Replaces a job's definition. The state stays: a stream whose
    /// state should restart is reset with [`Engine::reset_sync_state`].
    pub async fn update_sync_job(
        &self,
        caller: &Principal,
        id: &SyncJobId,
        req: SyncJobRequest,
    ) -> Result<SyncJobEntry, EngineError> {
        self.authorize(caller, Operation::ManageJobs)?;
        let stored = self.shared.store.sync_job(id).await?;
        let streams = self.configure_job(&req).await?;
        let job = SyncJob {
            name: req.name.clone(),
            source: req.source.clone(),
            destination: req.destination.clone(),
            streams,
            schedule: req.schedule.clone(),
            active: req.active,
            updated_at: crate::now_ms(),
            ..stored
        };
        self.write_job(job).await
    }

    /// Turns a job's schedule on or off.
    pub async fn activate_sync_job(
        &self,
        caller: &Principal,
        id: &SyncJobId,
        active: bool,
    ) -> Result<SyncJobEntry, EngineError> {
        self.authorize(caller, Operation::ManageJobs)?;
        let stored = self.shared.store.sync_job(id).await?;
        let job = SyncJob {
            active,
            updated_at: crate::now_ms(),
            ..stored
        };
        self.write_job(job).await
    }

    async fn write_job(&self, job: SyncJob) -> Result<SyncJobEntry, EngineError> {
        let req = SyncJobRequest {
            name: job.name.clone(),
            source: job.source.clone(),
            destination: job.destination.clone(),
            streams: Vec::new(),
            schedule: job.schedule.clone(),
            active: job.active,
        };
        let body = job_template(&job.job_id, &req);
        self.check_job_template(&body)?;
        let head = self.shared.store.template(&job.template_id).await?;
        if head.body != body {
            self.shared
                .store
                .update_template(&job.template_id, &body, head.revision)
                .await?;
        }
        self.shared.store.update_sync_job(&job).await?;
        self.job_entry(job).await
    }

    /// A job.
    pub async fn sync_job(
        &self,
        caller: &Principal,
        id: &SyncJobId,
    ) -> Result<SyncJobEntry, EngineError> {
        self.authorize(caller, Operation::ReadJobs)?;
        let job = self.shared.store.sync_job(id).await?;
        self.job_entry(job).await
    }

    /// Jobs, optionally only those reading from `source` or writing to `destination`.
    pub async fn sync_jobs(
        &self,
        caller: &Principal,
        source: Option<&ConnectionId>,
        destination: Option<&ConnectionId>,
    ) -> Result<Vec<SyncJobEntry>, EngineError> {
        self.authorize(caller, Operation::ReadJobs)?;
        let mut out = Vec::new();
        for job in self.shared.store.sync_jobs().await? {
            if source.is_some_and(|s| *s != job.source)
                || destination.is_some_and(|d| *d != job.destination)
            {
                continue;
            }
            out.push(self.job_entry(job).await?);
        }
        Ok(out)
    }

    /// Deletes a job, its state and its template (not while it syncs).
    pub async fn delete_sync_job(
        &self,
        caller: &Principal,
        id: &SyncJobId,
    ) -> Result<(), EngineError> {
        self.authorize(caller, Operation::ManageJobs)?;
        let job = self.shared.store.sync_job(id).await?;
        if let Some(run) = self.unfinished_sync(&job).await? {
            return Err(EngineError::Conflict(format!(
                "job {id} is syncing (run {run}); cancel it first"
            )));
        }
        self.shared.store.delete_sync_job(id).await?;
        match self.shared.store.delete_template(&job.template_id).await {
            Ok(()) | Err(weft_store::StoreError::NotFound(_)) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Starts a sync now; 409 while one of the job is unfinished.
    pub async fn sync_now(
        &self,
        caller: &Principal,
        id: &SyncJobId,
    ) -> Result<WorkflowRun, EngineError> {
        self.authorize(caller, Operation::StartRun)?;
        let _one_at_a_time = self.shared.sync_starts.lock().await;
        let job = self.shared.store.sync_job(id).await?;
        if let Some(run) = self.unfinished_sync(&job).await? {
            return Err(EngineError::Conflict(format!(
                "job {id} is already syncing (run {run})"
            )));
        }
        self.start_run(
            caller,
            StartRunRequest {
                template: job.template_id.to_string(),
                inputs: json!({}),
                idempotency_key: None,
            },
        )
        .await
    }

    /// Cancels a job's unfinished sync and returns its run; 409 when none runs.
    pub async fn cancel_sync(
        &self,
        caller: &Principal,
        id: &SyncJobId,
    ) -> Result<weft_model::RunId, EngineError> {
        self.authorize(caller, Operation::ControlRun)?;
        let job = self.shared.store.sync_job(id).await?;
        let Some(run) = self.unfinished_sync(&job).await? else {
            return Err(EngineError::Conflict(format!("job {id} is not syncing")));
        };
        self.cancel_run(caller, &run).await?;
        Ok(run)
    }

    /// A job's syncs, newest first.
    pub async fn sync_job_runs(
        &self,
        caller: &Principal,
        id: &SyncJobId,
        page: PageRequest,
    ) -> Result<Page<SyncJobRun>, EngineError> {
        self.authorize(caller, Operation::ReadRuns)?;
        let job = self.shared.store.sync_job(id).await?;
        let runs = self
            .shared
            .store
            .list_runs(&RunFilter {
                template_id: Some(job.template_id),
                page: page.page,
                page_size: page.page_size,
                ..Default::default()
            })
            .await?;
        Ok(Page {
            items: runs
                .runs
                .into_iter()
                .map(|run| {
                    let output = run
                        .outputs
                        .as_ref()
                        .and_then(|o| o.get(SYNC_STEP))
                        .and_then(|o| serde_json::from_value(o.clone()).ok());
                    SyncJobRun { run, output }
                })
                .collect(),
            total: runs.total,
        })
    }

    /// A job's state as of its last destination commit.
    pub async fn sync_state(
        &self,
        caller: &Principal,
        id: &SyncJobId,
    ) -> Result<SyncState, EngineError> {
        self.authorize(caller, Operation::ReadJobs)?;
        self.shared.store.sync_job(id).await?;
        Ok(self.shared.store.sync_state(id).await?)
    }

    /// Replaces a job's per-stream state (423 while it syncs). The seq
    /// stays, so the destination's marker is not adopted over the edit.
    pub async fn replace_sync_state(
        &self,
        caller: &Principal,
        id: &SyncJobId,
        state: Vec<Checkpoint>,
    ) -> Result<SyncState, EngineError> {
        self.authorize(caller, Operation::ManageJobs)?;
        let job = self.shared.store.sync_job(id).await?;
        if let Some(run) = self.unfinished_sync(&job).await? {
            return Err(EngineError::Locked(format!(
                "job {id} is syncing (run {run}); its state changes only between syncs"
            )));
        }
        for c in &state {
            check_json(&c.state, VALUE_LIMITS).map_err(|error| EngineError::ValueLimit {
                what: "state",
                error,
            })?;
        }
        let streams: Vec<&str> = job.streams.iter().map(|s| s.name.as_str()).collect();
        let problems: Vec<ConfigProblem> = state
            .iter()
            .enumerate()
            .filter_map(|(i, c)| {
                let name = c.stream.as_deref()?;
                (!streams.contains(&name)).then(|| {
                    ConfigProblem::new(
                        format!("/{i}/stream"),
                        ConfigProblemCode::UnknownStream,
                        format!("the job has no stream {name:?}; its streams: {streams:?}"),
                    )
                })
            })
            .collect();
        if !problems.is_empty() {
            return Err(EngineError::InvalidJob(problems));
        }
        let current = self.shared.store.sync_state(id).await?;
        let next = SyncState {
            seq: current.seq,
            state,
            updated_at: crate::now_ms(),
        };
        self.shared.store.replace_sync_state(id, &next).await?;
        Ok(next)
    }

    /// Forgets a job's state: the next sync reads every stream from the start.
    pub async fn reset_sync_state(
        &self,
        caller: &Principal,
        id: &SyncJobId,
    ) -> Result<SyncState, EngineError> {
        self.replace_sync_state(caller, id, Vec::new()).await
    }

    /// Streams and columns added or removed at the source since the job
    /// was configured.
    pub async fn catalog_diff(
        &self,
        caller: &Principal,
        id: &SyncJobId,
    ) -> Result<CatalogDiff, EngineError> {
        self.authorize(caller, Operation::ReadJobs)?;
        let job = self.shared.store.sync_job(id).await?;
        let (entry, _, config) = self.shared.open_connection(&job.source).await?;
        let catalog = self.shared.discover_with(&entry, config).await?;
        Ok(diff(&catalog, &job.streams))
    }

    async fn job_entry(&self, job: SyncJob) -> Result<SyncJobEntry, EngineError> {
        let state_seq = self.shared.store.sync_state(&job.job_id).await?.seq;
        let last_run = self.last_run_of(&job.template_id).await?;
        let running = self.shared.live_syncs.get(&job.job_id);
        Ok(SyncJobEntry {
            job,
            state_seq,
            last_run,
            running,
        })
    }

    /// The job's unfinished run, if any (pending, running, paused or waiting).
    async fn unfinished_sync(
        &self,
        job: &SyncJob,
    ) -> Result<Option<weft_model::RunId>, EngineError> {
        if let Some(run) = self
            .shared
            .live_syncs
            .get(&job.job_id)
            .and_then(|l| l.run_id)
        {
            return Ok(Some(run));
        }
        let newest = self
            .shared
            .store
            .list_runs(&RunFilter {
                template_id: Some(job.template_id.clone()),
                page: 1,
                page_size: 5,
                ..Default::default()
            })
            .await?;
        Ok(newest
            .runs
            .into_iter()
            .find(|r| !r.status.is_terminal())
            .map(|r| r.run_id))
    }

    fn check_job_template(&self, body: &Value) -> Result<(), EngineError> {
        let template = crate::templates::parse_template(body)?;
        weft_model::template::validate_template_with(
            &template,
            &self.registry,
            &self.shared.config.templates,
        )
        .map(drop)
        .map_err(|ps| {
            EngineError::InvalidJob(
                ps.into_iter()
                    .map(|p| {
                        let code = if p.pointer.starts_with("/schedule") {
                            ConfigProblemCode::InvalidSchedule
                        } else {
                            ConfigProblemCode::InvalidConfig
                        };
                        ConfigProblem::new(p.pointer, code, p.message)
                    })
                    .collect(),
            )
        })
    }

    /// Checks the request against the connections, the source's catalog
    /// and the destination's spec, and returns the configured streams.
    async fn configure_job(
        &self,
        req: &SyncJobRequest,
    ) -> Result<Vec<ConfiguredStream>, EngineError> {
        let mut problems = Vec::new();
        if req.name.trim().is_empty() || req.name.len() > 128 {
            problems.push(ConfigProblem::new(
                "/name",
                ConfigProblemCode::InvalidName,
                "a job name is 1-128 characters",
            ));
        }
        let source = self
            .job_side(&req.source, ConnectorRole::Source, "/source")
            .await?;
        let destination = self
            .job_side(&req.destination, ConnectorRole::Destination, "/destination")
            .await?;
        let (source, destination) = match (source, destination) {
            (Ok(s), Ok(d)) => (s, d),
            (s, d) => {
                problems.extend(s.err());
                problems.extend(d.err());
                return Err(EngineError::InvalidJob(problems));
            }
        };
        let (src_entry, src_config) = source;
        let dst_spec = destination
            .0
            .manifest
            .destination
            .clone()
            .ok_or_else(|| EngineError::Internal("a destination lost its spec".into()))?;
        let catalog = self.shared.discover_with(&src_entry, src_config).await?;
        match configure_streams(&catalog, &dst_spec, &req.streams) {
            Ok(streams) if problems.is_empty() => Ok(streams),
            Ok(_) => Err(EngineError::InvalidJob(problems)),
            Err(more) => {
                problems.extend(more);
                Err(EngineError::InvalidJob(problems))
            }
        }
    }

    /// A job's connection of one role, or the problem with it.
    async fn job_side(
        &self,
        id: &ConnectionId,
        role: ConnectorRole,
        pointer: &str,
    ) -> Result<Result<(crate::PluginEntry, Value), ConfigProblem>, EngineError> {
        match self.shared.open_connection(id).await {
            Ok((_, c, _)) if c.role != role => Ok(Err(ConfigProblem::new(
                pointer,
                ConfigProblemCode::WrongRole,
                format!("connection {id} is a {}, not a {role}", c.role),
            ))),
            Ok((entry, _, config)) => Ok(Ok((entry, config))),
            Err(EngineError::Store(weft_store::StoreError::NotFound(_))) => {
                Ok(Err(ConfigProblem::new(
                    pointer,
                    ConfigProblemCode::UnknownConnection,
                    format!("no connection {id}"),
                )))
            }
            Err(EngineError::InvalidConnection(ps)) => Ok(Err(ps.into_iter().next().map_or_else(
                || ConfigProblem::new(pointer, ConfigProblemCode::UnknownConnector, "unusable"),
                |p| ConfigProblem::new(pointer, p.code, p.message),
            ))),
            Err(e) => Err(e),
        }
    }
}

/// The template a job owns: its sync step, and its schedule while active.
fn job_template(job: &SyncJobId, req: &SyncJobRequest) -> Value {
    let mut body = json!({
        "name": sync_job_template_name(job),
        "description": format!("Syncs of job {:?}; managed through /jobs/{job}.", req.name),
        "steps": [{
            "id": SYNC_STEP,
            "uses": format!("{BUILTIN_PLUGIN}/{SYNC_STEP}"),
            "with": {"job": job},
        }],
    });
    if req.active
        && let Some(schedule) = &req.schedule
        && let Ok(s) = serde_json::to_value(schedule)
    {
        body["schedule"] = s;
    }
    body
}
