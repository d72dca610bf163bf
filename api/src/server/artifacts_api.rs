//! Step artifacts: what a plugin emitted with `host.emit-artifact`, listed
//! per step and downloaded by name. The engine stores the metadata (with
//! the bytes' sha256) in `artifact` and the bytes by reference in
//! `artifact_blob`; this module only reads them.

use super::auth::BearerAuth;
use super::envelope::{ApiResult, ok, path_id};
use super::views::artifact_view;
use poem_openapi::param::{Path, Query};
use poem_openapi::payload::{Binary, Json};
use poem_openapi::{ApiResponse, OpenApi, Tags};
use weft_api_types::{ArtifactView, Envelope};
use weft_engine::{Artifact, Engine};
use weft_model::{RunId, StepKey};

#[derive(Tags)]
enum Tag {
    /// Start, watch and control workflow runs.
    WorkflowRuns,
}

#[derive(ApiResponse)]
enum Download {
    /// The artifact's bytes. `Content-Type` is the media type the plugin
    /// declared (`application/octet-stream` when it is not a valid one).
    #[oai(status = 200)]
    Bytes(
        Binary<Vec<u8>>,
        /// The artifact's media type.
        #[oai(header = "Content-Type")]
        String,
        /// `attachment` with the artifact's name: browsers download rather than render it.
        #[oai(header = "Content-Disposition")]
        String,
        /// `"sha256:<hex>"` when the digest is stored.
        #[oai(header = "ETag")]
        Option<String>,
        /// Always `nosniff`: plugin-chosen bytes are never content-sniffed.
        #[oai(header = "X-Content-Type-Options")]
        String,
    ),
}

/// Artifact endpoints.
pub struct ArtifactsApi {
    /// The engine.
    pub engine: Engine,
}

#[OpenApi]
impl ArtifactsApi {
    /// A step's artifacts, by attempt then name.
    #[oai(
        path = "/workflow-runs/:id/steps/:step_id/artifacts",
        method = "get",
        tag = "Tag::WorkflowRuns",
        operation_id = "listStepArtifacts"
    )]
    async fn list(
        &self,
        auth: BearerAuth,
        id: Path<String>,
        step_id: Path<String>,
    ) -> ApiResult<Json<Envelope<Vec<ArtifactView>>>> {
        let id: RunId = path_id(&id, "run")?;
        let step_id: StepKey = path_id(&step_id, "step")?;
        let entries = self.engine.artifacts(&auth.0, &id, &step_id).await?;
        Ok(ok(entries.into_iter().map(artifact_view).collect()))
    }

    /// Downloads an artifact: of the latest attempt that emitted this
    /// name, or of `attempt`. The response carries the artifact's own
    /// media type.
    #[oai(
        path = "/workflow-runs/:id/steps/:step_id/artifacts/:name",
        method = "get",
        tag = "Tag::WorkflowRuns",
        operation_id = "downloadArtifact"
    )]
    async fn download(
        &self,
        auth: BearerAuth,
        id: Path<String>,
        step_id: Path<String>,
        name: Path<String>,
        #[oai(validator(minimum(value = "1"), maximum(value = "4294967295")))] attempt: Query<
            Option<u32>,
        >,
    ) -> ApiResult<Download> {
        let id: RunId = path_id(&id, "run")?;
        let step_id: StepKey = path_id(&step_id, "step")?;
        let Artifact { entry, data } = self
            .engine
            .artifact(&auth.0, &id, &step_id, &name, attempt.0)
            .await?;
        Ok(Download::Bytes(
            Binary(data),
            safe_media_type(&entry.record.media_type),
            content_disposition(&entry.record.name),
            entry.sha256.map(|h| format!("\"sha256:{h}\"")),
            "nosniff".to_owned(),
        ))
    }
}

/// The plugin's media type if it is a plausible `type/subtype[; params]`
/// that fits in a header, else `application/octet-stream`.
fn safe_media_type(media_type: &str) -> String {
    let essence = media_type.split(';').next().unwrap_or_default().trim();
    let token = |s: &str| {
        !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$&-^_.+".contains(&b))
    };
    let valid = media_type.len() <= 255
        && media_type.bytes().all(|b| (0x20..0x7f).contains(&b))
        && essence
            .split_once('/')
            .is_some_and(|(t, s)| token(t) && token(s));
    if valid {
        media_type.to_owned()
    } else {
        "application/octet-stream".to_owned()
    }
}

/// `attachment; filename*=UTF-8''<name>` (RFC 6266 / RFC 8187), with
/// everything but unreserved characters percent-encoded.
fn content_disposition(name: &str) -> String {
    let mut out = String::from("attachment; filename*=UTF-8''");
    for b in name.bytes() {
        if b.is_ascii_alphanumeric() || b"!#$&+-.^_`|~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::{content_disposition, safe_media_type};

    #[test]
    fn media_types_from_plugins_are_checked() {
        assert_eq!(safe_media_type("text/csv"), "text/csv");
        assert_eq!(
            safe_media_type("text/plain; charset=utf-8"),
            "text/plain; charset=utf-8"
        );
        for bad in [
            "",
            "text",
            "text/",
            "a b/c",
            "text/plain\r\nx: y",
            "tëxt/plain",
        ] {
            assert_eq!(safe_media_type(bad), "application/octet-stream", "{bad:?}");
        }
    }

    #[test]
    fn file_names_are_percent_encoded() {
        assert_eq!(
            content_disposition("report.txt"),
            "attachment; filename*=UTF-8''report.txt"
        );
        assert_eq!(
            content_disposition("a b\"é.csv"),
            "attachment; filename*=UTF-8''a%20b%22%C3%A9.csv"
        );
    }
}
