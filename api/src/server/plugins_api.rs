//! `plugins` and `step-types` endpoints.

use super::auth::BearerAuth;
use super::envelope::{ApiError, ApiResult, Envelope, ok};
use super::views::{PluginView, StepTypeView};
use poem_openapi::param::Path;
use poem_openapi::payload::{Binary, Json};
use poem_openapi::{ApiResponse, Object, OpenApi, Tags};
use weft_engine::Engine;
use weft_model::{CapabilityGrants, PluginDigest};

#[derive(Tags)]
enum Tag {
    /// Install, list, enable and disable plugins.
    Plugins,
    /// Step types offered by installed plugins.
    StepTypes,
}

/// Plugin and step-type endpoints.
pub struct PluginsApi {
    /// The engine.
    pub engine: Engine,
}

/// Capabilities granted when enabling a plugin.
#[derive(Object, Debug, Default)]
#[oai(rename_all = "camelCase")]
pub struct EnablePluginRequest {
    /// Hosts the plugin may reach (`example.com`, `*.example.com`, `host:port`).
    #[oai(default)]
    pub outbound_hosts: Vec<String>,
    /// Environment variable names passed through.
    #[oai(default)]
    pub env: Vec<String>,
    /// Secret names the plugin may read.
    #[oai(default)]
    pub secrets: Vec<String>,
}

/// Plugin health.
#[derive(Object, Debug)]
pub struct PluginHealthView {
    /// `OK` when loaded and enabled, `DISABLED` otherwise.
    pub status: String,
}

#[derive(ApiResponse)]
enum Created {
    /// Installed.
    #[oai(status = 201)]
    Created(
        Json<Envelope<PluginView>>,
        #[oai(header = "Location")] String,
    ),
}

impl PluginsApi {
    /// An installed plugin by id, or 404.
    fn entry(&self, id: &str) -> ApiResult<weft_engine::PluginEntry> {
        let d = digest(id)?;
        self.engine
            .plugins()
            .into_iter()
            .find(|p| p.digest == d)
            .ok_or_else(|| ApiError::not_found(format!("plugin {id} not found")))
    }
}

fn digest(id: &str) -> ApiResult<PluginDigest> {
    PluginDigest::parse(id).map_err(|_| ApiError::not_found(format!("plugin {id} not found")))
}

#[OpenApi]
impl PluginsApi {
    /// Installs a plugin: the body is the component's `.wasm` bytes.
    #[oai(path = "/plugins", method = "post", tag = "Tag::Plugins")]
    async fn install(&self, _auth: BearerAuth, body: Binary<Vec<u8>>) -> ApiResult<Created> {
        let entry = self.engine.install_plugin(&body.0, true).await?;
        let location = format!("/api/v1/plugins/{}", entry.digest);
        Ok(Created::Created(ok(entry.into()), location))
    }

    /// Lists installed plugins.
    #[oai(path = "/plugins", method = "get", tag = "Tag::Plugins")]
    async fn list(&self, _auth: BearerAuth) -> ApiResult<Json<Envelope<Vec<PluginView>>>> {
        Ok(ok(self
            .engine
            .plugins()
            .into_iter()
            .map(Into::into)
            .collect()))
    }

    /// One plugin by id (`sha256:…`).
    #[oai(path = "/plugins/:id", method = "get", tag = "Tag::Plugins")]
    async fn get(
        &self,
        _auth: BearerAuth,
        id: Path<String>,
    ) -> ApiResult<Json<Envelope<PluginView>>> {
        let e = self.entry(&id)?;
        Ok(ok(e.into()))
    }

    /// Uninstalls a plugin: removes it from the registry, the host and the
    /// store, and returns what was removed. Refused with 409 while an
    /// unfinished run (PENDING, RUNNING, PAUSED, AWAITING_INPUT) pinned it;
    /// the error's `details.activeRuns` lists them. Templates that use it
    /// are kept and fail validation (unknown step type) at their next run.
    #[oai(path = "/plugins/:id", method = "delete", tag = "Tag::Plugins")]
    async fn delete(
        &self,
        _auth: BearerAuth,
        id: Path<String>,
    ) -> ApiResult<Json<Envelope<PluginView>>> {
        let e = self.entry(&id)?;
        Ok(ok(self.engine.uninstall_plugin(&e.digest).await?.into()))
    }

