//! `plugins` and `step-types` endpoints.

use super::auth::BearerAuth;
use super::envelope::{self, ApiError, ApiResult, ok};
use super::runs_api::{default_page, default_page_size};
use super::views::plugin_view;
use poem_openapi::param::{Path, Query};
use poem_openapi::payload::{Binary, Json};
use poem_openapi::{ApiResponse, OpenApi, Tags};
use weft_api_types::{
    EnablePluginRequest, Envelope, Maybe, PluginHealthView, PluginView, StepTypeView, Text,
};
use weft_engine::{Engine, PageRequest, StepTypeEntry};
use weft_model::{CapabilityGrants, DirectoryGrant, PluginDigest};

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
    fn entry(&self, auth: &BearerAuth, id: &str) -> ApiResult<weft_engine::PluginEntry> {
        self.engine
            .plugin(&auth.0, &digest(id)?)?
            .ok_or_else(|| ApiError::not_found(format!("plugin {id} not found")))
    }
}

/// A list field's strings (none when it was left out).
fn texts(field: Maybe<Vec<Text>>) -> Vec<String> {
    field.or_default().into_iter().map(String::from).collect()
}

fn digest(id: &str) -> ApiResult<PluginDigest> {
    PluginDigest::parse(id).map_err(|_| ApiError::not_found(format!("plugin {id} not found")))
}

