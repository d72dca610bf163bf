//! A job's streams against the source's catalog: checking selections,
//! building the configured streams, and what changed since.

use serde_json::Value;
use weft_model::{
    Catalog, ConfigProblem, ConfigProblemCode, ConfiguredStream, DestinationSpec, StreamSelection,
    SyncMode, WriteMode,
};

/// How a source's catalog moved away from what a job was configured with.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CatalogDiff {
    /// Streams the source has that the job does not sync.
    pub added_streams: Vec<String>,
    /// Streams the job syncs that the source no longer has.
    pub removed_streams: Vec<String>,
    /// Column changes of streams both have.
    pub changed_streams: Vec<StreamDiff>,
}

/// Column changes of one stream.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StreamDiff {
    /// The stream.
    pub stream: String,
    /// Columns the source has now that the job's schema does not.
    pub added_fields: Vec<String>,
    /// Columns of the job's schema the source no longer has.
    pub removed_fields: Vec<String>,
}

/// The fields of a stream schema's `properties`, in order.
fn fields_of(schema: &Value) -> Vec<String> {
    schema
        .get("properties")
        .and_then(Value::as_object)
        .map(|p| p.keys().cloned().collect())
        .unwrap_or_default()
}

/// `schema` with only `fields` among its properties (and `required`).
fn restrict(schema: &Value, fields: &[String]) -> Value {
    let mut out = schema.clone();
    if let Some(props) = out.get_mut("properties").and_then(Value::as_object_mut) {
        props.retain(|k, _| fields.contains(k));
    }
    if let Some(req) = out.get_mut("required").and_then(Value::as_array_mut) {
        req.retain(|f| f.as_str().is_some_and(|f| fields.iter().any(|x| x == f)));
    }
    out
}

/// Checks each selection against the catalog and the destination and
/// builds the configured streams, or every problem found.
pub(crate) fn configure_streams(
    catalog: &Catalog,
    destination: &DestinationSpec,
    selections: &[StreamSelection],
) -> Result<Vec<ConfiguredStream>, Vec<ConfigProblem>> {
    use ConfigProblemCode as C;
    let mut problems = Vec::new();
    let mut out = Vec::new();
    if selections.is_empty() {
        problems.push(ConfigProblem::new(
            "/streams",
            C::UnknownStream,
            format!(
                "select at least one stream; the source has {:?}",
                catalog.streams.iter().map(|s| &s.name).collect::<Vec<_>>()
            ),
        ));
    }
    for (i, sel) in selections.iter().enumerate() {
        let at = |f: &str| format!("/streams/{i}{f}");
        if selections[..i]
            .iter()
            .any(|o| o.name == sel.name && o.namespace == sel.namespace)
        {
            problems.push(ConfigProblem::new(
                at("/name"),
                C::DuplicateStream,
                format!("stream {:?} is selected twice", sel.name),
            ));
            continue;
        }
        let Some(info) = catalog.stream(&sel.name, sel.namespace.as_deref()) else {
            problems.push(ConfigProblem::new(
                at("/name"),
                C::UnknownStream,
                format!(
                    "the source has no stream {:?}; it has {:?}",
                    sel.name,
                    catalog.streams.iter().map(|s| &s.name).collect::<Vec<_>>()
                ),
            ));
            continue;
        };
        let all = fields_of(&info.json_schema);
        let fields = sel.fields.clone().unwrap_or_default();
        for (j, f) in fields.iter().enumerate() {
            if !all.contains(f) {
                problems.push(ConfigProblem::new(
                    at(&format!("/fields/{j}")),
                    C::UnknownField,
                    format!("stream {:?} has no column {f:?}; it has {all:?}", sel.name),
                ));
            }
        }
        let known = |f: &String| all.is_empty() || all.contains(f);
        if !info.sync_modes.contains(&sel.sync_mode) {
            problems.push(ConfigProblem::new(
                at("/syncMode"),
                C::UnsupportedSyncMode,
                format!(
                    "stream {:?} can be read {:?}, not {:?}",
                    sel.name, info.sync_modes, sel.sync_mode
                ),
            ));
        }
        if !destination.write_modes.contains(&sel.write_mode) {
            problems.push(ConfigProblem::new(
                at("/writeMode"),
                C::UnsupportedWriteMode,
                format!(
                    "the destination writes {:?}, not {:?}",
                    destination.write_modes, sel.write_mode
                ),
            ));
        }
        let cursor = sel
            .cursor_field
            .clone()
            .or_else(|| info.cursor_candidates.first().cloned());
        // Without a cursor column the source keeps its own position
        // (file offsets, a change log), as Airbyte's source-defined cursors.
        if sel.sync_mode == SyncMode::Incremental
            && let Some(c) = &cursor
            && !known(c)
        {
            problems.push(ConfigProblem::new(
                at("/cursorField"),
                C::UnknownField,
                format!("stream {:?} has no column {c:?}", sel.name),
            ));
        }
        let primary_key = sel
            .primary_key
            .clone()
            .or_else(|| info.primary_key_candidates.first().cloned())
            .unwrap_or_default();
        for (j, f) in primary_key.iter().enumerate() {
            if !known(f) {
                problems.push(ConfigProblem::new(
                    at(&format!("/primaryKey/{j}")),
                    C::UnknownField,
                    format!("stream {:?} has no column {f:?}", sel.name),
                ));
            }
        }
        if sel.write_mode == WriteMode::Upsert && primary_key.is_empty() {
            problems.push(ConfigProblem::new(
                at("/primaryKey"),
                C::MissingPrimaryKey,
                format!("upsert needs a primary key for stream {:?}", sel.name),
            ));
        }
        // The cursor and key must reach the destination even when not selected.
        let mut selected = fields.clone();
        if !selected.is_empty() {
            for f in cursor.iter().chain(primary_key.iter()) {
                if !selected.contains(f) {
                    selected.push(f.clone());
                }
            }
        }
        out.push(ConfiguredStream {
            name: info.name.clone(),
            namespace: info.namespace.clone(),
            json_schema: if selected.is_empty() {
                info.json_schema.clone()
            } else {
                restrict(&info.json_schema, &selected)
            },
            fields: selected,
            sync_mode: sel.sync_mode,
            cursor_field: cursor.filter(|_| sel.sync_mode == SyncMode::Incremental),
            primary_key,
            write_mode: sel.write_mode,
        });
    }
    if problems.is_empty() {
        Ok(out)
    } else {
        Err(problems)
    }
}

