//! The API document as served: poem-openapi's, plus what it cannot
//! express: OpenAPI links, closed request bodies, and the rules of headers
//! the handlers check themselves (so their errors keep their own codes).
//! A link says which response value feeds which operation's parameter
//! (the template a create returned, to get, update or delete it), so
//! generated clients and stateful testers (schemathesis) can follow real
//! ids instead of guessing them.

use serde_json::{Map, Value, json};

/// One link: from a successful response of `from` to the operation `to`,
/// each parameter taken from a runtime expression.
struct Link {
    from: &'static str,
    to: &'static str,
    parameters: &'static [(&'static str, &'static str)],
    /// Fields of the target's JSON body, each a runtime expression.
    body: &'static [(&'static str, &'static str)],
}

/// No request body from the link.
const NO_BODY: &[(&str, &str)] = &[];

/// The id of a single created or read object.
const DATA_ID: &[(&str, &str)] = &[("id", "$response.body#/data/id")];
/// The id of the first object of a list.
const FIRST_ID: &[(&str, &str)] = &[("id", "$response.body#/data/0/id")];
/// The run in the request's path and the first step of the response.
const FIRST_STEP: &[(&str, &str)] = &[
    ("id", "$request.path.id"),
    ("step_id", "$response.body#/data/0/key"),
];
/// The template in the request's path and the revision just read.
const SAME_TEMPLATE_AT_REVISION: &[(&str, &str)] = &[
    ("id", "$request.path.id"),
    ("If-Match", "$response.header.ETag"),
];
/// The template just created and its first revision.
const CREATED_TEMPLATE_AT_REVISION: &[(&str, &str)] = &[
    ("id", "$response.body#/data/id"),
    ("If-Match", "$response.header.ETag"),
];

/// Every link of the document. Streams (`streamRun`, `listRunEvents`,
/// step logs as SSE) are left out: following them from a live run would
/// hold the connection until the run ends.
const LINKS: &[Link] = &[
    // Templates.
    Link {
        from: "createTemplate",
        to: "getTemplate",
        parameters: DATA_ID,
        body: NO_BODY,
    },
    Link {
        from: "createTemplate",
        to: "updateTemplate",
        parameters: CREATED_TEMPLATE_AT_REVISION,
        body: NO_BODY,
    },
    Link {
        from: "createTemplate",
        to: "deleteTemplate",
        parameters: DATA_ID,
        body: NO_BODY,
    },
    Link {
        from: "createTemplate",
        to: "listTemplateRevisions",
        parameters: DATA_ID,
        body: NO_BODY,
    },
    Link {
        from: "createTemplate",
        to: "validateStoredTemplate",
        parameters: DATA_ID,
        body: NO_BODY,
    },
    Link {
        from: "getTemplate",
        to: "updateTemplate",
        parameters: SAME_TEMPLATE_AT_REVISION,
        body: NO_BODY,
    },
    Link {
        from: "listTemplates",
        to: "getTemplate",
        parameters: FIRST_ID,
        body: NO_BODY,
    },
    // A run of the template just created, listed or read.
    Link {
        from: "createTemplate",
        to: "startRun",
        parameters: &[],
        body: &[("template", "$response.body#/data/id")],
    },
    Link {
        from: "listTemplates",
        to: "startRun",
        parameters: &[],
        body: &[("template", "$response.body#/data/0/id")],
    },
    Link {
        from: "getTemplate",
        to: "startRun",
        parameters: &[],
        body: &[("template", "$request.path.id")],
    },
    // Runs.
    Link {
        from: "startRun",
        to: "getRun",
        parameters: DATA_ID,
        body: NO_BODY,
    },
    Link {
        from: "startRun",
        to: "cancelRun",
        parameters: DATA_ID,
        body: NO_BODY,
    },
    Link {
        from: "startRun",
        to: "pauseRun",
        parameters: DATA_ID,
        body: NO_BODY,
    },
    Link {
        from: "startRun",
        to: "resumeRun",
        parameters: DATA_ID,
        body: NO_BODY,
    },
    Link {
        from: "startRun",
        to: "listRunSteps",
        parameters: DATA_ID,
        body: NO_BODY,
    },
    Link {
        from: "startRun",
        to: "answerRunInput",
        parameters: DATA_ID,
        body: NO_BODY,
    },
    Link {
        from: "listRuns",
        to: "getRun",
        parameters: FIRST_ID,
        body: NO_BODY,
    },
    Link {
        from: "listRuns",
        to: "listRunSteps",
        parameters: FIRST_ID,
        body: NO_BODY,
    },
    Link {
        from: "listRunSteps",
        to: "getRunStep",
        parameters: FIRST_STEP,
        body: NO_BODY,
    },
    Link {
        from: "listRunSteps",
        to: "listStepAttempts",
        parameters: FIRST_STEP,
        body: NO_BODY,
    },
    Link {
        from: "listRunSteps",
        to: "listStepArtifacts",
        parameters: FIRST_STEP,
        body: NO_BODY,
    },
    // Plugins and their step types.
    Link {
        from: "installPlugin",
        to: "getPlugin",
        parameters: DATA_ID,
        body: NO_BODY,
    },
    Link {
        from: "installPlugin",
        to: "getPluginHealth",
        parameters: DATA_ID,
        body: NO_BODY,
    },
    Link {
        from: "installPlugin",
        to: "disablePlugin",
        parameters: DATA_ID,
        body: NO_BODY,
    },
    Link {
        from: "installPlugin",
        to: "enablePlugin",
        parameters: DATA_ID,
        body: NO_BODY,
    },
    Link {
        from: "installPlugin",
        to: "deletePlugin",
        parameters: DATA_ID,
        body: NO_BODY,
    },
    Link {
        from: "listPlugins",
        to: "getPlugin",
        parameters: FIRST_ID,
        body: NO_BODY,
    },
    Link {
        from: "listPlugins",
        to: "getPluginHealth",
        parameters: FIRST_ID,
        body: NO_BODY,
    },
    Link {
        from: "listStepTypes",
        to: "getStepType",
        parameters: &[("ty", "$response.body#/data/0/type")],
        body: NO_BODY,
    },
];