#[OpenApi]
impl PluginsApi {
    /// Installs a plugin: the body is the component's `.wasm` bytes.
    #[oai(
        path = "/plugins",
        method = "post",
        tag = "Tag::Plugins",
        operation_id = "installPlugin"
    )]
    async fn install(&self, auth: BearerAuth, body: Binary<Vec<u8>>) -> ApiResult<Created> {
        let entry = self.engine.install_plugin(&auth.0, &body.0, true).await?;
        let location = format!("/api/v1/plugins/{}", entry.digest);
        Ok(Created::Created(ok(plugin_view(entry)), location))
    }

    /// Lists installed plugins by name and version, a page at a time.
    #[oai(
        path = "/plugins",
        method = "get",
        tag = "Tag::Plugins",
        operation_id = "listPlugins"
    )]
    async fn list(
        &self,
        auth: BearerAuth,
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
    ) -> ApiResult<Json<Envelope<Vec<PluginView>>>> {
        let req = PageRequest::new(page.0, page_size.0);
        let p = self.engine.list_plugins(&auth.0, req)?;
        Ok(envelope::paged(p, req, plugin_view))
    }

    /// One plugin by id (`sha256:…`).
    #[oai(
        path = "/plugins/:id",
        method = "get",
        tag = "Tag::Plugins",
        operation_id = "getPlugin"
    )]
    async fn get(
        &self,
        auth: BearerAuth,
        id: Path<String>,
    ) -> ApiResult<Json<Envelope<PluginView>>> {
        let e = self.entry(&auth, &id)?;
        Ok(ok(plugin_view(e)))
    }

    /// Uninstalls a plugin: removes it from the registry, the host and the
    /// store, and returns what was removed. Refused with 409 while an
    /// unfinished run (PENDING, RUNNING, PAUSED, AWAITING_INPUT) pinned it;
    /// the error's `details.activeRuns` lists them. Templates that use it
    /// are kept and fail validation (unknown step type) at their next run.
    #[oai(
        path = "/plugins/:id",
        method = "delete",
        tag = "Tag::Plugins",
        operation_id = "deletePlugin"
    )]
    async fn delete(
        &self,
        auth: BearerAuth,
        id: Path<String>,
    ) -> ApiResult<Json<Envelope<PluginView>>> {
        let e = self.entry(&auth, &id)?;
        Ok(ok(plugin_view(
            self.engine.uninstall_plugin(&auth.0, &e.digest).await?,
        )))
    }

    /// Enables a plugin with the given capability grants.
    #[oai(
        path = "/plugins/:id/enable",
        method = "post",
        tag = "Tag::Plugins",
        operation_id = "enablePlugin"
    )]
    async fn enable(
        &self,
        auth: BearerAuth,
        id: Path<String>,
        body: Json<EnablePluginRequest>,
    ) -> ApiResult<Json<Envelope<PluginView>>> {
        let mut hosts = Vec::new();
        let mut problems = Vec::new();
        let body = body.0;
        for (i, h) in body.outbound_hosts.0.iter().flatten().enumerate() {
            match weft_model::HostPattern::parse(h) {
                Ok(p) => hosts.push(p),
                Err(e) => problems.push(weft_api_types::ValidationError {
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
        let digest = digest(&id)?;
        let directories = match body.directories.0 {
            Some(dirs) => dirs
                .into_iter()
                .map(|d| DirectoryGrant {
                    guest_path: d.guest_path.0,
                    host_path: d.host_path.0.into(),
                    read_only: d.read_only.unwrap_or(true),
                })
                .collect(),
            None => self
                .engine
                .plugin(&auth.0, &digest)?
                .map(|e| e.grants.directories)
                .unwrap_or_default(),
        };
        let grants = CapabilityGrants {
            outbound_hosts: hosts,
            env: texts(body.env),
            secrets: texts(body.secrets),
            directories,
        };
        let entry = self
            .engine
            .set_plugin_state(&auth.0, &digest, true, grants)
            .await?;
        Ok(ok(plugin_view(entry)))
    }

    /// Disables a plugin: new runs cannot use it; running ones finish.
    #[oai(
        path = "/plugins/:id/disable",
        method = "post",
        tag = "Tag::Plugins",
        operation_id = "disablePlugin"
    )]
    async fn disable(
        &self,
        auth: BearerAuth,
        id: Path<String>,
    ) -> ApiResult<Json<Envelope<PluginView>>> {
        let e = self.entry(&auth, &id)?;
        Ok(ok(plugin_view(
            self.engine
                .set_plugin_state(&auth.0, &e.digest, false, e.grants)
                .await?,
        )))
    }

    /// Whether a plugin is loaded and enabled.
    #[oai(
        path = "/plugins/:id/health",
        method = "get",
        tag = "Tag::Plugins",
        operation_id = "getPluginHealth"
    )]
    async fn health(
        &self,
        auth: BearerAuth,
        id: Path<String>,
    ) -> ApiResult<Json<Envelope<PluginHealthView>>> {
        let e = self.entry(&auth, &id)?;
        Ok(ok(PluginHealthView {
            status: if e.enabled { "OK" } else { "DISABLED" }.into(),
        }))
    }

    /// Lists step types of installed plugins (by plugin name and version,
    /// then as each plugin declares them), a page at a time.
    #[oai(
        path = "/step-types",
        method = "get",
        tag = "Tag::StepTypes",
        operation_id = "listStepTypes"
    )]
    async fn step_types(
        &self,
        auth: BearerAuth,
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
    ) -> ApiResult<Json<Envelope<Vec<StepTypeView>>>> {
        let req = PageRequest::new(page.0, page_size.0);
        let p = self.engine.list_step_types(&auth.0, req)?;
        Ok(envelope::paged(p, req, step_type_view))
    }

    /// One step type, e.g. `core/fibo` (URL-encode the slash as `%2F`) or `core.fibo`.
    #[oai(
        path = "/step-types/:ty",
        method = "get",
        tag = "Tag::StepTypes",
        operation_id = "getStepType"
    )]
    async fn step_type(
        &self,
        auth: BearerAuth,
        ty: Path<String>,
    ) -> ApiResult<Json<Envelope<StepTypeView>>> {
        let wanted = ty.0.replacen('.', "/", 1);
        self.engine
            .step_type(&auth.0, &wanted)?
            .map(|s| ok(step_type_view(s)))
            .ok_or_else(|| ApiError::not_found(format!("step type {} not found", ty.0)))
    }
}

fn step_type_view(s: StepTypeEntry) -> StepTypeView {
    StepTypeView {
        ty: s.full_name(),
        plugin: s.plugin,
        version: s.version,
        plugin_id: s.plugin_id.to_string(),
        description: s.step.description,
        input_schema: s.step.input_schema,
        output_schema: s.step.output_schema,
        enabled: s.enabled,
    }
}
