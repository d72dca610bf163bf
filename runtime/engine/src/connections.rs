//! Connections: a connector plugin plus its configuration, validated
//! against the connector's spec before anything is stored or any plugin is
//! called, with the spec's secret fields sealed at rest.

use crate::config::VALUE_LIMITS;
use crate::registry::PluginEntry;
use crate::secret_box::SecretKey;
use crate::shared::Shared;
use crate::{Engine, EngineError, Operation};
use serde_json::{Map, Value};
use std::time::Instant;
use weft_host::{ConnectorCallRequest, ConnectorFailure};
use weft_model::{
    Catalog, ConfigProblem, ConfigProblemCode, Connection, ConnectionId, ConnectorRole, Failure,
    Principal, RunStatus, SyncJobId, check_json,
};

/// What a connection request says; a new connection or the whole of an
/// existing one (`PUT`).
#[derive(Debug, Clone)]
pub struct ConnectionRequest {
    /// A name for people.
    pub name: String,
    /// Which side of a sync it is.
    pub role: ConnectorRole,
    /// The connector plugin's name.
    pub connector: String,
    /// A requirement on the plugin's version.
    pub version: Option<semver::VersionReq>,
    /// The configuration. On an update, a secret field left out (or given
    /// as [`MASK`]) keeps its stored value.
    pub config: Value,
}

/// What secret values look like in what the API returns, and what a
/// client may send back to keep a stored secret.
pub const MASK: &str = "********";

/// A job that uses a connection, with its last run.
#[derive(Debug, Clone)]
pub struct JobUse {
    /// The job.
    pub job_id: SyncJobId,
    /// Its name.
    pub name: String,
    /// Its newest run: (start or creation time, status).
    pub last_run: Option<(i64, RunStatus)>,
}

/// A connection with the jobs that use it.
#[derive(Debug, Clone)]
pub struct ConnectionEntry {
    /// The connection (secrets sealed).
    pub connection: Connection,
    /// The spec's secret fields that have a value.
    pub secrets_set: Vec<String>,
    /// Jobs that use it.
    pub jobs: Vec<JobUse>,
}

/// How a connection check went.
#[derive(Debug, Clone)]
pub struct CheckReport {
    /// `None` when the connector could connect.
    pub failure: Option<Failure>,
    /// How long the check took.
    pub elapsed_ms: u64,
    /// When it ran (ms).
    pub checked_at: i64,
}

impl Engine {
    /// Creates a connection after validating its config against the
    /// connector's spec. No plugin is called.
    pub async fn create_connection(
        &self,
        caller: &Principal,
        req: ConnectionRequest,
    ) -> Result<ConnectionEntry, EngineError> {
        self.authorize(caller, Operation::ManageConnections)?;
        let id = ConnectionId::generate();
        self.check_connection_name(&req.name, None).await?;
        let (_, connection) = self.prepare_connection(&id, &req, None)?;
        self.shared.store.create_connection(&connection).await?;
        self.connection_entry(connection).await
    }

    /// Replaces a connection's name, version and config; role and
    /// connector stay.
    pub async fn update_connection(
        &self,
        caller: &Principal,
        id: &ConnectionId,
        req: ConnectionRequest,
    ) -> Result<ConnectionEntry, EngineError> {
        self.authorize(caller, Operation::ManageConnections)?;
        let stored = self.shared.store.connection(id).await?;
        let mut problems = Vec::new();
        if req.role != stored.role {
            problems.push(ConfigProblem::new(
                "/role",
                ConfigProblemCode::WrongRole,
                format!(
                    "a connection's role cannot change (it is a {})",
                    stored.role
                ),
            ));
        }
        if req.connector != stored.connector {
            problems.push(ConfigProblem::new(
                "/connector",
                ConfigProblemCode::UnknownConnector,
                format!(
                    "a connection's connector cannot change (it is {:?}); create a new connection",
                    stored.connector
                ),
            ));
        }
        if !problems.is_empty() {
            return Err(EngineError::InvalidConnection(problems));
        }
        self.check_connection_name(&req.name, Some(id)).await?;
        let (_, mut connection) = self.prepare_connection(id, &req, Some(&stored))?;
        connection.created_at = stored.created_at;
        self.shared.store.update_connection(&connection).await?;
        self.connection_entry(connection).await
    }

