//! `weft runs list|show|logs|cancel|pause|resume|answer`.

use super::client::{Client, decode, with_json};
use super::follow::{self, Console, LogMode, LogPrinter, Options};
use super::output::{self, dim, print_json, shell_quote, status_cell, styled_status};
use super::{RunsCommand, object_with_pairs};
use anyhow::{Context, Result};
use reqwest::Method;
use serde_json::{Value, json};
use std::sync::atomic::AtomicU64;
use weft_api_types::{AnswerBody, RunView, StepView};
use weft_model::{InputRequest, RunStatus, StepStatus};

/// The server the CLI talks to when none is given.
const DEFAULT_SERVER: &str = "http://127.0.0.1:8080";
/// The API's largest page.
const MAX_PAGE: u32 = 100;

/// Runs a `weft runs` command.
pub async fn execute(client: &Client, cmd: RunsCommand, json: bool) -> Result<i32> {
    match cmd {
        RunsCommand::List {
            status,
            template,
            limit,
        } => list(client, status, template, limit, json).await,
        RunsCommand::Show { id } => show(client, &id, json).await,
        RunsCommand::Logs { id, step, follow } => logs(client, &id, step, follow, json).await,
        RunsCommand::Cancel { id } => control(client, &id, "cancel", json).await,
        RunsCommand::Pause { id } => control(client, &id, "pause", json).await,
        RunsCommand::Resume { id } => control(client, &id, "resume", json).await,
        RunsCommand::Answer {
            id,
            step,
            values,
            values_json,
        } => answer(client, &id, step, &values, values_json, json).await,
    }
}

async fn list(
    client: &Client,
    status: Option<String>,
    template: Option<String>,
    limit: u32,
    json: bool,
) -> Result<i32> {
    let page_size = limit.min(MAX_PAGE);
    let mut runs: Vec<Value> = Vec::new();
    let mut total = 0;
    // Pages keep one size, so page N is always the same slice.
    for page in 1.. {
        let mut query = vec![
            ("page", page.to_string()),
            ("pageSize", page_size.to_string()),
        ];
        if let Some(s) = &status {
            query.push(("status", s.clone()));
        }
        if let Some(t) = &template {
            query.push(("template", t.clone()));
        }
        let url = client.url_with_query(&["workflow-runs"], &query);
        let reply = client.send(client.request(Method::GET, url)).await?;
        total = reply
            .meta()
            .and_then(|m| m.pagination)
            .map_or(0, |p| p.total);
        let batch = match reply.data() {
            Value::Array(items) => items,
            _ => Vec::new(),
        };
        let done = batch.len() < page_size as usize;
        runs.extend(batch);
        if done || runs.len() >= limit as usize || runs.len() as u64 >= total {
            break;
        }
    }
    runs.truncate(limit as usize);
    if json {
        print_json(&Value::Array(runs));
        return Ok(0);
    }
    let mut t = output::table(&[
        "ID", "TEMPLATE", "STATUS", "PROGRESS", "CREATED", "DURATION",
    ]);
    for r in &runs {
        let r: RunView = decode(r)?;
        t.add_row(vec![
            r.id.as_str().into(),
            r.template.as_str().into(),
            status_cell(r.status.as_str()),
            progress(&r).into(),
            output::age(&r.created_at).into(),
            output::span(r.started_at.as_deref(), r.ended_at.as_deref()).into(),
        ]);
    }
    output::print_table(
        &t,
        "No runs. Start one with: weft run TEMPLATE -i KEY=VALUE",
    );
    if total > runs.len() as u64 && !runs.is_empty() {
        outln!(
            "{}",
            dim(&format!(
                "{} of {total} runs (--limit shows more)",
                runs.len()
            ))
        );
    }
    Ok(0)
}

fn progress(run: &RunView) -> String {
    format!("{}/{}", run.progress.completed, run.progress.total)
}

