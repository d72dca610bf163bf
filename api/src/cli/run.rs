//! `weft run <template>`: builds the inputs, starts the run, and with
//! `--follow` watches it to the end (see [`super::follow`]).

use super::client::{Client, decode, with_json};
use super::output::{dim, print_json};
use super::runs::declares_string;
use super::{RunArgs, follow, object_with_pairs, parse_object, read_source};
use anyhow::{Context, Result};
use reqwest::Method;
use serde::Deserialize;
use serde_json::Value;
use std::io::IsTerminal;
use weft_api_types::{JsonObject, Maybe, RunView, StartRunBody, TemplateView};
use weft_model::WorkflowTemplate;

/// Runs `weft run`.
pub async fn execute(client: &Client, args: RunArgs, json: bool) -> Result<i32> {
    let base = match (&args.inputs_json, &args.inputs_file) {
        (Some(j), _) => {
            Some(serde_json::from_str::<Value>(j).context("--inputs-json is not valid JSON")?)
        }
        (None, Some(f)) => {
            let (name, bytes) = read_source(f)?;
            Some(parse_object(&name, &bytes)?)
        }
        (None, None) => None,
    };
    let schema = if args.inputs.is_empty() {
        Value::Null
    } else {
        input_schema(client, &args.template).await
    };
    let inputs = object_with_pairs(base, &args.inputs, |k| declares_string(&schema, k))
        .context("the inputs must be a JSON object")?;
    let mut req = client.request(Method::POST, client.url(&["workflow-runs"]));
    if let Some(key) = &args.idempotency_key {
        req = req.header("Idempotency-Key", key);
    }
    let body = serde_json::to_value(StartRunBody {
        template: args.template.clone().into(),
        inputs: Maybe(Some(JsonObject(match inputs {
            Value::Object(m) => m,
            other => anyhow::bail!("inputs must be an object, not {other}"),
        }))),
    })?;
    let run = client.send(with_json(req, &body)?).await?.data();
    let id = decode::<RunView>(&run)?.id;
    if args.follow {
        return follow::run_to_end(client, &id, json).await;
    }
    if json {
        print_json(&run);
    } else {
        // Only the id on stdout, so `RUN=$(weft run …)` works.
        outln!("{id}");
        if std::io::stderr().is_terminal() {
            eprintln!(
                "{}",
                dim(&format!(
                    "started; follow it with: weft runs logs {id} --follow   (or: weft runs show {id})"
                ))
            );
        }
    }
    Ok(0)
}

/// The template's `inputs` schema, to keep string inputs strings (`-i
/// zip=01234`, `-i id=42`); when it cannot be read, values fall back to
/// "JSON if it parses" and the server reports any real problem.
async fn input_schema(client: &Client, template: &str) -> Value {
    client
        .get(&["workflow-templates", template], &[])
        .await
        .ok()
        .and_then(|t| decode::<TemplateView>(&t).ok())
        .and_then(|t| WorkflowTemplate::deserialize(&t.body).ok())
        .and_then(|spec| spec.inputs)
        .unwrap_or_default()
}
