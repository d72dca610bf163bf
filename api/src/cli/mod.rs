//! The `weft` command-line client: talks to a Weft server over its REST
//! API (`--server`/`WEFT_SERVER`, `--token`/`WEFT_TOKEN`). This module holds
//! the clap types and the dispatch; each concept has its own module:
//! [`client`] (HTTP, envelope, errors), [`output`] (tables, `--json`),
//! [`template`], [`run`] (start, follow), [`follow`] (live events, logs,
//! progress), [`runs`], [`plugin`] and [`sse`] (the event-stream reader).
//!
//! Exit codes: 0 success, 1 a failed command or a run that ended `FAILED`
//! or `CANCELLED`, 2 a usage error (clap), 130 interrupted while following.

/// `println!` for the CLI's output. When stdout is closed early (`weft
/// runs list | head -1`) the process ends quietly with 141, as tools killed
/// by `SIGPIPE` do, instead of panicking.
macro_rules! outln {
    () => {
        $crate::cli::output::write_out(format_args!("\n"))
    };
    ($($arg:tt)*) => {
        $crate::cli::output::write_out(format_args!("{}\n", format_args!($($arg)*)))
    };
}

mod client;
mod follow;
mod output;
mod plugin;
mod run;
mod runs;
mod sse;
mod sync;
mod template;

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use serde_json::Value;
use std::io::Read;
use std::path::PathBuf;

/// Where the server is, who is calling, and how to print.
#[derive(Args, Debug, Clone)]
pub struct GlobalArgs {
    /// URL of the Weft server.
    #[arg(
        long,
        env = "WEFT_SERVER",
        default_value = "http://127.0.0.1:8080",
        global = true
    )]
    pub server: String,
    /// Bearer token for the API (the admin token `weft serve` printed).
    #[arg(long, env = "WEFT_TOKEN", hide_env_values = true, global = true)]
    pub token: Option<String>,
    /// Print the response data as JSON (for scripts) instead of tables.
    #[arg(long, global = true)]
    pub json: bool,
}

/// The client commands, flattened into the `weft` binary's commands.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Apply, validate, list and show workflow templates.
    #[command(subcommand, visible_alias = "templates")]
    Template(TemplateCommand),
    /// Start a run of a template (and follow it with --follow).
    Run(RunArgs),
    /// List, show, follow and control runs; answer their input requests.
    #[command(subcommand)]
    Runs(RunsCommand),
    /// Install, list, enable, disable and inspect plugins.
    #[command(subcommand, visible_alias = "plugins")]
    Plugin(PluginCommand),
    /// Create, list, show, test, discover and delete connections.
    #[command(subcommand, visible_alias = "connections")]
    Connection(ConnectionCommand),
    /// Create, list and show sync jobs; sync, cancel, and edit their state.
    #[command(subcommand, visible_alias = "jobs")]
    Job(JobCommand),
}

/// `weft connection …`
#[derive(Subcommand, Debug)]
pub enum ConnectionCommand {
    /// Create a connection from a YAML or JSON file (`name`, `role`,
    /// `connector`, `config`); prints its id.
    Create {
        /// The file; `-` reads stdin.
        #[arg(short = 'f', long = "file", value_name = "FILE")]
        file: String,
    },
    /// List connections.
    List,
    /// Print a connection (secrets masked).
    Show {
        /// Connection id.
        id: String,
    },
    /// Check a connection with its connector; exits 1 when it fails.
    Test {
        /// Connection id.
        id: String,
    },
    /// List the streams a source connection can read.
    Discover {
        /// Connection id.
        id: String,
    },
    /// Delete a connection no job uses.
    Delete {
        /// Connection id.
        id: String,
    },
}