/// `spec` (poem-openapi's JSON document) with [`LINKS`] added to the 2xx
/// response of each link's source operation.
///
/// # Errors
/// When `spec` is not JSON, or a link names an operation the document
/// does not have (a renamed handler), so a stale table fails at start-up
/// and in tests rather than serving a link to nowhere.
pub fn with_links(spec: &str) -> Result<String, String> {
    let mut doc: Value = serde_json::from_str(spec).map_err(|e| format!("API document: {e}"))?;
    add_links(&mut doc, LINKS)?;
    describe_idempotency_key(&mut doc);
    close_request_bodies(&mut doc);
    serde_json::to_string(&doc).map_err(|e| format!("API document: {e}"))
}

/// Request bodies that refuse unknown fields (poem-openapi's
/// `deny_unknown_fields`, which its schemas do not show).
const CLOSED_BODIES: &[&str] = &[
    "StartRunBody",
    "AnswerBody",
    "EnablePluginRequest",
    "DirectoryGrantBody",
    "ConnectionBody",
    "StreamSelectionBody",
    "ScheduleBody",
    "SyncJobBody",
    "ActivateBody",
    "StreamStateBody",
    "SyncStateBody",
];

fn close_request_bodies(doc: &mut Value) {
    for name in CLOSED_BODIES {
        if let Some(schema) = doc["components"]["schemas"]
            .get_mut(*name)
            .and_then(Value::as_object_mut)
        {
            schema.insert("additionalProperties".into(), Value::Bool(false));
        }
    }
}

/// `Idempotency-Key` as `check_idempotency_key` accepts it: 1 to 255
/// printable ASCII characters. Its ends are not spaces, as HTTP trims those.
fn describe_idempotency_key(doc: &mut Value) {
    let Some(paths) = doc["paths"].as_object_mut() else {
        return;
    };
    let params = paths
        .values_mut()
        .filter_map(Value::as_object_mut)
        .flat_map(|ops| ops.values_mut())
        .filter_map(|op| op.get_mut("parameters").and_then(Value::as_array_mut))
        .flatten()
        .filter(|p| p["name"] == "Idempotency-Key");
    for p in params {
        p["schema"] = json!({
            "type": "string",
            "minLength": 1,
            "maxLength": 255,
            "pattern": "^[!-~]([ -~]*[!-~])?$"
        });
    }
}

