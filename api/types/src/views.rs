//! What the API returns: `XView` objects, built from the domain types.

use crate::rfc3339_ms;
use poem_openapi::Object;
use serde_json::Value;
use weft_model::{
    CapabilityGrants, EventKind, Failure, InputRequest, LogLevel, LogLine, LogSource,
    RequestedCapabilities, RunEvent, RunStatus, RunStep, StepAttempt, StepStatus, TemplateHead,
    TemplateRevision, WorkflowRun,
};

/// An installed plugin.
#[derive(Object, Debug, Clone, serde::Serialize, serde::Deserialize)]
#[oai(rename_all = "camelCase")]
#[serde(rename_all = "camelCase")]
pub struct PluginView {
    /// Content digest (`sha256:…`), the plugin's id.
    pub id: String,
    /// Name.
    pub name: String,
    /// Semantic version.
    pub version: String,
    /// Description.
    pub description: String,
    /// Whether new runs may use it.
    pub enabled: bool,
    /// Roles: step, source, destination.
    pub roles: Vec<String>,
    /// Step type names.
    pub step_types: Vec<String>,
    /// Requested capabilities.
    pub requested: CapabilitiesView,
    /// Granted capabilities.
    pub grants: CapabilitiesView,
    /// When it was installed.
    pub installed_at: String,
}

/// Capabilities a plugin requests, or an admin granted it.
#[derive(Object, Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
#[oai(rename_all = "camelCase")]
#[serde(rename_all = "camelCase")]
pub struct CapabilitiesView {
    /// Hosts it may reach (`example.com`, `*.example.com`, `host:port`).
    #[oai(default)]
    #[serde(default)]
    pub outbound_hosts: Vec<String>,
    /// Directories in its sandbox, by the path the plugin sees.
    #[oai(default)]
    #[serde(default)]
    pub directories: Vec<String>,
    /// Environment variable names passed through.
    #[oai(default)]
    #[serde(default)]
    pub env: Vec<String>,
    /// Secret names it may read.
    #[oai(default)]
    #[serde(default)]
    pub secrets: Vec<String>,
}

impl From<&RequestedCapabilities> for CapabilitiesView {
    fn from(r: &RequestedCapabilities) -> Self {
        Self {
            outbound_hosts: r.outbound_hosts.iter().map(ToString::to_string).collect(),
            directories: r.directories.clone(),
            env: r.env.clone(),
            secrets: r.secrets.clone(),
        }
    }
}

impl From<&CapabilityGrants> for CapabilitiesView {
    fn from(g: &CapabilityGrants) -> Self {
        Self {
            outbound_hosts: g.outbound_hosts.iter().map(ToString::to_string).collect(),
            directories: g.directories.iter().map(|d| d.guest_path.clone()).collect(),
            env: g.env.clone(),
            secrets: g.secrets.clone(),
        }
    }
}

/// A step type offered by an installed plugin.
#[derive(Object, Debug, Clone, serde::Serialize, serde::Deserialize)]
#[oai(rename_all = "camelCase")]
#[serde(rename_all = "camelCase")]
pub struct StepTypeView {
    /// `plugin/step-type`, e.g. `core/fibo`.
    #[oai(rename = "type")]
    #[serde(rename = "type")]
    pub ty: String,
    /// Plugin name.
    pub plugin: String,
    /// Plugin version.
    pub version: String,
    /// Plugin digest.
    pub plugin_id: String,
    /// Description.
    pub description: String,
    /// Input JSON Schema.
    pub input_schema: Value,
    /// Output JSON Schema.
    pub output_schema: Value,
    /// Whether the plugin is enabled.
    pub enabled: bool,
}

/// A workflow template (its latest revision).
#[derive(Object, Debug, Clone, serde::Serialize, serde::Deserialize)]
#[oai(rename_all = "camelCase")]
#[serde(rename_all = "camelCase")]
pub struct TemplateView {
    /// Id.
    pub id: String,
    /// Unique name.
    pub name: String,
    /// Latest revision.
    pub revision: u32,
    /// The template body.
    pub body: Value,
    /// Created.
    pub created_at: String,
    /// Last updated.
    pub updated_at: String,
}

