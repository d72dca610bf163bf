//! The `weft` binary: `weft serve` runs the server with the embedded store
//! and the first-party plugins; the other commands are the command-line
//! client of a server (see `cli/`), plus `weft plugin inspect`, which
//! validates a component locally.

mod cli;
mod config;
mod server;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::sync::Arc;
use weft_host::{HostConfig, PluginHost};

/// The first-party plugins, bundled at build time.
const BUNDLED_PLUGINS: &[(&str, &[u8])] = &[
    (
        "core",
        include_bytes!(concat!(env!("OUT_DIR"), "/core.wasm")),
    ),
    (
        "files",
        include_bytes!(concat!(env!("OUT_DIR"), "/files.wasm")),
    ),
    (
        "http",
        include_bytes!(concat!(env!("OUT_DIR"), "/http.wasm")),
    ),
    (
        "postgres",
        include_bytes!(concat!(env!("OUT_DIR"), "/postgres.wasm")),
    ),
];

/// Where the bundled `files` connector reads and writes, under the data
/// directory, unless an admin granted it another directory.
const FILES_DIR: &str = "files";

/// Weft: workflows whose every step is a sandboxed WebAssembly component.
#[derive(Parser)]
#[command(name = "weft", version, about)]
struct Cli {
    #[command(flatten)]
    client: cli::GlobalArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server (embedded store, first-party plugins installed).
    Serve(ServeArgs),
    #[command(flatten)]
    Client(cli::Command),
}

/// Flags of `weft serve`. Each is optional so that precedence is
/// flag > environment > `weft.toml` > default (see `config.rs`).
#[derive(clap::Args)]
struct ServeArgs {
    /// Settings file [default: ./weft.toml when it exists].
    #[arg(long, env = "WEFT_CONFIG")]
    config: Option<PathBuf>,
    /// Address to listen on [default: 127.0.0.1:8080].
    #[arg(long, env = "WEFT_LISTEN")]
    listen: Option<String>,
    /// Store URL: surrealkv://<dir> (durable), mem:// or ws://host:port [default: surrealkv://./weft-data/db].
    #[arg(long, env = "WEFT_DB")]
    db: Option<String>,
    /// Directory for the compile cache and the admin token hash [default: ./weft-data].
    #[arg(long, env = "WEFT_DATA_DIR")]
    data_dir: Option<PathBuf>,
}