/// Checks that every configured stream and column is still in the catalog.
pub(crate) fn check_streams_exist(
    catalog: &Catalog,
    streams: &[ConfiguredStream],
) -> Result<(), Vec<ConfigProblem>> {
    let d = diff(catalog, streams);
    let mut problems: Vec<ConfigProblem> = d
        .removed_streams
        .iter()
        .map(|s| {
            ConfigProblem::new(
                "/streams",
                ConfigProblemCode::UnknownStream,
                format!("the source no longer has stream {s:?}; update the job"),
            )
        })
        .collect();
    for c in &d.changed_streams {
        for f in &c.removed_fields {
            problems.push(ConfigProblem::new(
                "/streams",
                ConfigProblemCode::UnknownField,
                format!(
                    "stream {:?} no longer has column {f:?}; update the job",
                    c.stream
                ),
            ));
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems)
    }
}

pub(crate) fn diff(catalog: &Catalog, streams: &[ConfiguredStream]) -> CatalogDiff {
    let mut d = CatalogDiff {
        added_streams: catalog
            .streams
            .iter()
            .filter(|s| {
                !streams
                    .iter()
                    .any(|c| c.name == s.name && c.namespace == s.namespace)
            })
            .map(|s| s.name.clone())
            .collect(),
        ..CatalogDiff::default()
    };
    for c in streams {
        let Some(now) = catalog.stream(&c.name, c.namespace.as_deref()) else {
            d.removed_streams.push(c.name.clone());
            continue;
        };
        let then = fields_of(&c.json_schema);
        let now = fields_of(&now.json_schema);
        let added: Vec<String> = now.iter().filter(|f| !then.contains(f)).cloned().collect();
        let removed: Vec<String> = then.iter().filter(|f| !now.contains(f)).cloned().collect();
        if !added.is_empty() || !removed.is_empty() {
            d.changed_streams.push(StreamDiff {
                stream: c.name.clone(),
                added_fields: added,
                removed_fields: removed,
            });
        }
    }
    d
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use serde_json::json;
    use weft_model::{Delivery, StreamInfo};

    fn catalog() -> Catalog {
        Catalog {
            streams: vec![StreamInfo {
                name: "users".into(),
                namespace: None,
                json_schema: json!({"type": "object", "properties": {
                    "id": {"type": "integer"}, "name": {"type": "string"}, "at": {"type": "string"}
                }, "required": ["id", "name"]}),
                sync_modes: vec![SyncMode::FullRefresh, SyncMode::Incremental],
                cursor_candidates: vec!["at".into()],
                primary_key_candidates: vec![vec!["id".into()]],
                estimated_rows: None,
            }],
        }
    }

    fn dest() -> DestinationSpec {
        DestinationSpec {
            config_schema: json!({}),
            secret_fields: vec![],
            formats: vec![],
            write_modes: vec![WriteMode::Append, WriteMode::Overwrite],
            delivery: Delivery::ExactlyOnce,
        }
    }

    fn select(name: &str) -> StreamSelection {
        StreamSelection {
            name: name.into(),
            namespace: None,
            fields: None,
            sync_mode: SyncMode::Incremental,
            cursor_field: None,
            primary_key: None,
            write_mode: WriteMode::Append,
        }
    }

    #[test]
    fn selections_take_the_sources_candidates_and_keep_cursor_and_key_columns() {
        let mut sel = select("users");
        sel.fields = Some(vec!["name".into()]);
        let streams = configure_streams(&catalog(), &dest(), &[sel]).unwrap();
        let s = &streams[0];
        assert_eq!(s.cursor_field.as_deref(), Some("at"));
        assert_eq!(s.primary_key, ["id"]);
        assert_eq!(s.fields, ["name", "at", "id"]);
        assert_eq!(fields_of(&s.json_schema), ["id", "name", "at"]);
        assert_eq!(s.json_schema["required"], json!(["id", "name"]));
    }

    #[test]
    fn every_bad_choice_is_reported_with_its_pointer() {
        let mut bad = select("users");
        bad.fields = Some(vec!["nope".into()]);
        bad.write_mode = WriteMode::Upsert;
        bad.primary_key = Some(vec![]);
        let problems = configure_streams(
            &catalog(),
            &dest(),
            &[bad, select("ghosts"), select("users")],
        )
        .unwrap_err();
        let got: Vec<(&str, ConfigProblemCode)> = problems
            .iter()
            .map(|p| (p.pointer.as_str(), p.code))
            .collect();
        assert_eq!(
            got,
            [
                ("/streams/0/fields/0", ConfigProblemCode::UnknownField),
                (
                    "/streams/0/writeMode",
                    ConfigProblemCode::UnsupportedWriteMode
                ),
                (
                    "/streams/0/primaryKey",
                    ConfigProblemCode::MissingPrimaryKey
                ),
                ("/streams/1/name", ConfigProblemCode::UnknownStream),
                ("/streams/2/name", ConfigProblemCode::DuplicateStream),
            ]
        );
    }

    #[test]
    fn the_diff_names_streams_and_columns_that_came_and_went() {
        let streams = configure_streams(&catalog(), &dest(), &[select("users")]).unwrap();
        let mut now = catalog();
        now.streams[0].json_schema["properties"]
            .as_object_mut()
            .unwrap()
            .remove("name");
        now.streams[0].json_schema["properties"]["email"] = json!({"type": "string"});
        let mut extra = now.streams[0].clone();
        extra.name = "orders".into();
        now.streams.push(extra);
        let d = diff(&now, &streams);
        assert_eq!(d.added_streams, ["orders"]);
        assert_eq!(d.changed_streams[0].added_fields, ["email"]);
        assert_eq!(d.changed_streams[0].removed_fields, ["name"]);
        let problems = check_streams_exist(&now, &streams).unwrap_err();
        assert_eq!(problems[0].code, ConfigProblemCode::UnknownField);
        now.streams.remove(0);
        assert!(
            check_streams_exist(&now, &streams).unwrap_err()[0]
                .message
                .contains("no longer has stream")
        );
    }
}