impl From<TemplateHead> for TemplateView {
    fn from(t: TemplateHead) -> Self {
        Self {
            id: t.template_id.to_string(),
            name: t.name,
            revision: t.revision,
            body: t.body,
            created_at: rfc3339_ms(t.created_at),
            updated_at: rfc3339_ms(t.updated_at),
        }
    }
}

/// One revision of a template.
#[derive(Object, Debug, Clone, serde::Serialize, serde::Deserialize)]
#[oai(rename_all = "camelCase")]
#[serde(rename_all = "camelCase")]
pub struct TemplateRevisionView {
    /// Revision number.
    pub revision: u32,
    /// The body.
    pub body: Value,
    /// When it was written.
    pub created_at: String,
}

impl From<TemplateRevision> for TemplateRevisionView {
    fn from(r: TemplateRevision) -> Self {
        Self {
            revision: r.revision,
            body: r.body,
            created_at: rfc3339_ms(r.created_at),
        }
    }
}

/// Progress of a run.
#[derive(Object, Debug, Clone, serde::Serialize, serde::Deserialize)]
#[oai(rename_all = "camelCase")]
#[serde(rename_all = "camelCase")]
pub struct ProgressView {
    /// Finished steps.
    pub completed: u32,
    /// Known steps.
    pub total: u32,
    /// Steps running now.
    pub running: Vec<String>,
}

/// A workflow run.
#[derive(Object, Debug, Clone, serde::Serialize, serde::Deserialize)]
#[oai(rename_all = "camelCase")]
#[serde(rename_all = "camelCase")]
pub struct RunView {
    /// Run id.
    pub id: String,
    /// Where the run stands.
    pub status: RunStatus,
    /// Template name.
    pub template: String,
    /// Template id.
    pub template_id: String,
    /// Pinned template revision.
    pub revision: u32,
    /// Inputs.
    pub inputs: Value,
    /// Outputs by step id, once finished.
    #[oai(skip_serializing_if_is_none)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outputs: Option<Value>,
    /// The failure, if any.
    #[oai(skip_serializing_if_is_none)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<Failure>,
    /// Progress.
    pub progress: ProgressView,
    /// Created.
    pub created_at: String,
    /// Started.
    #[oai(skip_serializing_if_is_none)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<String>,
    /// Ended.
    #[oai(skip_serializing_if_is_none)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ended_at: Option<String>,
}

impl From<WorkflowRun> for RunView {
    fn from(r: WorkflowRun) -> Self {
        Self {
            id: r.run_id.to_string(),
            status: r.status,
            template: r.template_name,
            template_id: r.template_id.to_string(),
            revision: r.revision,
            inputs: r.inputs,
            outputs: r.outputs,
            error: r.error,
            progress: ProgressView {
                completed: r.progress.completed,
                total: r.progress.total,
                running: r.progress.running.into_iter().map(String::from).collect(),
            },
            created_at: rfc3339_ms(r.created_at),
            started_at: r.started_at.map(rfc3339_ms),
            ended_at: r.ended_at.map(rfc3339_ms),
        }
    }
}

/// One attempt of a step.
#[derive(Object, Debug, Clone, serde::Serialize, serde::Deserialize)]
#[oai(rename_all = "camelCase")]
#[serde(rename_all = "camelCase")]
pub struct AttemptView {
    /// Attempt number.
    pub attempt: u32,
    /// How it ended (or `RUNNING`).
    pub status: StepStatus,
    /// Started.
    pub started_at: String,
    /// Ended.
    #[oai(skip_serializing_if_is_none)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ended_at: Option<String>,
    /// Its error.
    #[oai(skip_serializing_if_is_none)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<Failure>,
}

/// A step (or `forEach` item) of a run.
#[derive(Object, Debug, Clone, serde::Serialize, serde::Deserialize)]
#[oai(rename_all = "camelCase")]
#[serde(rename_all = "camelCase")]
pub struct StepView {
    /// Step id, or `id[i]` for a `forEach` item.
    pub id: String,
    /// Status.
    pub status: StepStatus,
    /// Current attempt (0 before the first).
    pub attempt: u32,
    /// Evaluated input of the current attempt.
    #[oai(skip_serializing_if_is_none)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input: Option<Value>,
    /// Output once succeeded.
    #[oai(skip_serializing_if_is_none)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<Value>,
    /// Error once failed.
    #[oai(skip_serializing_if_is_none)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<Failure>,
    /// Pending input request.
    #[oai(skip_serializing_if_is_none)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_request: Option<InputRequest>,
    /// The latest attempt (earlier ones: `GET …/steps/{stepId}/attempts`).
    #[oai(skip_serializing_if_is_none)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_attempt: Option<AttemptView>,
    /// When the first attempt started.
    #[oai(skip_serializing_if_is_none)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<String>,
    /// Ended.
    #[oai(skip_serializing_if_is_none)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ended_at: Option<String>,
}