async fn show(client: &Client, id: &str, json: bool) -> Result<i32> {
    let mut raw = client.get(&["workflow-runs", id], &[]).await?;
    let raw_steps = client.get_all(&["workflow-runs", id, "steps"]).await?;
    if json {
        if let Some(o) = raw.as_object_mut() {
            o.insert("steps".into(), Value::Array(raw_steps));
        }
        print_json(&raw);
        return Ok(0);
    }
    let run: RunView = decode(&raw)?;
    let steps = raw_steps
        .iter()
        .map(decode)
        .collect::<Result<Vec<StepView>>>()?;
    let field = |name: &str, value: String| outln!("{:<10}{value}", format!("{name}:"));
    field("Run", run.id.clone());
    field(
        "Template",
        format!("{} (revision {})", run.template, run.revision),
    );
    field("Status", styled_status(run.status.as_str()));
    let mut p = format!("{} steps done", progress(&run));
    if !run.progress.running.is_empty() {
        p.push_str(&format!(", running: {}", run.progress.running.join(", ")));
    }
    field("Progress", p);
    field(
        "Created",
        format!("{} ({})", run.created_at, output::age(&run.created_at)),
    );
    field(
        "Duration",
        output::span(run.started_at.as_deref(), run.ended_at.as_deref()),
    );
    field("Inputs", output::compact(&run.inputs, 200));
    if let Some(err) = &run.error {
        field("Error", output::failure_text(err));
    }
    if let Some(outputs) = run.outputs.as_ref().filter(|o| !o.is_null()) {
        let pretty = serde_json::to_string_pretty(outputs).unwrap_or_default();
        field("Outputs", pretty.replace('\n', "\n          "));
    }
    outln!();
    let mut t = output::table(&["STEP", "STATUS", "ATTEMPTS", "DURATION", "DETAIL"]);
    let mut waiting = Vec::new();
    for s in &steps {
        let detail = match s.status {
            StepStatus::Failed | StepStatus::Retrying | StepStatus::Cancelled => s
                .error
                .as_ref()
                .or_else(|| s.last_attempt.as_ref().and_then(|a| a.error.as_ref()))
                .map(output::failure_text)
                .unwrap_or_default(),
            StepStatus::AwaitingInput => match &s.input_request {
                Some(request) => {
                    waiting.push((s.id.as_str(), request));
                    request.prompt.clone()
                }
                None => String::new(),
            },
            StepStatus::Success => output::compact(s.output.as_ref().unwrap_or(&Value::Null), 60),
            _ => String::new(),
        };
        t.add_row(vec![
            s.id.as_str().into(),
            status_cell(s.status.as_str()),
            s.attempt.to_string().into(),
            output::span(s.started_at.as_deref(), s.ended_at.as_deref()).into(),
            detail.into(),
        ]);
    }
    output::print_table(&t, "No steps yet.");
    for (step, request) in waiting {
        outln!();
        for line in input_request_lines(client, id, step, request) {
            outln!("{line}");
        }
    }
    Ok(0)
}

/// Prints step logs (`--json`: one JSON object per line, with `step`).
async fn logs(
    client: &Client,
    id: &str,
    step: Option<String>,
    follow: bool,
    json: bool,
) -> Result<i32> {
    let mode = if json { LogMode::Json } else { LogMode::Human };
    if let Some(s) = &step {
        // Fails with the server's "step … not found" for a typo.
        client.get(&["workflow-runs", id, "steps", s], &[]).await?;
    }
    if follow {
        let opts = Options {
            transitions: false,
            prompts: false,
            logs: mode,
            only: step,
        };
        follow::follow(client, id, opts, &Console::plain()).await?;
        return Ok(0);
    }
    let steps: Vec<String> = match step {
        Some(s) => vec![s],
        None => client
            .get_all(&["workflow-runs", id, "steps"])
            .await?
            .iter()
            .map(|s| decode::<StepView>(s).map(|s| s.id))
            .collect::<Result<_>>()?,
    };
    let console = Console::plain();
    for s in &steps {
        // Lines are printed as pages arrive, so a long log streams out.
        let printer = LogPrinter::new(&console, s, mode);
        follow::print_logs(client, id, &printer, &AtomicU64::new(0)).await?;
    }
    Ok(0)
}

async fn control(client: &Client, id: &str, action: &str, json: bool) -> Result<i32> {
    let raw = client.post(&["workflow-runs", id, action], None).await?;
    if json {
        print_json(&raw);
        return Ok(0);
    }
    let run: RunView = decode(&raw)?;
    // The engine applies commands asynchronously: the reply may still show
    // the status from before, so only a status that already changed is
    // reported as done.
    let done = match (action, run.status) {
        ("cancel", RunStatus::Cancelled) => "cancelled",
        ("cancel", _) => "cancellation requested (running steps are being stopped)",
        ("pause", RunStatus::Paused) => "paused",
        ("pause", _) => "pause requested (running steps finish first)",
        (_, RunStatus::Paused) => "resume requested",
        _ => "resumed",
    };
    outln!("run {id}: {done}");
    Ok(0)
}

async fn answer(
    client: &Client,
    id: &str,
    step: Option<String>,
    pairs: &[(String, String)],
    values_json: Option<String>,
    json: bool,
) -> Result<i32> {
    let step = match step {
        Some(s) => s,
        None => waiting_step(client, id).await?,
    };
    let base: Option<Value> = values_json
        .map(|j| serde_json::from_str(&j).context("--values-json is not valid JSON"))
        .transpose()?;
    let values = if pairs.is_empty() {
        base.unwrap_or_else(|| json!({}))
    } else {
        // Keys the answer schema declares as strings stay strings (`-v pin=0042`).
        let schema = client
            .get(&["workflow-runs", id, "steps", &step], &[])
            .await
            .and_then(|s| decode::<StepView>(&s))
            .ok()
            .and_then(|s| s.input_request)
            .map(|r| r.schema)
            .unwrap_or_default();
        object_with_pairs(base, pairs, |k| declares_string(&schema, k))?
    };
    let req = client.request(Method::POST, client.url(&["workflow-runs", id, "input"]));
    let body = serde_json::to_value(AnswerBody {
        step_id: step.clone().into(),
        values,
    })?;
    let run = client.send(with_json(req, &body)?).await?.data();
    if json {
        print_json(&run);
    } else {
        // The run picks the answer up asynchronously, so the status in
        // this reply is still the old one: not worth printing.
        outln!("answered {step} of run {id}; it carries on (weft runs logs {id} --follow)");
    }
    Ok(0)
}