    /// A connection with the jobs that use it.
    pub async fn connection(
        &self,
        caller: &Principal,
        id: &ConnectionId,
    ) -> Result<ConnectionEntry, EngineError> {
        self.authorize(caller, Operation::ReadConnections)?;
        let c = self.shared.store.connection(id).await?;
        self.connection_entry(c).await
    }

    /// Live connections, optionally of one role and connector.
    pub async fn connections(
        &self,
        caller: &Principal,
        role: Option<ConnectorRole>,
        connector: Option<&str>,
    ) -> Result<Vec<ConnectionEntry>, EngineError> {
        self.authorize(caller, Operation::ReadConnections)?;
        let jobs = self.shared.store.sync_jobs().await?;
        let mut out = Vec::new();
        for c in self.shared.store.connections().await? {
            if role.is_some_and(|r| r != c.role) || connector.is_some_and(|n| n != c.connector) {
                continue;
            }
            out.push(self.entry_with_jobs(c, &jobs).await?);
        }
        Ok(out)
    }

    /// Deletes a connection no job uses (409 otherwise). The record stays,
    /// marked deleted, so the runs that used it still name it.
    pub async fn delete_connection(
        &self,
        caller: &Principal,
        id: &ConnectionId,
    ) -> Result<(), EngineError> {
        self.authorize(caller, Operation::ManageConnections)?;
        Ok(self
            .shared
            .store
            .delete_connection(id, crate::now_ms())
            .await?)
    }

    /// Checks an unsaved connection: validation, then the connector's `check`.
    pub async fn test_connection_config(
        &self,
        caller: &Principal,
        req: ConnectionRequest,
    ) -> Result<CheckReport, EngineError> {
        self.authorize(caller, Operation::ManageConnections)?;
        let id = ConnectionId::generate();
        let (entry, connection) = self.prepare_connection(&id, &req, None)?;
        let config = reveal(&self.shared.config.secret_key, &connection)?;
        Ok(self.check_with(&entry, connection.role, config).await)
    }

    /// Checks a stored connection with the connector's `check`.
    pub async fn test_connection(
        &self,
        caller: &Principal,
        id: &ConnectionId,
    ) -> Result<CheckReport, EngineError> {
        self.authorize(caller, Operation::ReadConnections)?;
        let (entry, connection, config) = self.shared.open_connection(id).await?;
        Ok(self.check_with(&entry, connection.role, config).await)
    }

    /// What a source connection can read, from the connector's `discover`.
    pub async fn discover(
        &self,
        caller: &Principal,
        id: &ConnectionId,
    ) -> Result<Catalog, EngineError> {
        self.authorize(caller, Operation::ReadConnections)?;
        let (entry, connection, config) = self.shared.open_connection(id).await?;
        if connection.role != ConnectorRole::Source {
            return Err(EngineError::InvalidConnection(vec![ConfigProblem::new(
                "",
                ConfigProblemCode::WrongRole,
                "only a source connection has streams to discover",
            )]));
        }
        self.shared.discover_with(&entry, config).await
    }

    async fn check_with(
        &self,
        entry: &PluginEntry,
        role: ConnectorRole,
        config: Value,
    ) -> CheckReport {
        let started = Instant::now();
        let mut req = ConnectorCallRequest::new(entry.digest.clone(), role, config);
        req.options.secrets = self.shared.secrets.clone();
        let failure = match self.shared.host.check_connector(req).await {
            Ok(()) => None,
            Err(e) => Some(connector_failure(&e)),
        };
        CheckReport {
            failure,
            elapsed_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
            checked_at: crate::now_ms(),
        }
    }