/// `weft job …`
#[derive(Subcommand, Debug)]
pub enum JobCommand {
    /// Create a job from a YAML or JSON file (`name`, `source`,
    /// `destination`, `streamsConfig`, `schedule`); prints its id.
    Create {
        /// The file; `-` reads stdin.
        #[arg(short = 'f', long = "file", value_name = "FILE")]
        file: String,
    },
    /// List jobs with their last run.
    List,
    /// Show a job and its syncs.
    Show {
        /// Job id.
        id: String,
    },
    /// Start a sync now (and follow it with --follow).
    Sync {
        /// Job id.
        id: String,
        /// Follow the sync: logs, a progress bar with rows/s, and the exit
        /// code of its result.
        #[arg(short = 'f', long)]
        follow: bool,
    },
    /// Cancel a job's running sync.
    Cancel {
        /// Job id.
        id: String,
    },
    /// Print a job's state, replace it (--set FILE) or reset it (--reset).
    State {
        /// Job id.
        id: String,
        /// Forget the state: the next sync reads everything again.
        #[arg(long, conflicts_with = "set")]
        reset: bool,
        /// Replace the state with a file's `{"streams": [...]}`.
        #[arg(long, value_name = "FILE")]
        set: Option<String>,
    },
    /// Turn a job's schedule on.
    Activate {
        /// Job id.
        id: String,
    },
    /// Turn a job's schedule off.
    Deactivate {
        /// Job id.
        id: String,
    },
}

/// `weft template …`
#[derive(Subcommand, Debug)]
pub enum TemplateCommand {
    /// Create a template from a file, or update it (a new revision) when it
    /// exists and changed; applying the same file twice changes nothing.
    Apply {
        /// YAML or JSON template file; `-` reads stdin.
        #[arg(short = 'f', long = "file", value_name = "FILE")]
        file: String,
    },
    /// Check a template file against the server's plugins without saving
    /// it; prints each problem with its JSON pointer, exits 1 if invalid.
    Validate {
        /// YAML or JSON template file; `-` reads stdin.
        #[arg(short = 'f', long = "file", value_name = "FILE")]
        file: String,
    },
    /// List templates.
    List,
    /// Print a template's latest revision (YAML; JSON with --json).
    Show {
        /// Template name or id.
        template: String,
    },
}

/// `weft run …`
#[derive(Args, Debug)]
pub struct RunArgs {
    /// Template name or id.
    pub template: String,
    /// An input as KEY=VALUE (repeatable). VALUE is taken as JSON when it
    /// parses (`n=10`, `ok=true`, `tags=["a"]`), else as a string; a key
    /// the template declares as a string is always a string.
    #[arg(short = 'i', long = "input", value_name = "KEY=VALUE", value_parser = key_value)]
    pub inputs: Vec<(String, String)>,
    /// All inputs as one JSON object (`-i` values override its keys).
    #[arg(long, value_name = "JSON")]
    pub inputs_json: Option<String>,
    /// Inputs from a JSON or YAML file, `-` for stdin (`-i` overrides).
    #[arg(long, value_name = "FILE", conflicts_with = "inputs_json")]
    pub inputs_file: Option<String>,
    /// Starting again with the same key returns the first run instead.
    #[arg(long, value_name = "KEY")]
    pub idempotency_key: Option<String>,
    /// Follow the run: step logs, a progress bar, and the exit code of its
    /// result (0 SUCCESS, 1 FAILED or CANCELLED).
    #[arg(short = 'f', long)]
    pub follow: bool,
}

/// `weft runs …`
#[derive(Subcommand, Debug)]
pub enum RunsCommand {
    /// List runs, newest first.
    List {
        /// Only runs in this status (pending, running, paused,
        /// awaiting-input, success, failed, cancelled).
        #[arg(long, value_parser = run_status)]
        status: Option<String>,
        /// Only runs of this template (name or id).
        #[arg(long)]
        template: Option<String>,
        /// How many runs to show at most.
        #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..=1000))]
        limit: u32,
    },
    /// Show a run and its steps.
    Show {
        /// Run id.
        id: String,
    },
    /// Print a run's step logs (all steps, or one with --step).
    Logs {
        /// Run id.
        id: String,
        /// Only this step (`id`, or `id[i]` for a forEach item).
        #[arg(long)]
        step: Option<String>,
        /// Keep printing new lines until the run ends.
        #[arg(short = 'f', long)]
        follow: bool,
    },
    /// Cancel a run; running steps are stopped.
    Cancel {
        /// Run id.
        id: String,
    },
    /// Pause a run: no new steps start, running ones finish.
    Pause {
        /// Run id.
        id: String,
    },
    /// Resume a paused run.
    Resume {
        /// Run id.
        id: String,
    },
    /// Answer a step that is waiting for input.
    Answer {
        /// Run id.
        id: String,
        /// The waiting step (optional when only one step is waiting).
        #[arg(long)]
        step: Option<String>,
        /// An answer field as KEY=VALUE (repeatable; VALUE is JSON when it
        /// parses, else a string).
        #[arg(short = 'v', long = "value", value_name = "KEY=VALUE", value_parser = key_value)]
        values: Vec<(String, String)>,
        /// The whole answer as JSON (`-v` values override its keys).
        #[arg(long, value_name = "JSON")]
        values_json: Option<String>,
    },
}