/// The one step of a run that waits for input.
async fn waiting_step(client: &Client, id: &str) -> Result<String> {
    let steps = client
        .get_all(&["workflow-runs", id, "steps"])
        .await?
        .iter()
        .map(decode)
        .collect::<Result<Vec<StepView>>>()?;
    let waiting: Vec<&str> = steps
        .iter()
        .filter(|s| s.status == StepStatus::AwaitingInput)
        .map(|s| s.id.as_str())
        .collect();
    match waiting.as_slice() {
        [one] => Ok((*one).to_owned()),
        [] => anyhow::bail!("no step of run {id} is waiting for input"),
        many => anyhow::bail!(
            "several steps of run {id} are waiting for input ({}); choose one with --step",
            many.join(", ")
        ),
    }
}

/// Whether an object schema declares `key` as a string.
pub fn declares_string(schema: &Value, key: &str) -> bool {
    let ty = &schema["properties"][key]["type"];
    ty == "string"
        || ty
            .as_array()
            .is_some_and(|a| a.len() == 1 && a[0] == "string")
}

/// An input request for people: the prompt, the schema, and the exact
/// `weft runs answer` command (with example values from the schema).
pub fn input_request_lines(
    client: &Client,
    run_id: &str,
    step: &str,
    request: &InputRequest,
) -> Vec<String> {
    let prompt = if request.prompt.is_empty() {
        "(no prompt)"
    } else {
        &request.prompt
    };
    let schema = &request.schema;
    let mut lines = vec![format!("⏸ {step} is waiting for input: {prompt}")];
    if !schema.is_null() {
        lines.push(format!("  answer schema: {}", output::compact(schema, 300)));
    }
    if !request.secret_fields.is_empty() {
        lines.push(format!(
            "  secret fields: {} (held in memory only, never stored)",
            request.secret_fields.join(", ")
        ));
    }
    let server = if client.server() == DEFAULT_SERVER {
        String::new()
    } else {
        format!("--server {} ", shell_quote(client.server()))
    };
    lines.push(format!(
        "  answer with:   weft {server}runs answer {} --step {} {}",
        shell_quote(run_id),
        shell_quote(step),
        example_values(schema)
    ));
    lines
}

/// `-v key=value` flags that fill an answer schema's properties (required
/// ones first), or `--values-json` for schemas without properties.
fn example_values(schema: &Value) -> String {
    let Some(props) = schema["properties"].as_object().filter(|p| !p.is_empty()) else {
        return match schema["type"].as_str() {
            Some("object") | None => "--values-json '{}'".to_owned(),
            Some(_) => format!("--values-json {}", shell_quote(&example(schema))),
        };
    };
    let required: Vec<&str> = schema["required"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    let mut keys: Vec<&String> = props.keys().collect();
    keys.sort_by_key(|k| !required.contains(&k.as_str()));
    keys.iter()
        .map(|k| {
            format!(
                "-v {}",
                shell_quote(&format!("{k}={}", example(&props[k.as_str()])))
            )
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// A plausible value for a property: its default, its first enum value, or
/// one of its type.
fn example(prop: &Value) -> String {
    if let Some(v) = prop.get("default").or_else(|| prop["enum"].get(0)) {
        return v.as_str().map_or_else(|| v.to_string(), str::to_owned);
    }
    match prop["type"].as_str() {
        Some("boolean") => "true",
        Some("integer" | "number") => "0",
        Some("array") => "[]",
        Some("object") => "{}",
        Some("null") => "null",
        _ => "TEXT",
    }
    .to_owned()
}

#[cfg(test)]
mod tests {
    use super::{declares_string, example_values};
    use serde_json::json;

    #[test]
    fn example_answers_follow_the_schema() {
        let schema = json!({
            "type": "object",
            "properties": {"comment": {"type": "string"}, "approved": {"type": "boolean"}},
            "required": ["approved"]
        });
        assert_eq!(example_values(&schema), "-v approved=true -v comment=TEXT");
        assert_eq!(
            example_values(&json!({"type": "object"})),
            "--values-json '{}'"
        );
        assert!(declares_string(&schema, "comment") && !declares_string(&schema, "approved"));
    }
}