fn main() -> Result<()> {
    // SAFETY: first statement of `main`; no other thread exists yet.
    #[allow(unsafe_code)]
    unsafe {
        weft_engine::process::prepare_process();
    }
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("WEFT_LOG")
                // The store's own start-up chatter (WAL replay, LSM set-up)
                // is not news to an operator; its warnings are.
                .unwrap_or_else(|_| "info,surrealdb=warn,surrealkv=warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        // Room for the expression evaluator on the workers themselves, so
        // it rarely needs a fresh stack segment (see weft_model's budget).
        .thread_stack_size(weft_engine::WORKER_STACK_BYTES)
        .build()?;
    match cli.command {
        Command::Serve(args) => rt.block_on(serve(args)),
        Command::Client(command) => {
            let code = rt.block_on(cli::dispatch(command, cli.client));
            // Stop the client's background tasks (log tails) before exiting.
            rt.shutdown_timeout(std::time::Duration::from_secs(1));
            std::process::exit(code)
        }
    }
}

async fn serve(args: ServeArgs) -> Result<()> {
    // Before anything records a metric.
    server::metrics::install();
    let args = config::resolve(config::Overrides {
        config: args.config,
        listen: args.listen,
        db: args.db,
        data_dir: args.data_dir,
    })?;
    if let Some(file) = &args.file {
        tracing::info!(file = %file.display(), "settings read");
    }
    std::fs::create_dir_all(&args.data_dir)
        .with_context(|| format!("cannot create {}", args.data_dir.display()))?;
    if let Some(token) = server::auth::init_admin_token(&args.data_dir)? {
        println!(
            "Generated the bootstrap admin token (shown once; set WEFT_ADMIN_TOKEN to choose your own):\n\n    {token}\n"
        );
    }
    let host = Arc::new(PluginHost::new(HostConfig {
        cache_dir: Some(args.data_dir.join("compiled")),
        memory_budget_bytes: args.memory_budget_bytes,
        // An upload the HTTP limit lets through must not be refused for its size later.
        max_component_bytes: args.body_limits.plugin,
        ..HostConfig::default()
    })?);
    let store = weft_store::Store::connect(&args.db).await?;
    let mut engine_config = args.engine;
    engine_config.secret_key = secret_key(&args.data_dir)?;
    let engine = weft_engine::Engine::start(engine_config, host, store).await?;
    for (name, bytes) in BUNDLED_PLUGINS {
        if bytes.is_empty() {
            tracing::warn!(
                "no bundled {name} plugin in this build (run scripts/build-guests.sh before building)"
            );
            continue;
        }
        let entry = engine
            .install_plugin(weft_model::Principal::bootstrap_admin(), bytes, true)
            .await
            .with_context(|| format!("installing bundled plugin {name}"))?;
        if *name == "files" && entry.grants.directories.is_empty() {
            grant_files_dir(&engine, &entry, &args.data_dir.join(FILES_DIR)).await?;
        }
        tracing::info!(plugin = %entry.manifest.name, version = %entry.manifest.version, "first-party plugin ready");
    }
    server::serve(engine, &args.listen, args.shutdown_grace, args.body_limits).await
}

/// Grants the bundled `files` connector its directory (as `/data`,
/// writable) the first time it is installed; an admin's grant wins after.
async fn grant_files_dir(
    engine: &weft_engine::Engine,
    entry: &weft_engine::PluginEntry,
    dir: &std::path::Path,
) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let dir = dir
        .canonicalize()
        .with_context(|| format!("cannot resolve {}", dir.display()))?;
    let mut grants = entry.grants.clone();
    grants.directories.push(weft_model::DirectoryGrant {
        guest_path: "/data".into(),
        host_path: dir.clone(),
        read_only: false,
    });
    engine
        .set_plugin_state(
            weft_model::Principal::bootstrap_admin(),
            &entry.digest,
            entry.enabled,
            grants,
        )
        .await?;
    tracing::info!(dir = %dir.display(), "the files connector reads and writes this directory as /data");
    Ok(())
}

/// The key that seals connection secrets: `WEFT_SECRET_KEY` (base64),
/// else the file `WEFT_SECRET_KEY_FILE` names, else `secret.key` in the
/// data directory, generated (mode 0600) on first start.
fn secret_key(data_dir: &std::path::Path) -> Result<weft_engine::SecretKey> {
    if let Ok(text) = std::env::var("WEFT_SECRET_KEY") {
        return weft_engine::SecretKey::from_base64(&text).context("WEFT_SECRET_KEY");
    }
    let (path, explicit) = match std::env::var_os("WEFT_SECRET_KEY_FILE") {
        Some(p) => (PathBuf::from(p), true),
        None => (data_dir.join("secret.key"), false),
    };
    match std::fs::read_to_string(&path) {
        Ok(text) => weft_engine::SecretKey::from_base64(&text)
            .with_context(|| format!("secret key file {}", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !explicit => {
            let key = weft_engine::SecretKey::generate();
            write_private(&path, &key.to_base64())?;
            tracing::info!(file = %path.display(), "generated the key that seals connection secrets; back it up");
            Ok(key)
        }
        Err(e) => Err(e).with_context(|| format!("cannot read secret key file {}", path.display())),
    }
}

/// Writes a file only its owner can read.
fn write_private(path: &std::path::Path, text: &str) -> Result<()> {
    use std::io::Write as _;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut f = options
        .open(path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    f.write_all(text.as_bytes())?;
    f.sync_all()?;
    Ok(())
}
