//! Weft's domain model: identifiers, plugin manifests, capability grants,
//! invocation limits, and the state of runs, steps, attempts, events, log
//! lines, failures and templates as the store keeps them and the API
//! serves them. With the `openapi` feature its enums and [`Failure`] also
//! describe themselves to poem-openapi, so the API document lists every
//! status, kind, level and code.
//!
//! This crate does no I/O. Every other crate depends on it, never the other
//! way round, so the types here are the vocabulary shared by the host, the
//! engine, the store and the API.

pub mod artifact;
pub mod capabilities;
pub mod connector;
pub mod error;
pub mod event;
pub mod failure;
pub mod ids;
pub mod json_limits;
pub mod limits;
pub mod log;
pub mod manifest;
pub mod outcome;
pub mod principal;
pub mod run;
pub mod step;
pub mod sync;
pub mod template;

pub use artifact::ArtifactInfo;
pub use capabilities::{
    CapabilityGrants, DirectoryGrant, EffectiveGrants, HostPattern, HostPatternError,
    RequestedCapabilities,
};
pub use connector::{
    BatchFormat, Catalog, Checkpoint, CommitMarker, ConfiguredStream, ConnectorRole, Delivery,
    DestinationSpec, RawDestinationSpec, RawSourceSpec, SourceSpec, StreamInfo, StreamStatus,
    SyncMode, WriteMode, merge_checkpoints, negotiate_format,
};
pub use error::{PluginError, PluginErrorKind};
pub use event::{EventData, EventKind, RunEvent};
pub use failure::{Failure, FailureCode};
pub use ids::{ConnectionId, IdError, PluginDigest, RunId, StepId, StepKey, SyncJobId, TemplateId};
pub use json_limits::{JsonLimitError, JsonLimits, MAX_JSON_DEPTH, check_json, parse_json};
pub use limits::InvocationLimits;
pub use log::{LogLevel, LogLine, LogSource};
pub use manifest::{
    MAX_LIST_ENTRIES, MAX_MANIFEST_BYTES, MAX_SCHEMA_BYTES, MAX_STEP_TYPES, ManifestProblem,
    ManifestProblemCode, PluginManifest, PluginRoles, RawManifest, RawStepType, StepTypeInfo,
    StepTypeRef, is_valid_name,
};
pub use outcome::{InputRequest, StepOutcome};
pub use principal::{Permission, Principal, PrincipalKind, Role};
pub use run::{RunProgress, RunStatus, StepStatus, WorkflowRun};
pub use step::{RunStep, StepAttempt};
pub use sync::{
    ConfigProblem, ConfigProblemCode, Connection, LiveSync, SYNC_JOB_TEMPLATE_PREFIX, SealedSecret,
    StreamSelection, StreamTotals, SyncJob, SyncOutput, SyncState, sync_job_template_name,
};
pub use template::{
    TemplateHead, TemplateRevision, ValidatedTemplate, WorkflowTemplate, validate_template,
};
