//! `weft connection …` and `weft job …`: connections, sync jobs and their
//! syncs. A sync is a workflow run, so `job sync --follow` follows it as
//! `weft run --follow` does (step logs and a progress bar with rows/s).

use super::client::{Client, decode, with_json};
use super::output::{self, age, print_json, print_table, status_cell, table};
use super::{ConnectionCommand, JobCommand, follow, parse_object, read_source};
use anyhow::{Context, Result};
use reqwest::Method;
use serde_json::{Value, json};
use weft_api_types::RunView;
use weft_api_types::sync::{
    CatalogView, ConnectionCheckView, ConnectionView, SyncJobRunView, SyncJobView, SyncStateView,
};

/// Runs a `weft connection` command.
pub async fn connection(client: &Client, cmd: ConnectionCommand, json: bool) -> Result<i32> {
    match cmd {
        ConnectionCommand::Create { file } => {
            let (name, bytes) = read_source(&file)?;
            let body = parse_object(&name, &bytes)?;
            let req = client.request(Method::POST, client.url(&["connections"]));
            let data = client.send(with_json(req, &body)?).await?.data();
            if json {
                print_json(&data);
            } else {
                let c: ConnectionView = decode(&data)?;
                outln!("{}", c.id);
            }
            Ok(0)
        }
        ConnectionCommand::List => {
            let all = client.get_all(&["connections"]).await?;
            if json {
                print_json(&Value::Array(all));
                return Ok(0);
            }
            let mut t = table(&["ID", "NAME", "ROLE", "CONNECTOR", "JOBS", "CREATED"]);
            for v in &all {
                let c: ConnectionView = decode(v)?;
                t.add_row(vec![
                    c.id,
                    c.name,
                    c.role.to_string(),
                    c.connector,
                    c.jobs.len().to_string(),
                    age(&c.created_at),
                ]);
            }
            print_table(&t, "no connections");
            Ok(0)
        }
        ConnectionCommand::Show { id } => {
            let data = client.get(&["connections", &id], &[]).await?;
            print_json(&data);
            Ok(0)
        }
        ConnectionCommand::Test { id } => {
            let data = client.post(&["connections", &id, "test"], None).await?;
            let check: ConnectionCheckView = decode(&data)?;
            if json {
                print_json(&data);
            } else if let Some(f) = &check.failure {
                outln!(
                    "failed ({} ms): {}",
                    check.elapsed_ms,
                    output::failure_text(f)
                );
            } else {
                outln!("ok ({} ms)", check.elapsed_ms);
            }
            Ok(if check.ok { 0 } else { 1 })
        }
        ConnectionCommand::Discover { id } => {
            let data = client.post(&["connections", &id, "discover"], None).await?;
            if json {
                print_json(&data);
                return Ok(0);
            }
            let catalog: CatalogView = decode(&data)?;
            let mut t = table(&["STREAM", "COLUMNS", "MODES", "CURSOR", "KEY"]);
            for s in catalog.streams {
                let columns = s
                    .json_schema
                    .get("properties")
                    .and_then(Value::as_object)
                    .map_or(0, |p| p.len());
                t.add_row(vec![
                    s.name,
                    columns.to_string(),
                    s.sync_modes
                        .iter()
                        .map(|m| {
                            serde_json::to_value(m)
                                .ok()
                                .and_then(|v| v.as_str().map(str::to_owned))
                                .unwrap_or_default()
                        })
                        .collect::<Vec<_>>()
                        .join(","),
                    s.cursor_candidates.first().cloned().unwrap_or_default(),
                    s.primary_key_candidates
                        .first()
                        .map(|k| k.join(","))
                        .unwrap_or_default(),
                ]);
            }
            print_table(&t, "no streams");
            Ok(0)
        }
        ConnectionCommand::Delete { id } => {
            let req = client.request(Method::DELETE, client.url(&["connections", &id]));
            let data = client.send(req).await?.data();
            if json {
                print_json(&data);
            } else {
                outln!("deleted {id}");
            }
            Ok(0)
        }
    }
}

