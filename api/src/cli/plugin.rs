//! `weft plugin install|list|enable|disable|inspect`. Plugins are named by
//! id (`sha256:…`, or a unique prefix of it) or by name (`name@version`
//! when several versions are installed).

use super::PluginCommand;
use super::client::{Client, decode, with_json};
use super::output::{self, print_json, status_cell};
use anyhow::{Context, Result};
use reqwest::Method;
use reqwest::header::CONTENT_TYPE;
use serde_json::{Value, json};
use std::path::Path;
use std::time::Duration;
use weft_api_types::{
    CapabilitiesView, DirectoryGrantBody, EnablePluginRequest, Maybe, PluginView, Text,
};
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
            dirs,
            replace,
        } => {
            let p = resolve(client, &plugin).await?;
            let merged = |granted: &[String], given: Vec<String>| {
                let mut all: Vec<String> = if replace {
                    Vec::new()
                } else {
                    granted.to_vec()
                };
                for g in given {
                    if !all.contains(&g) {
                        all.push(g);
                    }
                }
                Maybe(Some(all.into_iter().map(Text).collect()))
            };
            let body = serde_json::to_value(EnablePluginRequest {
                outbound_hosts: merged(&p.grants.outbound_hosts, hosts),
                env: merged(&p.grants.env, env),
                secrets: merged(&p.grants.secrets, secrets),
                directories: if dirs.is_empty() {
                    Maybe(None)
                } else {
                    Maybe(Some(
                        dirs.iter().map(|d| directory(d)).collect::<Result<_>>()?,
                    ))
                },
            })?;
            let req = client.request(Method::POST, client.url(&["plugins", &p.id, "enable"]));
            let data = client.send(with_json(req, &body)?).await?.data();
            report(&data, "enabled", json)?;
            Ok(0)
        }
        PluginCommand::Disable { plugin } => {
            let p = resolve(client, &plugin).await?;
            let data = client.post(&["plugins", &p.id, "disable"], None).await?;
            report(&data, "disabled", json)?;
            Ok(0)
        }
        PluginCommand::Inspect { file } => {
            inspect(&file).await?;
            Ok(0)
        }
    }
}

/// Parses `GUEST=HOST[:rw|:ro]`.
fn directory(text: &str) -> Result<DirectoryGrantBody> {
    let (guest, host) = text
        .split_once('=')
        .with_context(|| format!("--dir {text}: expected GUEST=HOST[:rw]"))?;
    let (host, read_only) = match host.rsplit_once(':') {
        Some((h, "rw")) => (h, false),
        Some((h, "ro")) => (h, true),
        _ => (host, true),
    };
    anyhow::ensure!(
        !guest.is_empty() && !host.is_empty(),
        "--dir {text}: expected GUEST=HOST[:rw]"
    );
    Ok(DirectoryGrantBody {
        guest_path: Text(guest.to_owned()),
        host_path: Text(host.to_owned()),
        read_only: Some(read_only),
    })
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
    report(&data, "installed", false)?;
    let p: PluginView = decode(&data)?;
    let requested = grants_text(&p.requested);
    if requested != "none" {
        outln!(
            "  requests: {requested}\n  grant with: weft plugin enable {}@{} --allow-host HOST …",
            p.name,
            p.version
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
        let p: PluginView = decode(p)?;
        t.add_row(vec![
            short_id(&p.id).into(),
            p.name.as_str().into(),
            p.version.as_str().into(),
            status_cell(if p.enabled { "ENABLED" } else { "DISABLED" }),
            p.step_types.join(", ").into(),
            grants_text(&p.grants).into(),
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

/// Capabilities as `hosts: a, b; env: X`, or `none`.
fn grants_text(g: &CapabilitiesView) -> String {
    let parts: Vec<String> = [
        (&g.outbound_hosts, "hosts"),
        (&g.directories, "directories"),
        (&g.env, "env"),
        (&g.secrets, "secrets"),
    ]
    .iter()
    .filter(|(items, _)| !items.is_empty())
    .map(|(items, label)| format!("{label}: {}", items.join(", ")))
    .collect();
    if parts.is_empty() {
        "none".to_owned()
    } else {
        parts.join("; ")
    }
}

fn report(data: &Value, action: &str, json: bool) -> Result<()> {
    if json {
        print_json(data);
        return Ok(());
    }
    let p: PluginView = decode(data)?;
    outln!("plugin {} {} {action} ({})", p.name, p.version, p.id);
    outln!("  step types: {}", p.step_types.join(", "));
    outln!("  grants: {}", grants_text(&p.grants));
    Ok(())
}

/// Finds one installed plugin by id, id prefix, name or `name@version`.
async fn resolve(client: &Client, wanted: &str) -> Result<PluginView> {
    let all = client
        .get_all(&["plugins"])
        .await?
        .iter()
        .map(decode)
        .collect::<Result<Vec<PluginView>>>()?;
    let hex = wanted.strip_prefix("sha256:").unwrap_or(wanted);
    let matches = |p: &&PluginView| {
        let (id, name, version) = (p.id.as_str(), p.name.as_str(), p.version.as_str());
        id == wanted
            || name == wanted
            || format!("{name}@{version}") == wanted
            || (hex.len() >= 4
                && hex.bytes().all(|b| b.is_ascii_hexdigit())
                && id
                    .strip_prefix("sha256:")
                    .is_some_and(|h| h.starts_with(hex)))
    };
    let mut found: Vec<&PluginView> = all.iter().filter(matches).collect();
    match found.as_slice() {
        [_] => Ok(found.swap_remove(0).clone()),
        [] => anyhow::bail!("no installed plugin matches {wanted:?} (see `weft plugin list`)"),
        many => anyhow::bail!(
            "{wanted:?} matches several plugins: {}; name one as name@version or by id",
            many.iter()
                .map(|p| format!("{}@{} ({})", p.name, p.version, short_id(&p.id)))
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
