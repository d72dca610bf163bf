//! Views of what only the server knows: installed plugins (the engine's
//! registry entries) and artifacts (the store's entries). Every other view
//! is built from the domain types in `weft-api-types`.

use weft_api_types::rfc3339_ms;
use weft_api_types::{ArtifactView, PluginView};
use weft_engine::ArtifactEntry;
use weft_engine::PluginEntry;

/// The view of an installed plugin.
pub fn plugin_view(e: PluginEntry) -> PluginView {
    let r = e.manifest.roles;
    let roles = [
        ("step", r.step),
        ("source", r.source),
        ("destination", r.destination),
    ]
    .into_iter()
    .filter(|(_, on)| *on)
    .map(|(n, _)| n.to_owned())
    .collect();
    PluginView {
        id: e.digest.to_string(),
        name: e.manifest.name.clone(),
        version: e.manifest.version.to_string(),
        description: e.manifest.description.clone(),
        enabled: e.enabled,
        roles,
        step_types: e
            .manifest
            .step_types
            .iter()
            .map(|s| s.name.clone())
            .collect(),
        requested: (&e.manifest.requested).into(),
        grants: (&e.grants).into(),
        installed_at: rfc3339_ms(e.installed_at),
    }
}

/// The view of an artifact's metadata.
pub fn artifact_view(a: ArtifactEntry) -> ArtifactView {
    ArtifactView {
        name: a.record.name,
        content_type: a.record.media_type,
        size: a.record.size,
        attempt: a.record.attempt,
        created_at: rfc3339_ms(a.record.at),
        sha256: a.sha256,
    }
}