/// Runs a `weft job` command.
pub async fn job(client: &Client, cmd: JobCommand, json: bool) -> Result<i32> {
    match cmd {
        JobCommand::Create { file } => {
            let (name, bytes) = read_source(&file)?;
            let body = parse_object(&name, &bytes)?;
            let req = client.request(Method::POST, client.url(&["jobs"]));
            let data = client.send(with_json(req, &body)?).await?.data();
            if json {
                print_json(&data);
            } else {
                outln!("{}", decode::<SyncJobView>(&data)?.id);
            }
            Ok(0)
        }
        JobCommand::List => {
            let all = client.get_all(&["jobs"]).await?;
            if json {
                print_json(&Value::Array(all));
                return Ok(0);
            }
            let mut t = table(&["ID", "NAME", "STREAMS", "SCHEDULE", "LAST RUN", "STATUS"]);
            for v in &all {
                let j: SyncJobView = decode(v)?;
                let schedule = match (&j.schedule, j.active) {
                    (Some(s), true) => s.cron.0.clone(),
                    (Some(s), false) => format!("{} (inactive)", s.cron.0),
                    (None, _) => "-".into(),
                };
                let (at, status) = j.last_run.as_ref().map_or(("-".into(), "-".into()), |r| {
                    (age(&r.at), r.status.to_string())
                });
                t.add_row(vec![
                    comfy_table::Cell::new(j.id),
                    comfy_table::Cell::new(j.name),
                    comfy_table::Cell::new(j.streams_config.len()),
                    comfy_table::Cell::new(schedule),
                    comfy_table::Cell::new(at),
                    status_cell(&status),
                ]);
            }
            print_table(&t, "no jobs");
            Ok(0)
        }
        JobCommand::Show { id } => {
            let data = client.get(&["jobs", &id], &[]).await?;
            if json {
                print_json(&data);
                return Ok(0);
            }
            let j: SyncJobView = decode(&data)?;
            outln!("{} ({})", j.name, j.id);
            outln!("  {} -> {}", j.source, j.destination);
            for s in &j.streams_config {
                outln!(
                    "  stream {}: {} -> {}",
                    s.name,
                    json!(s.sync_mode).as_str().unwrap_or_default(),
                    json!(s.write_mode).as_str().unwrap_or_default()
                );
            }
            outln!("  state seq {}", j.state_seq);
            if let Some(l) = &j.running {
                outln!(
                    "  syncing: {} rows, {:.0} rows/s",
                    l.rows,
                    l.rows_per_second
                );
            }
            let runs = client.get(&["jobs", &id, "runs"], &[]).await?;
            let runs: Vec<SyncJobRunView> = decode(&runs)?;
            let mut t = table(&["RUN", "STATUS", "STARTED", "DURATION", "ROWS", "BYTES"]);
            for r in runs {
                t.add_row(vec![
                    comfy_table::Cell::new(&r.run.id),
                    status_cell(&r.run.status.to_string()),
                    comfy_table::Cell::new(
                        r.run.started_at.as_deref().map(age).unwrap_or_default(),
                    ),
                    comfy_table::Cell::new(
                        r.duration_ms.map(output::fmt_duration).unwrap_or_default(),
                    ),
                    comfy_table::Cell::new(r.rows.map(|n| n.to_string()).unwrap_or_default()),
                    comfy_table::Cell::new(r.bytes.map(|n| n.to_string()).unwrap_or_default()),
                ]);
            }
            print_table(&t, "no syncs yet");
            Ok(0)
        }
        JobCommand::Sync { id, follow: f } => {
            let data = client.post(&["jobs", &id, "sync"], None).await?;
            let run: RunView = decode(&data)?;
            if f {
                return follow::run_to_end(client, &run.id, json).await;
            }
            if json {
                print_json(&data);
            } else {
                outln!("{}", run.id);
            }
            Ok(0)
        }
        JobCommand::Cancel { id } => {
            let data = client.post(&["jobs", &id, "cancel"], None).await?;
            if json {
                print_json(&data);
            } else {
                outln!("cancelling {}", decode::<RunView>(&data)?.id);
            }
            Ok(0)
        }
        JobCommand::State { id, reset, set } => {
            let data = if reset {
                let req = client.request(Method::DELETE, client.url(&["jobs", &id, "state"]));
                client.send(req).await?.data()
            } else if let Some(file) = set {
                let (name, bytes) = read_source(&file)?;
                let body =
                    parse_object(&name, &bytes).context("a state file is {\"streams\": […]}")?;
                let req = client.request(Method::PUT, client.url(&["jobs", &id, "state"]));
                client.send(with_json(req, &body)?).await?.data()
            } else {
                client.get(&["jobs", &id, "state"], &[]).await?
            };
            if json {
                print_json(&data);
            } else {
                let s: SyncStateView = decode(&data)?;
                outln!("seq {}", s.seq);
                for st in s.streams {
                    outln!(
                        "  {}: {}",
                        st.stream
                            .0
                            .map(String::from)
                            .unwrap_or_else(|| "(all)".into()),
                        st.state
                    );
                }
            }
            Ok(0)
        }
        JobCommand::Activate { id } => activate(client, &id, true, json).await,
        JobCommand::Deactivate { id } => activate(client, &id, false, json).await,
    }
}

async fn activate(client: &Client, id: &str, on: bool, json: bool) -> Result<i32> {
    let data = client
        .post(&["jobs", id, "activate"], Some(&json!({"activate": on})))
        .await?;
    if json {
        print_json(&data);
    } else {
        outln!("{} {id}", if on { "activated" } else { "deactivated" });
    }
    Ok(0)
}