fn add_links(doc: &mut Value, table: &[Link]) -> Result<(), String> {
    let operations = operation_ids(doc);
    for link in table {
        let Some((_, to_path, to_method)) = operations.iter().find(|(id, _, _)| id == link.to)
        else {
            return Err(format!("link target {} is not an operation", link.to));
        };
        let target = &doc["paths"][to_path.as_str()][to_method.as_str()];
        for (name, _) in link.parameters {
            let known = target["parameters"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|p| p["name"] == *name);
            if !known {
                return Err(format!("{} has no parameter {name}", link.to));
            }
        }
        let Some((_, path, method)) = operations.iter().find(|(id, _, _)| id == link.from) else {
            return Err(format!("link source {} is not an operation", link.from));
        };
        let responses = doc["paths"][path.as_str()][method.as_str()]["responses"]
            .as_object_mut()
            .ok_or_else(|| format!("{} has no responses", link.from))?;
        let (_, success) = responses
            .iter_mut()
            .find(|(status, _)| status.starts_with('2'))
            .ok_or_else(|| format!("{} has no 2xx response", link.from))?;
        let links = success
            .as_object_mut()
            .ok_or_else(|| format!("{} has a malformed response", link.from))?
            .entry("links")
            .or_insert_with(|| json!({}));
        let mut entry =
            json!({ "operationId": link.to, "parameters": expressions(link.parameters) });
        if !link.body.is_empty() {
            entry["requestBody"] = expressions(link.body);
        }
        links[link.to] = entry;
    }
    Ok(())
}

/// `name: expression` pairs as a JSON object.
fn expressions(pairs: &[(&str, &str)]) -> Value {
    Value::Object(
        pairs
            .iter()
            .map(|(name, expr)| ((*name).to_owned(), json!(expr)))
            .collect::<Map<String, Value>>(),
    )
}

/// `(operationId, path, method)` of every operation of `doc`.
fn operation_ids(doc: &Value) -> Vec<(String, String, String)> {
    let mut out = Vec::new();
    for (path, ops) in doc["paths"].as_object().into_iter().flatten() {
        for (method, op) in ops.as_object().into_iter().flatten() {
            if let Some(id) = op["operationId"].as_str() {
                out.push((id.to_owned(), path.clone(), method.clone()));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::expect_used)]
    use super::*;

    fn doc() -> Value {
        json!({"paths": {
            "/t": {"post": {"operationId": "createTemplate", "responses": {"201": {}, "400": {}}}},
            "/t/{id}": {"get": {
                "operationId": "getTemplate",
                "parameters": [{"name": "id", "in": "path"}],
                "responses": {"200": {}}
            }}
        }})
    }

    #[test]
    fn links_land_on_the_success_response_of_their_source() {
        let table = [Link {
            from: "createTemplate",
            to: "getTemplate",
            parameters: DATA_ID,
            body: NO_BODY,
        }];
        let mut out = doc();
        add_links(&mut out, &table).expect("linked");
        let responses = &out["paths"]["/t"]["post"]["responses"];
        assert_eq!(
            responses["201"]["links"]["getTemplate"],
            json!({"operationId": "getTemplate", "parameters": {"id": "$response.body#/data/id"}})
        );
        assert!(responses["400"]["links"].is_null());
    }

    #[test]
    fn links_to_unknown_operations_or_parameters_are_errors() {
        let to_nowhere = [Link {
            from: "createTemplate",
            to: "getRun",
            parameters: DATA_ID,
            body: NO_BODY,
        }];
        let err = add_links(&mut doc(), &to_nowhere).expect_err("no getRun");
        assert!(err.contains("is not an operation"), "{err}");
        let bad_param = [Link {
            from: "createTemplate",
            to: "getTemplate",
            parameters: FIRST_STEP,
            body: NO_BODY,
        }];
        let err = add_links(&mut doc(), &bad_param).expect_err("no step_id");
        assert!(err.contains("no parameter step_id"), "{err}");
    }
}
