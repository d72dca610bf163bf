//! `workflow-templates` endpoints. Bodies are JSON or YAML
//! (`Content-Type: application/yaml`); every update is a new revision,
//! guarded by `If-Match: "<revision>"`.

use super::auth::BearerAuth;
use super::envelope::{self, ApiError, ApiResult, error_body, ok};
use super::runs_api::{default_page, default_page_size};
use poem_openapi::param::{Header, Path, Query};
use poem_openapi::payload::{Binary, Json};
use poem_openapi::{ApiRequest, ApiResponse, OpenApi, Tags};
use serde_json::Value;
use weft_api_types::{Envelope, JsonObject, TemplateRevisionView, TemplateView, ValidationView};
use weft_engine::{Engine, PageRequest};

#[derive(Tags)]
enum Tag {
    /// Workflow templates and their revisions.
    WorkflowTemplates,
}

/// A template body, as JSON or YAML.
#[derive(ApiRequest, Debug)]
pub enum TemplateBody {
    /// JSON.
    #[oai(content_type = "application/json")]
    Json(Json<JsonObject>),
    /// YAML.
    #[oai(content_type = "application/yaml")]
    Yaml(Binary<Vec<u8>>),
}

impl TemplateBody {
    fn into_value(self) -> ApiResult<Value> {
        match self {
            Self::Json(j) => Ok(j.0.into()),
            Self::Yaml(b) => serde_yaml_ng::from_slice::<Value>(&b.0)
                .map_err(|e| ApiError::bad_request(format!("invalid YAML: {e}"))),
        }
    }
}

#[derive(ApiResponse)]
enum Created {
    /// Created.
    #[oai(status = 201)]
    Created(
        Json<Envelope<TemplateView>>,
        #[oai(header = "Location")] String,
        #[oai(header = "ETag")] String,
    ),
}

#[derive(ApiResponse)]
enum WithEtag {
    /// The template.
    #[oai(status = 200)]
    Ok(Json<Envelope<TemplateView>>, #[oai(header = "ETag")] String),
}

/// Template endpoints.
pub struct TemplatesApi {
    /// The engine.
    pub engine: Engine,
}

fn etag(revision: u32) -> String {
    format!("\"{revision}\"")
}

#[OpenApi]
impl TemplatesApi {
    /// Creates a template (revision 1) after validating it.
    #[oai(
        path = "/workflow-templates",
        method = "post",
        tag = "Tag::WorkflowTemplates",
        operation_id = "createTemplate"
    )]
    async fn create(&self, auth: BearerAuth, body: TemplateBody) -> ApiResult<Created> {
        let t = self
            .engine
            .create_template(&auth.0, &body.into_value()?)
            .await?;
        let (location, tag) = (
            format!("/api/v1/workflow-templates/{}", t.template_id),
            etag(t.revision),
        );
        Ok(Created::Created(ok(t.into()), location, tag))
    }

    /// Lists templates by name, a page at a time.
    #[oai(
        path = "/workflow-templates",
        method = "get",
        tag = "Tag::WorkflowTemplates",
        operation_id = "listTemplates"
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
    ) -> ApiResult<Json<Envelope<Vec<TemplateView>>>> {
        let req = PageRequest::new(page.0, page_size.0);
        let p = self.engine.list_templates(&auth.0, req).await?;
        Ok(envelope::paged(p, req, Into::into))
    }

    /// Validates an unsaved template body; problems come back as a 422 with JSON pointers.
    #[oai(
        path = "/workflow-templates/validate",
        method = "post",
        tag = "Tag::WorkflowTemplates",
        operation_id = "validateTemplate"
    )]
    async fn validate_body(
        &self,
        auth: BearerAuth,
        body: TemplateBody,
    ) -> ApiResult<Json<Envelope<ValidationView>>> {
        self.engine
            .validate_template(&auth.0, &body.into_value()?)?;
        Ok(ok(ValidationView { valid: true }))
    }

    /// One template by id or name.
    #[oai(
        path = "/workflow-templates/:id",
        method = "get",
        tag = "Tag::WorkflowTemplates",
        operation_id = "getTemplate"
    )]
    async fn get(&self, auth: BearerAuth, id: Path<String>) -> ApiResult<WithEtag> {
        let t = self.engine.template(&auth.0, &id).await?;
        let tag = etag(t.revision);
        Ok(WithEtag::Ok(ok(t.into()), tag))
    }

    /// Writes a new revision. `If-Match` must carry the current revision's ETag.
    #[oai(
        path = "/workflow-templates/:id",
        method = "put",
        tag = "Tag::WorkflowTemplates",
        operation_id = "updateTemplate"
    )]
    async fn update(
        &self,
        auth: BearerAuth,
        id: Path<String>,
        #[oai(name = "If-Match")] if_match: Header<Option<String>>,
        body: TemplateBody,
    ) -> ApiResult<WithEtag> {
        let current = self.engine.template(&auth.0, &id).await?;
        let expected = match if_match.0.as_deref().map(|s| {
            s.trim()
                .trim_matches('"')
                .trim_start_matches("W/")
                .trim_matches('"')
        }) {
            None => current.revision,
            Some(s) => s
                .parse::<u32>()
                .map_err(|_| precondition(current.revision))?,
        };
        let t = match self
            .engine
            .update_template(&auth.0, &current.template_id, &body.into_value()?, expected)
            .await
        {
            Err(weft_engine::EngineError::RevisionMismatch { current, .. }) => {
                return Err(precondition(current));
            }
            other => other?,
        };
        let tag = etag(t.revision);
        Ok(WithEtag::Ok(ok(t.into()), tag))
    }

    /// Deletes a template; runs keep their pinned revision.
    #[oai(
        path = "/workflow-templates/:id",
        method = "delete",
        tag = "Tag::WorkflowTemplates",
        operation_id = "deleteTemplate"
    )]
    async fn delete(
        &self,
        auth: BearerAuth,
        id: Path<String>,
    ) -> ApiResult<Json<Envelope<TemplateView>>> {
        Ok(ok(self.engine.delete_template(&auth.0, &id).await?.into()))
    }

    /// A template's revisions, oldest first, a page at a time.
    #[oai(
        path = "/workflow-templates/:id/revisions",
        method = "get",
        tag = "Tag::WorkflowTemplates",
        operation_id = "listTemplateRevisions"
    )]
    async fn revisions(
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
            default = "default_page_size",
            validator(minimum(value = "1"), maximum(value = "100"))
        )]
        page_size: Query<u32>,
    ) -> ApiResult<Json<Envelope<Vec<TemplateRevisionView>>>> {
        let req = PageRequest::new(page.0, page_size.0);
        let p = self
            .engine
            .list_template_revisions(&auth.0, &id, req)
            .await?;
        Ok(envelope::paged(p, req, Into::into))
    }

    /// Validates the stored template against the plugins installed now.
    #[oai(
        path = "/workflow-templates/:id/validate",
        method = "post",
        tag = "Tag::WorkflowTemplates",
        operation_id = "validateStoredTemplate"
    )]
    async fn validate_stored(
        &self,
        auth: BearerAuth,
        id: Path<String>,
    ) -> ApiResult<Json<Envelope<ValidationView>>> {
        let t = self.engine.template(&auth.0, &id).await?;
        self.engine.validate_template(&auth.0, &t.body)?;
        Ok(ok(ValidationView { valid: true }))
    }
}

fn precondition(current: u32) -> ApiError {
    ApiError::PreconditionFailed(Json(error_body(
        "PRECONDITION_FAILED",
        format!(
            "If-Match does not match the current revision; the current ETag is {}",
            etag(current)
        ),
    )))
}