/// `weft plugin …`
#[derive(Subcommand, Debug)]
pub enum PluginCommand {
    /// Install a plugin component (`.wasm`) on the server.
    Install {
        /// Path to the component.
        file: PathBuf,
    },
    /// List installed plugins.
    List,
    /// Enable a plugin and grant it capabilities. Grants are added to the
    /// current ones; --replace sets exactly the ones given.
    Enable {
        /// Plugin id (`sha256:…` or a unique prefix), or name (`name@version`).
        plugin: String,
        /// A host the plugin may reach: `example.com`, `*.example.com`,
        /// `host:port` (repeatable).
        #[arg(long = "allow-host", value_name = "HOST")]
        hosts: Vec<String>,
        /// An environment variable passed through (repeatable).
        #[arg(long = "allow-env", value_name = "NAME")]
        env: Vec<String>,
        /// A secret the plugin may read (repeatable).
        #[arg(long = "allow-secret", value_name = "NAME")]
        secrets: Vec<String>,
        /// A server directory mapped to a path the plugin requested:
        /// `GUEST=HOST`, read-only, or `GUEST=HOST:rw` (repeatable). Given,
        /// these replace the plugin's directories; left out, it keeps them.
        #[arg(long = "dir", value_name = "GUEST=HOST[:rw]")]
        dirs: Vec<String>,
        /// Replace the current grants instead of adding to them.
        #[arg(long)]
        replace: bool,
    },
    /// Disable a plugin: new runs cannot use it; running ones finish.
    Disable {
        /// Plugin id (`sha256:…` or a unique prefix), or name (`name@version`).
        plugin: String,
    },
    /// Validate a plugin component locally (no server) and print its manifest as JSON.
    Inspect {
        /// Path to the `.wasm` component.
        file: PathBuf,
    },
}

/// Runs a client command and returns the process exit code; errors are
/// printed here (readably, or as JSON on stderr with `--json`).
pub async fn dispatch(command: Command, global: GlobalArgs) -> i32 {
    match execute(command, &global).await {
        Ok(code) => code,
        Err(e) => {
            report(&e, global.json);
            1
        }
    }
}

async fn execute(command: Command, g: &GlobalArgs) -> Result<i32> {
    // Inspecting a component is local: it must work without a server.
    if let Command::Plugin(PluginCommand::Inspect { file }) = &command {
        plugin::inspect(file).await?;
        return Ok(0);
    }
    let client = client::Client::new(&g.server, g.token.clone())?;
    match command {
        Command::Template(c) => template::execute(&client, c, g.json).await,
        Command::Run(a) => run::execute(&client, a, g.json).await,
        Command::Runs(c) => runs::execute(&client, c, g.json).await,
        Command::Plugin(c) => plugin::execute(&client, c, g.json).await,
        Command::Connection(c) => sync::connection(&client, c, g.json).await,
        Command::Job(c) => sync::job(&client, c, g.json).await,
    }
}

/// Prints an error: the server's code, message, per-field problems and a
/// hint; or the error chain on one line.
fn report(e: &anyhow::Error, json: bool) {
    if let Some(api) = client::api_error(e) {
        if json {
            eprintln!("{}", serde_json::json!({ "error": api.raw }));
            return;
        }
        eprintln!("error: {api}");
        for line in output::problem_lines(&api.problems) {
            eprintln!("  {line}");
        }
        if let Some(hint) = &api.hint {
            eprintln!("hint: {hint}");
        }
        if api.status >= 500
            && let Some(id) = &api.request_id
        {
            eprintln!("request id: {id} (look for it in the server log)");
        }
        return;
    }
    if json {
        eprintln!(
            "{}",
            serde_json::json!({ "error": { "message": format!("{e:#}") } })
        );
    } else {
        eprintln!("error: {e:#}");
    }
}

