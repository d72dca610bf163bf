//! The connection's configuration (one shape for both roles) and how wire
//! errors become the connector's error kinds.

pub use crate::tls::SslMode;
use crate::tls::TlsOptions;
use crate::wire::{Client, ConnectParams, WireError};
use schemars::JsonSchema;
use serde::Deserialize;
use weft_plugin_sdk::PluginError;

/// A PostgreSQL server, database and role; what to read or where to write.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PgConfig {
    /// Host name or IP address of the server; an admin must grant it
    /// (with its port) to the plugin.
    #[schemars(length(min = 1, max = 253))]
    pub host: String,
    /// TCP port.
    #[serde(default = "default_port")]
    #[schemars(range(min = 1))]
    pub port: u16,
    /// Database name.
    #[schemars(length(min = 1, max = 63))]
    pub database: String,
    /// Role to connect as.
    #[schemars(length(min = 1, max = 63))]
    pub user: String,
    /// The role's password (SCRAM-SHA-256, md5 or cleartext, as the
    /// server asks); encrypted at rest, never returned.
    #[schemars(extend("writeOnly" = true))]
    #[serde(default)]
    pub password: String,
    /// TLS, as libpq's `sslmode`: `disable`, `prefer` (TLS when offered),
    /// `require` (TLS or fail), `verify-ca` (and a trusted certificate
    /// chain), `verify-full` (and the certificate names `host`).
    #[serde(default)]
    pub ssl_mode: SslMode,
    /// PEM root certificate(s) the server's chain must end in, for
    /// `verify-ca`/`verify-full` (default: the Mozilla roots) and, when
    /// given, for `require`.
    #[serde(default)]
    #[schemars(length(max = 1_000_000))]
    pub ssl_root_cert: Option<String>,
    /// Source: the schemas whose tables and views are streams.
    #[serde(default = "default_schemas")]
    #[schemars(length(min = 1))]
    pub schemas: Vec<String>,
    /// Source: `numeric` columns as exact decimal strings (default) or as
    /// JSON numbers (lossy past 15 digits).
    #[serde(default)]
    pub numeric_as: NumericAs,
    /// Source: rows per chunk of a read; each chunk ends with a checkpoint,
    /// so a stopped sync resumes at the next chunk.
    #[serde(default = "default_chunk_rows")]
    #[schemars(range(min = 1, max = 10_000_000))]
    pub chunk_rows: u64,
    /// Destination: the schema tables are written into (created when missing).
    #[serde(default = "default_schema")]
    #[schemars(length(min = 1, max = 63))]
    pub schema: String,
    /// Destination: what happens when the source has columns an existing
    /// table lacks.
    #[serde(default)]
    pub schema_evolution: SchemaEvolution,
}

/// What a destination does with columns the source grew.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum SchemaEvolution {
    /// Adds them to the table.
    #[default]
    Propagate,
    /// Leaves the table as it is and does not write them.
    Ignore,
    /// Fails the sync, naming them.
    Fail,
}

/// How `numeric` values travel.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum NumericAs {
    /// Exact, as a decimal string.
    #[default]
    String,
    /// As a JSON number (a double).
    Number,
}

fn default_port() -> u16 {
    5432
}
fn default_schemas() -> Vec<String> {
    vec!["public".into()]
}
fn default_schema() -> String {
    "public".into()
}
fn default_chunk_rows() -> u64 {
    100_000
}

impl PgConfig {
    /// Where `host:port` is, for messages.
    pub fn address(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }

    /// Connects and authenticates.
    pub fn connect(&self) -> Result<Client, PluginError> {
        let params = ConnectParams {
            host: self.host.clone(),
            port: self.port,
            user: self.user.clone(),
            password: self.password.clone(),
            database: self.database.clone(),
            tls: TlsOptions {
                mode: self.ssl_mode,
                root_cert: self.ssl_root_cert.clone(),
            },
        };
        Client::connect(&params).map_err(|e| self.error(e))
    }

    /// The connector error for a wire error, naming the server and role
    /// (never the password).
    pub fn error(&self, e: WireError) -> PluginError {
        classify(e, &self.address(), &self.user, &self.database)
    }
}

/// Sorts a wire error into the connector's error kinds.
pub fn classify(e: WireError, address: &str, user: &str, database: &str) -> PluginError {
    match e {
        WireError::Io(io) => {
            use std::io::ErrorKind as K;
            match io.kind() {
                K::PermissionDenied => PluginError::config(format!(
                    "connecting to postgres at {address} is not allowed: grant the host and port to the plugin ({io})"
                )),
                _ => PluginError::transient(format!("cannot reach postgres at {address}: {io}")),
            }
        }
        WireError::Server(s) => {
            let class = s.code.get(..2).unwrap_or("");
            let msg = format!("postgres at {address}: {s}");
            match (class, s.code.as_str()) {
                ("28", _) => PluginError::auth(format!(
                    "postgres at {address} refused role {user:?}: {}",
                    s.message
                )),
                (_, "42501") => PluginError::auth(format!(
                    "role {user:?} lacks a privilege at {address}: {}",
                    s.message
                )),
                (_, "3D000") => PluginError::config(format!(
                    "database {database:?} does not exist at {address}"
                )),
                ("08" | "53" | "57" | "58", _) | (_, "40001" | "40P01" | "55P03") => {
                    PluginError::transient(msg)
                }
                ("22" | "23", _) => PluginError::data(msg),
                ("42" | "3F", _) => PluginError::config(msg),
                _ => PluginError::internal(msg),
            }
        }
        WireError::UnsupportedAuth(m) => {
            PluginError::auth(format!("postgres at {address} asks role {user:?} for {m}"))
        }
        WireError::Tls(m) => PluginError::config(format!("TLS with postgres at {address}: {m}")),
        WireError::Protocol(m) => PluginError::internal(format!("postgres at {address}: {m}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::ServerError;
    use weft_plugin_sdk::ErrorKind;

    fn server(code: &str) -> WireError {
        WireError::Server(ServerError {
            code: code.into(),
            message: "m".into(),
            detail: None,
        })
    }

    #[test]
    fn server_errors_fall_into_kinds() {
        let kind = |code| classify(server(code), "db:5432", "u", "d").kind;
        assert_eq!(kind("28P01"), ErrorKind::Auth);
        assert_eq!(kind("3D000"), ErrorKind::Config);
        assert_eq!(kind("42P01"), ErrorKind::Config);
        assert_eq!(kind("57P01"), ErrorKind::Transient);
        assert_eq!(kind("40001"), ErrorKind::Transient);
        assert_eq!(kind("22P02"), ErrorKind::Data);
        assert_eq!(kind("XX000"), ErrorKind::Internal);
        let refused = WireError::Io(std::io::Error::from(std::io::ErrorKind::ConnectionRefused));
        let e = classify(refused, "db:5432", "u", "d");
        assert_eq!(e.kind, ErrorKind::Transient);
        assert!(e.message.contains("db:5432"));
    }

    #[test]
    fn a_refused_password_names_the_role_and_server_but_not_the_password() {
        let e = classify(server("28P01"), "db:5432", "weft", "d");
        assert!(e.message.contains("\"weft\"") && e.message.contains("db:5432"));
    }
}
