//! `weft template apply|validate|list|show`. `apply` is idempotent like
//! `kubectl apply`: it creates the template, or — when the name exists —
//! writes a new revision guarded by `If-Match`, or nothing when unchanged.

use super::client::{Client, api_error, decode};
use super::output::{self, print_json};
use super::{TemplateCommand, parse_object, read_source};
use anyhow::{Context, Result};
use reqwest::Method;
use reqwest::header::{CONTENT_TYPE, IF_MATCH};
use serde::Deserialize;
use serde_json::{Value, json};
use weft_api_types::TemplateView;
use weft_model::WorkflowTemplate;

/// A template file as read: its bytes go to the server unchanged (so the
/// server parses the YAML itself), the parsed value tells us its name.
struct Source {
    name: String,
    bytes: Vec<u8>,
    value: Value,
    json: bool,
}

impl Source {
    fn load(path: &str) -> Result<Self> {
        let (name, bytes) = read_source(path)?;
        let value = parse_object(&name, &bytes)?;
        let json = bytes
            .iter()
            .find(|b| !b.is_ascii_whitespace())
            .is_some_and(|b| *b == b'{');
        Ok(Self {
            name,
            bytes,
            value,
            json,
        })
    }

    fn content_type(&self) -> &'static str {
        if self.json {
            "application/json"
        } else {
            "application/yaml"
        }
    }
}

/// Runs a `weft template` command.
pub async fn execute(client: &Client, cmd: TemplateCommand, json: bool) -> Result<i32> {
    match cmd {
        TemplateCommand::Apply { file } => apply(client, &file, json).await,
        TemplateCommand::Validate { file } => validate(client, &file, json).await,
        TemplateCommand::List => list(client, json).await,
        TemplateCommand::Show { template } => show(client, &template, json).await,
    }
}

async fn apply(client: &Client, file: &str, json: bool) -> Result<i32> {
    let src = Source::load(file)?;
    let create = client
        .request(Method::POST, client.url(&["workflow-templates"]))
        .header(CONTENT_TYPE, src.content_type())
        .body(src.bytes.clone());
    let (action, data) = match client.send(create).await {
        Ok(reply) => ("created", reply.data()),
        Err(e) => {
            let exists = api_error(&e).is_some_and(|a| a.status == 409);
            let name = src
                .value
                .get("name")
                .and_then(Value::as_str)
                .map(str::to_owned);
            match (exists, name) {
                (true, Some(name)) => update(client, &src, &name).await?,
                _ => return Err(e),
            }
        }
    };
    if json {
        print_json(&data);
    } else {
        let t: TemplateView = decode(&data)?;
        outln!("template {} {action} (revision {})", t.name, t.revision);
    }
    Ok(0)
}

/// Writes a new revision of an existing template unless the body is the
/// same; retries when someone else wrote a revision in between (412).
async fn update(client: &Client, src: &Source, name: &str) -> Result<(&'static str, Value)> {
    let url = client.url(&["workflow-templates", name]);
    for _ in 0..3 {
        let current = client
            .send(client.request(Method::GET, url.clone()))
            .await?;
        let etag = current.header("etag").map(str::to_owned);
        let data = current.data();
        let head: TemplateView = decode(&data)?;
        if head.body == src.value {
            return Ok(("unchanged", data));
        }
        let etag = etag.unwrap_or_else(|| format!("\"{}\"", head.revision));
        let put = client
            .request(Method::PUT, url.clone())
            .header(CONTENT_TYPE, src.content_type())
            .header(IF_MATCH, etag)
            .body(src.bytes.clone());
        match client.send(put).await {
            Ok(reply) => return Ok(("updated", reply.data())),
            Err(e) if api_error(&e).is_some_and(|a| a.status == 412) => continue,
            Err(e) => return Err(e),
        }
    }
    anyhow::bail!("template {name} keeps changing on the server while applying; try again")
}

async fn validate(client: &Client, file: &str, json: bool) -> Result<i32> {
    let src = Source::load(file)?;
    let req = client
        .request(
            Method::POST,
            client.url(&["workflow-templates", "validate"]),
        )
        .header(CONTENT_TYPE, src.content_type())
        .body(src.bytes);
    match client.send(req).await {
        Ok(_) => {
            if json {
                print_json(&json!({"valid": true, "problems": []}));
            } else {
                outln!("{}: valid", src.name);
            }
            Ok(0)
        }
        Err(e) => {
            let Some(api) = api_error(&e).filter(|a| a.status == 422) else {
                return Err(e);
            };
            if json {
                print_json(&json!({
                    "valid": false,
                    "code": api.code,
                    "message": api.message,
                    "problems": api.problems,
                }));
            } else {
                let n = api.problems.len();
                if n == 0 {
                    outln!("{}: invalid: {}", src.name, api.message);
                } else {
                    let s = if n == 1 { "" } else { "s" };
                    outln!("{}: invalid, {n} problem{s}:", src.name);
                }
                for line in output::problem_lines(&api.problems) {
                    outln!("  {line}");
                }
            }
            Ok(1)
        }
    }
}

async fn list(client: &Client, json: bool) -> Result<i32> {
    let data = client.get_all(&["workflow-templates"]).await?;
    if json {
        print_json(&Value::Array(data));
        return Ok(0);
    }
    let mut t = output::table(&["NAME", "REVISION", "STEPS", "UPDATED", "DESCRIPTION"]);
    for tpl in &data {
        let tpl: TemplateView = decode(tpl)?;
        // The server validated the body; an older or newer shape still lists.
        let spec = WorkflowTemplate::deserialize(&tpl.body).ok();
        t.add_row(vec![
            tpl.name.clone(),
            tpl.revision.to_string(),
            spec.as_ref()
                .map_or_else(|| "?".to_owned(), |s| s.steps.len().to_string()),
            output::age(&tpl.updated_at),
            spec.and_then(|s| s.description)
                .map(|d| output::compact(&Value::from(d), 60))
                .unwrap_or_default(),
        ]);
    }
    output::print_table(
        &t,
        "No templates. Create one with: weft template apply -f FILE",
    );
    Ok(0)
}

async fn show(client: &Client, template: &str, json: bool) -> Result<i32> {
    let data = client.get(&["workflow-templates", template], &[]).await?;
    if json {
        print_json(&data);
        return Ok(0);
    }
    let t: TemplateView = decode(&data)?;
    outln!(
        "# {} revision {}, updated {}",
        t.name,
        t.revision,
        t.updated_at
    );
    let yaml = serde_yaml_ng::to_string(&t.body).context("cannot render the body as YAML")?;
    outln!("{}", yaml.trim_end());
    Ok(0)
}