/// clap parser for `KEY=VALUE`.
fn key_value(s: &str) -> std::result::Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_owned(), v.to_owned())),
        _ => Err(format!("expected KEY=VALUE, got {s:?}")),
    }
}

/// clap parser for a run status: case-insensitive, `-` or `_`.
fn run_status(s: &str) -> std::result::Result<String, String> {
    const ALL: [&str; 7] = [
        "PENDING",
        "RUNNING",
        "PAUSED",
        "AWAITING_INPUT",
        "SUCCESS",
        "FAILED",
        "CANCELLED",
    ];
    let s = s.trim().to_ascii_uppercase().replace('-', "_");
    if ALL.contains(&s.as_str()) {
        Ok(s)
    } else {
        Err(format!(
            "unknown status; one of: {}",
            ALL.map(|a| a.to_ascii_lowercase().replace('_', "-"))
                .join(", ")
        ))
    }
}

/// A `KEY=VALUE` value: JSON when it parses as JSON, else the text itself.
fn json_or_string(raw: &str) -> Value {
    serde_json::from_str(raw).unwrap_or_else(|_| Value::String(raw.to_owned()))
}

/// Reads a file, or stdin for `-`; returns a display name and the bytes.
fn read_source(path: &str) -> Result<(String, Vec<u8>)> {
    if path == "-" {
        let mut buf = Vec::new();
        std::io::stdin()
            .read_to_end(&mut buf)
            .context("cannot read stdin")?;
        Ok(("<stdin>".to_owned(), buf))
    } else {
        let bytes = std::fs::read(path).with_context(|| format!("cannot read {path}"))?;
        Ok((path.to_owned(), bytes))
    }
}

/// Parses YAML or JSON (JSON is YAML) into a JSON object.
fn parse_object(name: &str, bytes: &[u8]) -> Result<Value> {
    let v: Value = serde_yaml_ng::from_slice(bytes)
        .with_context(|| format!("{name} is neither valid YAML nor JSON"))?;
    anyhow::ensure!(v.is_object(), "{name} must hold an object (a mapping)");
    Ok(v)
}

/// A JSON object from `--…-json`, with `KEY=VALUE` pairs applied on top.
fn object_with_pairs(
    base: Option<Value>,
    pairs: &[(String, String)],
    as_string: impl Fn(&str) -> bool,
) -> Result<Value> {
    let mut obj = match base {
        None => serde_json::Map::new(),
        Some(Value::Object(m)) => m,
        Some(_) => anyhow::bail!("expected a JSON object"),
    };
    for (k, v) in pairs {
        let value = if as_string(k) {
            Value::String(v.clone())
        } else {
            json_or_string(v)
        };
        obj.insert(k.clone(), value);
    }
    Ok(Value::Object(obj))
}

#[cfg(test)]
mod tests {
    use super::{json_or_string, key_value, object_with_pairs, run_status};
    use serde_json::json;

    #[test]
    fn parses_key_values_as_json_or_text() {
        assert_eq!(key_value("n=10"), Ok(("n".into(), "10".into())));
        assert_eq!(key_value("url=a=b"), Ok(("url".into(), "a=b".into())));
        assert!(key_value("=x").is_err() && key_value("nokey").is_err());
        assert_eq!(json_or_string("10"), json!(10));
        assert_eq!(json_or_string("Ada"), json!("Ada"));
        assert_eq!(json_or_string("[1,2]"), json!([1, 2]));
        let pairs = [
            ("n".into(), "10".into()),
            ("zip".into(), "01234".into()),
            ("id".into(), "42".into()),
        ];
        assert_eq!(
            object_with_pairs(Some(json!({"n": 1, "x": true})), &pairs, |k| k == "id")
                .unwrap_or_default(),
            json!({"n": 10, "x": true, "zip": "01234", "id": "42"})
        );
        assert_eq!(run_status("awaiting-input"), Ok("AWAITING_INPUT".into()));
        assert!(run_status("done").is_err());
    }
}