impl From<RunStep> for StepView {
    fn from(s: RunStep) -> Self {
        Self {
            id: s.key.to_string(),
            status: s.status,
            attempt: s.attempt,
            input: s.input,
            output: s.output,
            error: s.error,
            input_request: s.input_request,
            last_attempt: s.last_attempt.map(Into::into),
            started_at: s.first_started_at.map(rfc3339_ms),
            ended_at: s.ended_at.map(rfc3339_ms),
        }
    }
}

impl From<StepAttempt> for AttemptView {
    fn from(a: StepAttempt) -> Self {
        Self {
            attempt: a.attempt,
            status: a.status,
            started_at: rfc3339_ms(a.started_at),
            ended_at: a.ended_at.map(rfc3339_ms),
            error: a.error,
        }
    }
}

/// A log line.
#[derive(Object, Debug, Clone, serde::Serialize, serde::Deserialize)]
#[oai(rename_all = "camelCase")]
#[serde(rename_all = "camelCase")]
pub struct LogView {
    /// Sequence number within the step (the cursor).
    pub seq: u64,
    /// Attempt.
    pub attempt: u32,
    /// When.
    pub at: String,
    /// Severity.
    pub level: LogLevel,
    /// Text.
    pub message: String,
    /// Structured context.
    #[oai(skip_serializing_if_is_none)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context: Option<Value>,
    /// Who wrote it.
    pub source: LogSource,
}

impl From<LogLine> for LogView {
    fn from(l: LogLine) -> Self {
        Self {
            seq: l.seq,
            attempt: l.attempt,
            at: rfc3339_ms(l.at),
            level: l.level,
            message: l.message,
            context: l.context,
            source: l.source,
        }
    }
}

/// A run event.
#[derive(Object, Debug, Clone, serde::Serialize, serde::Deserialize)]
#[oai(rename_all = "camelCase")]
#[serde(rename_all = "camelCase")]
pub struct EventView {
    /// Sequence number within the run.
    pub seq: u64,
    /// When.
    pub at: String,
    /// What happened.
    pub kind: EventKind,
    /// Step, for step events.
    #[oai(skip_serializing_if_is_none)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step: Option<String>,
    /// Attempt, for step events.
    #[oai(skip_serializing_if_is_none)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attempt: Option<u32>,
    /// The status the run entered, for run events that change it.
    #[oai(skip_serializing_if_is_none)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<RunStatus>,
    /// Human-readable.
    pub message: String,
}

impl From<RunEvent> for EventView {
    fn from(e: RunEvent) -> Self {
        Self {
            seq: e.seq,
            at: rfc3339_ms(e.at),
            kind: e.kind,
            status: e.run_status(),
            step: e.step.map(String::from),
            attempt: e.attempt,
            message: e.message,
        }
    }
}

/// An artifact a step emitted.
#[derive(Object, Debug, Clone, serde::Serialize, serde::Deserialize)]
#[oai(rename_all = "camelCase")]
#[serde(rename_all = "camelCase")]
pub struct ArtifactView {
    /// Name, unique per attempt (download it at `.../artifacts/{name}`).
    pub name: String,
    /// Media type the plugin declared.
    pub content_type: String,
    /// Size in bytes.
    pub size: u64,
    /// The attempt that emitted it.
    pub attempt: u32,
    /// When it was emitted (RFC 3339).
    pub created_at: String,
    /// Lowercase hex sha256 of the bytes.
    #[oai(skip_serializing_if_is_none)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
}

/// Plugin health.
#[derive(Object, Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct PluginHealthView {
    /// `OK` when loaded and enabled, `DISABLED` otherwise.
    pub status: String,
}

/// The result of validating a template.
#[derive(Object, Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct ValidationView {
    /// True when there are no problems.
    pub valid: bool,
}
