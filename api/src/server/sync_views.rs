//! Views of connectors, connections and jobs, built from the engine's
//! entries, and the requests' conversion into the engine's.

use super::envelope::ApiError;
use weft_api_types::ValidationError;
use weft_api_types::rfc3339_ms;
use weft_api_types::sync::*;
use weft_engine::{
    CatalogDiff, CheckReport, ConnectionEntry, ConnectionRequest, MASK, PluginEntry, SyncJobEntry,
    SyncJobRequest, SyncJobRun,
};
use weft_model::template::ScheduleSpec;
use weft_model::{
    Catalog, Checkpoint, ConnectionId, ConnectorRole, StreamSelection, StreamTotals, SyncState,
};

fn problem(pointer: &str, code: &str, message: String) -> ValidationError {
    ValidationError {
        pointer: pointer.to_owned(),
        code: code.to_owned(),
        message,
    }
}

/// A connection body as the engine's request.
pub fn connection_request(b: ConnectionBody) -> Result<ConnectionRequest, ApiError> {
    let version = match b.version.0 {
        None => None,
        Some(v) => Some(semver::VersionReq::parse(&v).map_err(|e| {
            ApiError::validation(
                "INVALID_CONNECTION",
                "invalid connection",
                vec![problem("/version", "INVALID_VERSION", e.to_string())],
            )
        })?),
    };
    Ok(ConnectionRequest {
        name: b.name.0,
        role: b.role,
        connector: b.connector.0,
        version,
        config: b.config.into(),
    })
}

fn connection_id(raw: &str, pointer: &str) -> Result<ConnectionId, ValidationError> {
    raw.parse().map_err(|_| {
        problem(
            pointer,
            "UNKNOWN_CONNECTION",
            format!("no connection {raw:?}"),
        )
    })
}

/// A job body as the engine's request.
pub fn job_request(b: SyncJobBody) -> Result<SyncJobRequest, ApiError> {
    let mut problems = Vec::new();
    let source = connection_id(&b.source, "/source").map_err(|p| problems.push(p));
    let destination = connection_id(&b.destination, "/destination").map_err(|p| problems.push(p));
    let (Ok(source), Ok(destination)) = (source, destination) else {
        return Err(ApiError::validation("INVALID_JOB", "invalid job", problems));
    };
    let texts = |v: Option<Vec<weft_api_types::Text>>| {
        v.map(|v| v.into_iter().map(String::from).collect::<Vec<_>>())
    };
    Ok(SyncJobRequest {
        name: b.name.0,
        source,
        destination,
        streams: b
            .streams_config
            .into_iter()
            .map(|s| StreamSelection {
                name: s.name.0,
                namespace: s.namespace.0.map(String::from),
                fields: texts(s.fields.0),
                sync_mode: s.sync_mode,
                cursor_field: s.cursor_field.0.map(String::from),
                primary_key: texts(s.primary_key.0),
                write_mode: s.write_mode,
            })
            .collect(),
        schedule: b.schedule.0.map(|s| ScheduleSpec {
            cron: s.cron.0,
            timezone: s.timezone.0.map(String::from),
        }),
        active: b.active.0.unwrap_or(true),
    })
}

/// A state body as checkpoints.
pub fn checkpoints(b: SyncStateBody) -> Vec<Checkpoint> {
    b.streams
        .into_iter()
        .map(|s| Checkpoint {
            stream: s.stream.0.map(String::from),
            state: s.state,
        })
        .collect()
}

fn last_run(r: Option<(i64, weft_model::RunStatus)>) -> Option<LastRunView> {
    r.map(|(at, status)| LastRunView {
        at: rfc3339_ms(at),
        status,
    })
}

/// The connector types among installed plugins.
pub fn connector_types(mut plugins: Vec<PluginEntry>) -> Vec<ConnectorTypeView> {
    plugins.retain(|p| p.manifest.roles.source || p.manifest.roles.destination);
    plugins.sort_by(|a, b| {
        a.manifest
            .name
            .cmp(&b.manifest.name)
            .then(b.manifest.version.cmp(&a.manifest.version))
    });
    let mut out: Vec<ConnectorTypeView> = Vec::new();
    for p in plugins {
        let roles = roles(&p);
        let version = ConnectorVersionView {
            version: p.manifest.version.to_string(),
            plugin_id: p.digest.to_string(),
            enabled: p.enabled,
            roles,
        };
        match out.last_mut() {
            Some(t) if t.name == p.manifest.name => t.versions.push(version),
            _ => out.push(ConnectorTypeView {
                name: p.manifest.name.clone(),
                description: p.manifest.description.clone(),
                versions: vec![version],
            }),
        }
    }
    out
}

fn roles(p: &PluginEntry) -> Vec<ConnectorRole> {
    let mut roles = Vec::new();
    if p.manifest.roles.source {
        roles.push(ConnectorRole::Source);
    }
    if p.manifest.roles.destination {
        roles.push(ConnectorRole::Destination);
    }
    roles
}

