//! `weft plugin install|list|enable|disable|inspect`. Plugins are named by
//! id (`sha256:…`, or a unique prefix of it) or by name (`name@version`
//! when several versions are installed).

use super::PluginCommand;
use super::client::{Client, with_json};
use super::output::{self, print_json, status_cell};
use anyhow::{Context, Result};
use reqwest::Method;
use reqwest::header::CONTENT_TYPE;
use serde_json::{Value, json};
use std::path::Path;
use std::time::Duration;
use weft_host::{HostConfig, PluginHost};

/// Installing compiles the component on the server, which can take a while.
const INSTALL_TIMEOUT: Duration = Duration::from_secs(600);

/// Runs a `weft plugin` command (all but `inspect`, which is local).
pub async fn execute(client: &Client, cmd: PluginCommand, json: bool) -> Result<i32> {
    match cmd {
        PluginCommand::Install { file } => install(client, &file, json).await,
        PluginCommand::List => list(client, json).await,
        PluginCommand::Enable {
            plugin,
            hosts,
            env,
            secrets,
            replace,
        } => {
            let p = resolve(client, &plugin).await?;
            let merged = |field: &str, given: Vec<String>| {
                let mut all: Vec<String> = if replace {
                    Vec::new()
                } else {
                    strings(&p["grants"][field])
                };
                for g in given {
                    if !all.contains(&g) {
                        all.push(g);
                    }
                }
                all
            };
            let body = json!({
                "outboundHosts": merged("outboundHosts", hosts),
                "env": merged("env", env),
                "secrets": merged("secrets", secrets),
            });
            let id = p["id"].as_str().unwrap_or_default();
            let req = client.request(Method::POST, client.url(&["plugins", id, "enable"]));
            let data = client.send(with_json(req, &body)?).await?.data();
            report(&data, "enabled", json);
            Ok(0)
        }
        PluginCommand::Disable { plugin } => {
            let p = resolve(client, &plugin).await?;
            let id = p["id"].as_str().unwrap_or_default();
            let data = client.post(&["plugins", id, "disable"], None).await?;
            report(&data, "disabled", json);
            Ok(0)
        }
        PluginCommand::Inspect { file } => {
            inspect(&file).await?;
            Ok(0)
        }
    }
}

async fn install(client: &Client, file: &Path, json: bool) -> Result<i32> {
    let bytes = std::fs::read(file).with_context(|| format!("cannot read {}", file.display()))?;
    let req = client
        .request(Method::POST, client.url(&["plugins"]))
        .header(CONTENT_TYPE, "application/octet-stream")
        .body(bytes);
    let data = client.send_within(req, INSTALL_TIMEOUT).await?.data();
    if json {
        print_json(&data);
        return Ok(0);
    }
    report(&data, "installed", false);
    let requested = grants_text(&data["requested"]);
    if requested != "none" {
        outln!(
            "  requests: {requested}\n  grant with: weft plugin enable {}@{} --allow-host HOST …",
            data["name"].as_str().unwrap_or_default(),
            data["version"].as_str().unwrap_or_default()
        );
    }
    Ok(0)
}

async fn list(client: &Client, json: bool) -> Result<i32> {
    let data = client.get_all(&["plugins"]).await?;
    if json {
        print_json(&Value::Array(data));
        return Ok(0);
    }
    let mut t = output::table(&["ID", "NAME", "VERSION", "STATUS", "STEP TYPES", "GRANTS"]);
    for p in &data {
        let enabled = p["enabled"].as_bool().unwrap_or(false);
        t.add_row(vec![
            short_id(p["id"].as_str().unwrap_or_default()).into(),
            p["name"].as_str().unwrap_or_default().into(),
            p["version"].as_str().unwrap_or_default().into(),
            status_cell(if enabled { "ENABLED" } else { "DISABLED" }),
            strings(&p["stepTypes"]).join(", ").into(),
            grants_text(&p["grants"]).into(),
        ]);
    }
    output::print_table(&t, "No plugins installed.");
    Ok(0)
}

/// `sha256:` and the first 12 hex digits: unique in practice, and accepted
/// back as a prefix.
fn short_id(id: &str) -> String {
    id.get(..19).unwrap_or(id).to_owned()
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| s.as_str().map(str::to_owned))
        .collect()
}

/// Capabilities as `hosts: a, b; env: X`, or `none`.
fn grants_text(g: &Value) -> String {
    let parts: Vec<String> = [
        ("outboundHosts", "hosts"),
        ("env", "env"),
        ("secrets", "secrets"),
    ]
    .iter()
    .filter_map(|(field, label)| {
        let items = strings(&g[*field]);
        (!items.is_empty()).then(|| format!("{label}: {}", items.join(", ")))
    })
    .collect();
    if parts.is_empty() {
        "none".to_owned()
    } else {
        parts.join("; ")
    }
}

fn report(p: &Value, action: &str, json: bool) {
    if json {
        print_json(p);
        return;
    }
    outln!(
        "plugin {} {} {action} ({})",
        p["name"].as_str().unwrap_or_default(),
        p["version"].as_str().unwrap_or_default(),
        p["id"].as_str().unwrap_or_default()
    );
    outln!("  step types: {}", strings(&p["stepTypes"]).join(", "));
    outln!("  grants: {}", grants_text(&p["grants"]));
}

/// Finds one installed plugin by id, id prefix, name or `name@version`.
async fn resolve(client: &Client, wanted: &str) -> Result<Value> {
    let all = client.get_all(&["plugins"]).await?;
    let hex = wanted.strip_prefix("sha256:").unwrap_or(wanted);
    let matches = |p: &&Value| {
        let id = p["id"].as_str().unwrap_or_default();
        let name = p["name"].as_str().unwrap_or_default();
        let version = p["version"].as_str().unwrap_or_default();
        id == wanted
            || name == wanted
            || format!("{name}@{version}") == wanted
            || (hex.len() >= 4
                && hex.bytes().all(|b| b.is_ascii_hexdigit())
                && id
                    .strip_prefix("sha256:")
                    .is_some_and(|h| h.starts_with(hex)))
    };
    let found: Vec<&Value> = all.iter().filter(matches).collect();
    match found.as_slice() {
        [one] => Ok((*one).clone()),
        [] => anyhow::bail!("no installed plugin matches {wanted:?} (see `weft plugin list`)"),
        many => anyhow::bail!(
            "{wanted:?} matches several plugins: {}; name one as name@version or by id",
            many.iter()
                .map(|p| format!(
                    "{}@{} ({})",
                    p["name"].as_str().unwrap_or_default(),
                    p["version"].as_str().unwrap_or_default(),
                    short_id(p["id"].as_str().unwrap_or_default())
                ))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// Validates a component locally (compiles it, reads its manifest) and
/// prints the manifest as JSON; no server involved.
pub async fn inspect(file: &Path) -> Result<()> {
    let bytes = std::fs::read(file).with_context(|| format!("cannot read {}", file.display()))?;
    let host = PluginHost::new(HostConfig {
        max_concurrent_instances: 4,
        ..HostConfig::default()
    })?;
    let installed = host
        .install(&bytes)
        .await
        .with_context(|| format!("{} is not a valid Weft plugin", file.display()))?;
    let view = json!({
        "digest": installed.plugin.digest.to_string(),
        "manifest": installed.plugin.manifest,
        "compileMs": installed.compile_time.as_secs_f64() * 1e3,
    });
    print_json(&view);
    Ok(())
}