    async fn check_connection_name(
        &self,
        name: &str,
        except: Option<&ConnectionId>,
    ) -> Result<(), EngineError> {
        let problem = if name.trim().is_empty() || name.len() > 128 {
            Some("a connection name is 1-128 characters".to_owned())
        } else if self
            .shared
            .store
            .connections()
            .await?
            .iter()
            .any(|c| c.name == name && Some(&c.connection_id) != except)
        {
            Some(format!("a connection named {name:?} already exists"))
        } else {
            None
        };
        match problem {
            Some(m) => Err(EngineError::InvalidConnection(vec![ConfigProblem::new(
                "/name",
                ConfigProblemCode::InvalidName,
                m,
            )])),
            None => Ok(()),
        }
    }

    /// Resolves the connector, validates the config (with the stored
    /// secrets a `PUT` left out) and seals the secret fields.
    fn prepare_connection(
        &self,
        id: &ConnectionId,
        req: &ConnectionRequest,
        stored: Option<&Connection>,
    ) -> Result<(PluginEntry, Connection), EngineError> {
        let entry = self
            .registry
            .connector(&req.connector, req.version.as_ref(), req.role)
            .map_err(|p| EngineError::InvalidConnection(vec![p]))?;
        let (schema, secret_fields) = match req.role {
            ConnectorRole::Source => entry
                .manifest
                .source
                .as_ref()
                .map(|s| (&s.config_schema, &s.secret_fields)),
            ConnectorRole::Destination => entry
                .manifest
                .destination
                .as_ref()
                .map(|s| (&s.config_schema, &s.secret_fields)),
        }
        .ok_or_else(|| EngineError::Internal("a connector lost its spec".into()))?;
        // Stored with the connection, so it must read back.
        check_json(&req.config, VALUE_LIMITS).map_err(|error| EngineError::ValueLimit {
            what: "config",
            error,
        })?;
        let Value::Object(mut config) = req.config.clone() else {
            return Err(EngineError::InvalidConnection(vec![ConfigProblem::new(
                "/config",
                ConfigProblemCode::InvalidConfig,
                "a connection's config is a JSON object",
            )]));
        };
        let key = &self.shared.config.secret_key;
        // A secret left out or masked keeps the stored one.
        if let Some(stored) = stored {
            for field in secret_fields {
                let keep = config.get(field).is_none_or(|v| v.as_str() == Some(MASK));
                if keep && let Some(sealed) = stored.secrets.get(field) {
                    let plain = key
                        .open(&secret_context(id, field), sealed)
                        .map_err(|e| EngineError::Internal(e.to_string()))?;
                    let value = serde_json::from_slice(&plain)
                        .map_err(|e| EngineError::Internal(e.to_string()))?;
                    config.insert(field.clone(), value);
                }
            }
        }
        let full = Value::Object(config.clone());
        validate_config(schema, secret_fields, &full)?;
        let mut secrets = std::collections::BTreeMap::new();
        for field in secret_fields {
            if let Some(value) = config.remove(field) {
                let plain =
                    serde_json::to_vec(&value).map_err(|e| EngineError::Internal(e.to_string()))?;
                secrets.insert(field.clone(), key.seal(&secret_context(id, field), &plain));
            }
        }
        let now = crate::now_ms();
        Ok((
            entry,
            Connection {
                connection_id: id.clone(),
                name: req.name.clone(),
                role: req.role,
                connector: req.connector.clone(),
                version: req.version.clone(),
                config: Value::Object(config),
                secrets,
                created_at: now,
                updated_at: now,
            },
        ))
    }

    async fn connection_entry(&self, c: Connection) -> Result<ConnectionEntry, EngineError> {
        let jobs = self.shared.store.sync_jobs().await?;
        self.entry_with_jobs(c, &jobs).await
    }

    async fn entry_with_jobs(
        &self,
        c: Connection,
        all_jobs: &[weft_model::SyncJob],
    ) -> Result<ConnectionEntry, EngineError> {
        let mut jobs = Vec::new();
        for job in all_jobs {
            if job.source == c.connection_id || job.destination == c.connection_id {
                let last_run = self.last_run_of(&job.template_id).await?;
                jobs.push(JobUse {
                    job_id: job.job_id.clone(),
                    name: job.name.clone(),
                    last_run,
                });
            }
        }
        Ok(ConnectionEntry {
            secrets_set: c.secrets.keys().cloned().collect(),
            connection: c,
            jobs,
        })
    }

