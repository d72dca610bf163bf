//! The API document is committed (`api/openapi.json`), so a change to the
//! API shows up in review as a change to that file, and a client generated
//! from it knows every status, kind and level the server can send.
//!
//! After an intended change: `WEFT_BLESS=1 cargo test -p weft-api --test
//! openapi_doc`, then review and commit the new `api/openapi.json`.

#![allow(missing_docs)]

mod support;

use serde_json::Value;
use std::path::Path;
use support::server;

/// The document as served, without the `servers` entry (it names the
/// port this test's server happened to bind).
async fn served_document() -> Value {
    let s = server().await;
    let resp = s
        .call("GET", "/api/v1/openapi.json", &[], None)
        .await
        .unwrap_or_else(|e| panic!("GET openapi.json: {e}"));
    assert_eq!(resp.status, 200, "{}", resp.text());
    let mut doc = resp.json();
    if let Some(o) = doc.as_object_mut() {
        o.remove("servers");
    }
    doc
}

fn enum_of<'a>(doc: &'a Value, schema: &str, field: &str) -> Vec<&'a str> {
    let mut prop = &doc["components"]["schemas"][schema]["properties"][field];
    // An optional enum field is `allOf: [$ref]`; a required one a bare `$ref`.
    if let Some(r) = prop["allOf"][0]["$ref"].as_str().or(prop["$ref"].as_str()) {
        let name = r.rsplit('/').next().unwrap_or_default();
        prop = &doc["components"]["schemas"][name];
    }
    prop["enum"]
        .as_array()
        .map(|v| v.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_document_matches_the_committed_copy() {
    let doc = served_document().await;
    // Statuses, kinds, levels and codes are closed lists a client can check.
    assert!(enum_of(&doc, "RunView", "status").contains(&"AWAITING_INPUT"));
    assert!(enum_of(&doc, "StepView", "status").contains(&"RETRYING"));
    assert!(enum_of(&doc, "EventView", "kind").contains(&"step.retrying"));
    assert!(enum_of(&doc, "LogView", "level").contains(&"progress"));
    assert!(enum_of(&doc, "LogView", "source").contains(&"engine"));
    assert!(enum_of(&doc, "Failure", "code").contains(&"RUN_TIMEOUT"));
    // Every operation is named (generated clients name their methods so),
    // and creating things links to reading them, so a client or a
    // stateful tester can follow real ids.
    for (path, ops) in doc["paths"].as_object().into_iter().flatten() {
        for (method, op) in ops.as_object().into_iter().flatten() {
            assert!(
                op["operationId"].is_string(),
                "{method} {path} has no operationId"
            );
        }
    }
    let created = &doc["paths"]["/workflow-templates"]["post"]["responses"]["201"]["links"];
    assert_eq!(
        created["getTemplate"]["parameters"]["id"],
        "$response.body#/data/id"
    );
    let started = &doc["paths"]["/workflow-runs"]["post"]["responses"]["201"]["links"];
    assert_eq!(started["cancelRun"]["operationId"], "cancelRun");
    assert_eq!(
        doc["components"]["schemas"]["StartRunBody"]["additionalProperties"],
        false
    );
    let listed = &doc["paths"]["/workflow-templates"]["get"]["responses"]["200"]["links"];
    assert_eq!(
        listed["startRun"]["requestBody"]["template"],
        "$response.body#/data/0/id"
    );

    let text = serde_json::to_string_pretty(&doc).unwrap_or_default() + "\n";
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("openapi.json");
    if std::env::var_os("WEFT_BLESS").is_some() {
        std::fs::write(&path, &text).unwrap_or_else(|e| panic!("writing {path:?}: {e}"));
        return;
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    if committed != text {
        let line = committed
            .lines()
            .zip(text.lines())
            .position(|(a, b)| a != b)
            .unwrap_or_else(|| committed.lines().count().min(text.lines().count()));
        let at = |s: &str| s.lines().nth(line).unwrap_or("<end>").to_owned();
        panic!(
            "the API document differs from api/openapi.json at line {}:\n  committed: {}\n  served:    {}\n\
             If the change is intended, run `WEFT_BLESS=1 cargo test -p weft-api --test openapi_doc` \
             and commit api/openapi.json.",
            line + 1,
            at(&committed),
            at(&text)
        );
    }
}
