//! The `weft` binary: the server (`weft serve`, coming with the API) and
//! the command-line client. Today it can inspect plugin components.

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use std::path::PathBuf;
use weft_host::{HostConfig, PluginHost};

/// Weft: workflows whose every step is a sandboxed WebAssembly component.
#[derive(Parser)]
#[command(name = "weft", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Work with plugin components.
    Plugin {
        #[command(subcommand)]
        command: PluginCommand,
    },
}

#[derive(Subcommand)]
enum PluginCommand {
    /// Validate a plugin component and print its manifest as JSON.
    Inspect {
        /// Path to the `.wasm` component.
        file: PathBuf,
    },
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    match cli.command {
        Command::Plugin {
            command: PluginCommand::Inspect { file },
        } => rt.block_on(inspect(file)),
    }
}

async fn inspect(file: PathBuf) -> Result<()> {
    let bytes = std::fs::read(&file).with_context(|| format!("cannot read {}", file.display()))?;
    let host = PluginHost::new(HostConfig {
        max_concurrent_instances: 4,
        ..HostConfig::default()
    })?;
    let installed = host
        .install(&bytes)
        .await
        .with_context(|| format!("{} is not a valid Weft plugin", file.display()))?;
    let view = serde_json::json!({
        "digest": installed.plugin.digest.to_string(),
        "manifest": installed.plugin.manifest,
        "compileMs": installed.compile_time.as_secs_f64() * 1e3,
    });
    println!("{}", serde_json::to_string_pretty(&view)?);
    Ok(())
}