/// A connector version's specs.
pub fn connector_spec(p: &PluginEntry) -> ConnectorSpecView {
    ConnectorSpecView {
        name: p.manifest.name.clone(),
        version: p.manifest.version.to_string(),
        source: p.manifest.source.as_ref().map(|s| ConnectorRoleSpecView {
            config_schema: s.config_schema.clone(),
            secret_fields: s.secret_fields.clone(),
            formats: s.formats.iter().map(ToString::to_string).collect(),
            write_modes: Vec::new(),
            delivery: None,
        }),
        destination: p
            .manifest
            .destination
            .as_ref()
            .map(|d| ConnectorRoleSpecView {
                config_schema: d.config_schema.clone(),
                secret_fields: d.secret_fields.clone(),
                formats: d.formats.iter().map(ToString::to_string).collect(),
                write_modes: d.write_modes.clone(),
                delivery: Some(d.delivery),
            }),
    }
}

/// The view of a connection: secrets masked.
pub fn connection_view(e: ConnectionEntry) -> ConnectionView {
    let c = e.connection;
    let mut config = c.config;
    if let Some(map) = config.as_object_mut() {
        for field in &e.secrets_set {
            map.insert(field.clone(), serde_json::Value::String(MASK.into()));
        }
    }
    ConnectionView {
        id: c.connection_id.to_string(),
        name: c.name,
        role: c.role,
        connector: c.connector,
        version: c.version.map(|v| v.to_string()),
        config,
        secrets_set: e.secrets_set,
        jobs: e
            .jobs
            .into_iter()
            .map(|j| ConnectionJobView {
                id: j.job_id.to_string(),
                name: j.name,
                last_run: last_run(j.last_run),
            })
            .collect(),
        created_at: rfc3339_ms(c.created_at),
        updated_at: rfc3339_ms(c.updated_at),
    }
}

/// The view of a check.
pub fn check_view(r: CheckReport) -> ConnectionCheckView {
    ConnectionCheckView {
        ok: r.failure.is_none(),
        failure: r.failure,
        elapsed_ms: r.elapsed_ms,
        checked_at: rfc3339_ms(r.checked_at),
    }
}

/// The view of a catalog.
pub fn catalog_view(c: Catalog) -> CatalogView {
    CatalogView {
        streams: c
            .streams
            .into_iter()
            .map(|s| StreamView {
                name: s.name,
                namespace: s.namespace,
                json_schema: s.json_schema,
                sync_modes: s.sync_modes,
                cursor_candidates: s.cursor_candidates,
                primary_key_candidates: s.primary_key_candidates,
                estimated_rows: s.estimated_rows,
            })
            .collect(),
    }
}

fn totals_view(s: StreamTotals) -> StreamTotalsView {
    StreamTotalsView {
        stream: s.stream,
        rows: s.rows,
        bytes: s.bytes,
        status: s.status,
        estimated_rows: s.estimated_rows,
    }
}

/// The view of a job.
pub fn job_view(e: SyncJobEntry) -> SyncJobView {
    let j = e.job;
    SyncJobView {
        id: j.job_id.to_string(),
        name: j.name,
        source: j.source.to_string(),
        destination: j.destination.to_string(),
        streams_config: j
            .streams
            .into_iter()
            .map(|s| ConfiguredStreamView {
                name: s.name,
                namespace: s.namespace,
                fields: s.fields,
                sync_mode: s.sync_mode,
                cursor_field: s.cursor_field,
                primary_key: s.primary_key,
                write_mode: s.write_mode,
                json_schema: s.json_schema,
            })
            .collect(),
        schedule: j.schedule.map(|s| ScheduleBody {
            cron: s.cron.into(),
            timezone: s.timezone.map(Into::into).into(),
        }),
        active: j.active,
        template_id: j.template_id.to_string(),
        state_seq: e.state_seq,
        last_run: last_run(e.last_run),
        running: e.running.map(|l| LiveSyncView {
            run_id: l.run_id.map(|r| r.to_string()),
            started_at: rfc3339_ms(l.started_at),
            rows: l.rows,
            bytes: l.bytes,
            rows_per_second: l.rows_per_second,
            seq: l.seq,
            eta_ms: l.eta_ms,
            streams: l.streams.into_iter().map(totals_view).collect(),
        }),
        created_at: rfc3339_ms(j.created_at),
        updated_at: rfc3339_ms(j.updated_at),
    }
}

/// The view of one sync in a job's history.
pub fn job_run_view(r: SyncJobRun) -> SyncJobRunView {
    let duration_ms = match (r.run.started_at, r.run.ended_at) {
        (Some(s), Some(e)) => Some(e - s),
        _ => None,
    };
    let output = r.output.unwrap_or_default();
    let done = output.job.is_some();
    SyncJobRunView {
        duration_ms,
        rows: done.then_some(output.rows),
        bytes: done.then_some(output.bytes),
        streams: output.streams.into_iter().map(totals_view).collect(),
        run: r.run.into(),
    }
}

/// The view of a job's state.
pub fn state_view(s: SyncState) -> SyncStateView {
    SyncStateView {
        seq: s.seq,
        streams: s
            .state
            .into_iter()
            .map(|c| StreamStateBody {
                stream: c.stream.map(Into::into).into(),
                state: c.state,
            })
            .collect(),
        updated_at: (s.updated_at > 0).then(|| rfc3339_ms(s.updated_at)),
    }
}

/// The view of a catalog diff.
pub fn diff_view(d: CatalogDiff) -> CatalogDiffView {
    CatalogDiffView {
        added_streams: d.added_streams,
        removed_streams: d.removed_streams,
        changed_streams: d
            .changed_streams
            .into_iter()
            .map(|c| StreamDiffView {
                stream: c.stream,
                added_fields: c.added_fields,
                removed_fields: c.removed_fields,
            })
            .collect(),
    }
}