    /// Enables a plugin with the given capability grants.
    #[oai(path = "/plugins/:id/enable", method = "post", tag = "Tag::Plugins")]
    async fn enable(
        &self,
        _auth: BearerAuth,
        id: Path<String>,
        body: Json<EnablePluginRequest>,
    ) -> ApiResult<Json<Envelope<PluginView>>> {
        let mut hosts = Vec::new();
        let mut problems = Vec::new();
        for (i, h) in body.0.outbound_hosts.iter().enumerate() {
            match weft_model::HostPattern::parse(h) {
                Ok(p) => hosts.push(p),
                Err(e) => problems.push(super::envelope::ValidationError {
                    pointer: format!("/outboundHosts/{i}"),
                    code: "INVALID_HOST_PATTERN".into(),
                    message: e.to_string(),
                }),
            }
        }
        if !problems.is_empty() {
            return Err(ApiError::validation(
                "INVALID_GRANTS",
                "invalid capability grants",
                problems,
            ));
        }
        let grants = CapabilityGrants {
            outbound_hosts: hosts,
            env: body.0.env,
            secrets: body.0.secrets,
            directories: Vec::new(),
        };
        Ok(ok(self
            .engine
            .set_plugin_state(&digest(&id)?, true, grants)
            .await?
            .into()))
    }

    /// Disables a plugin: new runs cannot use it; running ones finish.
    #[oai(path = "/plugins/:id/disable", method = "post", tag = "Tag::Plugins")]
    async fn disable(
        &self,
        _auth: BearerAuth,
        id: Path<String>,
    ) -> ApiResult<Json<Envelope<PluginView>>> {
        let e = self.entry(&id)?;
        Ok(ok(self
            .engine
            .set_plugin_state(&e.digest, false, e.grants)
            .await?
            .into()))
    }

    /// Whether a plugin is loaded and enabled.
    #[oai(path = "/plugins/:id/health", method = "get", tag = "Tag::Plugins")]
    async fn health(
        &self,
        _auth: BearerAuth,
        id: Path<String>,
    ) -> ApiResult<Json<Envelope<PluginHealthView>>> {
        let e = self.entry(&id)?;
        Ok(ok(PluginHealthView {
            status: if e.enabled { "OK" } else { "DISABLED" }.into(),
        }))
    }

    /// Lists step types of installed plugins.
    #[oai(path = "/step-types", method = "get", tag = "Tag::StepTypes")]
    async fn step_types(&self, _auth: BearerAuth) -> ApiResult<Json<Envelope<Vec<StepTypeView>>>> {
        Ok(ok(all_step_types(&self.engine)))
    }

    /// One step type, e.g. `core/fibo` (URL-encode the slash as `%2F`) or `core.fibo`.
    #[oai(path = "/step-types/:ty", method = "get", tag = "Tag::StepTypes")]
    async fn step_type(
        &self,
        _auth: BearerAuth,
        ty: Path<String>,
    ) -> ApiResult<Json<Envelope<StepTypeView>>> {
        let wanted = ty.0.replacen('.', "/", 1);
        all_step_types(&self.engine)
            .into_iter()
            .rev()
            .find(|s| s.ty == wanted)
            .map(ok)
            .ok_or_else(|| ApiError::not_found(format!("step type {} not found", ty.0)))
    }
}

fn all_step_types(engine: &Engine) -> Vec<StepTypeView> {
    engine
        .plugins()
        .into_iter()
        .flat_map(|p| {
            p.manifest
                .step_types
                .iter()
                .map(|s| StepTypeView {
                    ty: format!("{}/{}", p.manifest.name, s.name),
                    plugin: p.manifest.name.clone(),
                    version: p.manifest.version.to_string(),
                    plugin_id: p.digest.to_string(),
                    description: s.description.clone(),
                    input_schema: s.input_schema.clone(),
                    output_schema: s.output_schema.clone(),
                    enabled: p.enabled,
                })
                .collect::<Vec<_>>()
        })
        .collect()
}