    /// The newest run of a template: (start or creation time, status).
    pub(crate) async fn last_run_of(
        &self,
        template: &weft_model::TemplateId,
    ) -> Result<Option<(i64, RunStatus)>, EngineError> {
        let page = self
            .shared
            .store
            .list_runs(&weft_store::RunFilter {
                template_id: Some(template.clone()),
                page: 1,
                page_size: 1,
                ..Default::default()
            })
            .await?;
        Ok(page
            .runs
            .first()
            .map(|r| (r.started_at.unwrap_or(r.created_at), r.status)))
    }
}

impl Shared {
    /// A stored connection, its connector and its config with secrets opened.
    pub(crate) async fn open_connection(
        &self,
        id: &ConnectionId,
    ) -> Result<(PluginEntry, Connection, Value), EngineError> {
        let connection = self.store.connection(id).await?;
        let entry = self
            .registry
            .connector(
                &connection.connector,
                connection.version.as_ref(),
                connection.role,
            )
            .map_err(|p| EngineError::InvalidConnection(vec![p]))?;
        let config = reveal(&self.config.secret_key, &connection)?;
        Ok((entry, connection, config))
    }

    pub(crate) async fn discover_with(
        &self,
        entry: &PluginEntry,
        config: Value,
    ) -> Result<Catalog, EngineError> {
        let mut req =
            ConnectorCallRequest::new(entry.digest.clone(), ConnectorRole::Source, config);
        req.options.secrets = self.secrets.clone();
        self.host
            .discover(req)
            .await
            .map_err(EngineError::Connector)
    }
}

/// What a sealed secret is bound to.
fn secret_context(id: &ConnectionId, field: &str) -> String {
    format!("connection/{id}/{field}")
}

/// A connection's config with its secrets opened, for the connector.
pub(crate) fn reveal(key: &SecretKey, c: &Connection) -> Result<Value, EngineError> {
    let mut config = match &c.config {
        Value::Object(m) => m.clone(),
        _ => Map::new(),
    };
    for (field, sealed) in &c.secrets {
        let plain = key
            .open(&secret_context(&c.connection_id, field), sealed)
            .map_err(|e| {
                EngineError::Internal(format!(
                    "connection {}: secret {field:?}: {e}",
                    c.connection_id
                ))
            })?;
        let value =
            serde_json::from_slice(&plain).map_err(|e| EngineError::Internal(e.to_string()))?;
        config.insert(field.clone(), value);
    }
    Ok(Value::Object(config))
}

/// Validates a config against the connector's schema, one problem per
/// error with its pointer under `/config`. Messages about secret fields do
/// not quote the value.
fn validate_config(
    schema: &Value,
    secret_fields: &[String],
    config: &Value,
) -> Result<(), EngineError> {
    let validator = jsonschema::validator_for(schema)
        .map_err(|e| EngineError::Internal(format!("connector config schema: {e}")))?;
    let problems: Vec<ConfigProblem> = validator
        .iter_errors(config)
        .map(|e| {
            let at = e.instance_path().as_str().to_owned();
            let secret = secret_fields
                .iter()
                .any(|f| at == format!("/{f}") || at.starts_with(&format!("/{f}/")));
            let message = if secret {
                "the secret value does not match the connector's schema".to_owned()
            } else {
                e.to_string()
            };
            ConfigProblem::new(
                format!("/config{at}"),
                ConfigProblemCode::InvalidConfig,
                message,
            )
        })
        .take(64)
        .collect();
    if problems.is_empty() {
        Ok(())
    } else {
        Err(EngineError::InvalidConnection(problems))
    }
}

/// A connector failure with the same codes a step failure has.
pub fn connector_failure(f: &ConnectorFailure) -> Failure {
    match f {
        ConnectorFailure::Plugin(e) => Failure::from_plugin(e),
        ConnectorFailure::Host(e) => Failure::new(e.code(), e.to_string(), e.is_retryable()),
    }
}
