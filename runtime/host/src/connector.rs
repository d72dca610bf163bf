//! Connector calls outside a sync: `check` and `discover`, each in a
//! session of its own.

use crate::PluginHost;
use crate::error::InvokeError;
use crate::install::LoadedPlugin;
use crate::session::{ConnectorFailure, Session, SessionOptions};
use std::sync::Arc;
use weft_model::{Catalog, ConnectorRole, PluginDigest};

/// A `check` or `discover` of one connector configuration.
#[derive(Debug, Clone)]
pub struct ConnectorCallRequest {
    /// The connector plugin.
    pub plugin: PluginDigest,
    /// Which of its roles is called.
    pub role: ConnectorRole,
    /// The connection's configuration (secrets decrypted).
    pub config: serde_json::Value,
    /// Limits, secrets, logs and cancellation.
    pub options: SessionOptions,
}

impl ConnectorCallRequest {
    /// A request with default options.
    pub fn new(plugin: PluginDigest, role: ConnectorRole, config: serde_json::Value) -> Self {
        Self {
            plugin,
            role,
            config,
            options: SessionOptions::default(),
        }
    }
}

/// The loaded plugin, if it plays `role`.
pub(crate) fn connector(
    host: &PluginHost,
    digest: &PluginDigest,
    role: ConnectorRole,
) -> Result<Arc<LoadedPlugin>, InvokeError> {
    let plugin = host
        .plugin(digest)
        .ok_or_else(|| InvokeError::UnknownPlugin(digest.clone()))?;
    let plays = match role {
        ConnectorRole::Source => plugin.source.is_some(),
        ConnectorRole::Destination => plugin.destination.is_some(),
    };
    if !plays {
        return Err(InvokeError::NotAConnector {
            plugin: plugin.manifest.name.clone(),
            role,
        });
    }
    Ok(plugin)
}

impl PluginHost {
    /// Calls the connector's `check(config)`: `Ok` when it can connect.
    pub async fn check_connector(&self, req: ConnectorCallRequest) -> Result<(), ConnectorFailure> {
        let plugin = connector(self, &req.plugin, req.role)?;
        let mut session = Session::open(&self.engine, plugin.clone(), req.options).await?;
        let config = req.config.to_string();
        let verdict = match req.role {
            ConnectorRole::Source => {
                let Some(idx) = &plugin.source else {
                    unreachable_role()?
                };
                session
                    .call(async |store, instance| {
                        idx.load(&mut *store, instance)?
                            .call_check(&mut *store, &config)
                            .await
                    })
                    .await?
            }
            ConnectorRole::Destination => {
                let Some(idx) = &plugin.destination else {
                    unreachable_role()?
                };
                session
                    .call(async |store, instance| {
                        idx.load(&mut *store, instance)?
                            .call_check(&mut *store, &config)
                            .await
                    })
                    .await?
            }
        };
        verdict.map_err(|e| session.plugin_failure(e))
    }

    /// Calls the source's `discover(config)`: the streams it can read.
    pub async fn discover(&self, req: ConnectorCallRequest) -> Result<Catalog, ConnectorFailure> {
        let plugin = connector(self, &req.plugin, ConnectorRole::Source)?;
        let Some(idx) = &plugin.source else {
            unreachable_role()?
        };
        let mut session = Session::open(&self.engine, plugin.clone(), req.options).await?;
        let config = req.config.to_string();
        let verdict = session
            .call(async |store, instance| {
                idx.load(&mut *store, instance)?
                    .call_discover(&mut *store, &config)
                    .await
            })
            .await?;
        match verdict {
            Ok(catalog) => Ok(crate::convert::catalog_from(catalog)?),
            Err(e) => Err(session.plugin_failure(e)),
        }
    }
}

/// [`connector`] checked the role; this keeps the types honest without a panic.
fn unreachable_role<T>() -> Result<T, InvokeError> {
    Err(InvokeError::Protocol("connector role vanished".into()))
}
