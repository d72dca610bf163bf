//! Host benchmark: compile, warm start from the disk cache, and the
//! per-invocation cost of `core/noop` and `core/fibo`, sequential and on
//! every core. Prints a Markdown table.
//!
//! Run with `cargo bench -p weft-host --bench host` after
//! `scripts/build-guests.sh`. Knobs: `WEFT_BENCH_QUICK=1` shrinks
//! iteration counts; `WEFT_BENCH_ONLY=invoke` skips compile and warm start
//! (for profiling); `WEFT_BENCH_WASM=<file>` and `WEFT_BENCH_STEP=<name>`
//! measure another component's step instead of `core/noop`, with
//! `WEFT_BENCH_INPUT=<json>` as its input (default `{}`).

#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use anyhow::{Context, Result};
use serde_json::json;
use std::sync::Arc;
use std::time::{Duration, Instant};
use wasmtime::component::{Component, Linker};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};
use weft_host::{HostConfig, InvokeStepRequest, PluginHost};
use weft_model::{PluginDigest, RunId, StepId};

fn core_wasm() -> Result<Vec<u8>> {
    let path = std::env::var("WEFT_BENCH_WASM").unwrap_or_else(|_| {
        concat!(env!("CARGO_MANIFEST_DIR"), "/../../build/wasm/core.wasm").to_owned()
    });
    std::fs::read(&path).with_context(|| format!("{path} missing: run scripts/build-guests.sh"))
}

struct Stats {
    p50: Duration,
    p99: Duration,
    n: usize,
}

fn stats(mut samples: Vec<Duration>) -> Stats {
    samples.sort_unstable();
    let at = |q: f64| samples[((samples.len() as f64 - 1.0) * q).round() as usize];
    Stats {
        p50: at(0.50),
        p99: at(0.99),
        n: samples.len(),
    }
}

fn fmt(d: Duration) -> String {
    let us = d.as_secs_f64() * 1e6;
    if us >= 10_000.0 {
        format!("{:.1} ms", us / 1e3)
    } else {
        format!("{us:.1} µs")
    }
}

/// CPU time used so far by each live thread of this process, from
/// `/proc/self/task/*/schedstat` (nanoseconds); empty off Linux.
fn thread_cpu() -> std::collections::HashMap<String, u64> {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return Default::default();
    };
    tasks
        .filter_map(|t| {
            let t = t.ok()?;
            let stat = std::fs::read_to_string(t.path().join("schedstat")).ok()?;
            let ns = stat.split_whitespace().next()?.parse().ok()?;
            Some((t.file_name().to_string_lossy().into_owned(), ns))
        })
        .collect()
}

/// CPU time the threads alive at both points used in between.
fn cpu_between(
    before: &std::collections::HashMap<String, u64>,
    after: &std::collections::HashMap<String, u64>,
) -> Option<Duration> {
    let ns: u64 = after
        .iter()
        .filter_map(|(tid, a)| Some(a.saturating_sub(*before.get(tid)?)))
        .sum();
    (ns > 0).then(|| Duration::from_nanos(ns))
}

fn row(name: &str, s: &Stats) {
    println!("| {name} | {} | {} | {} |", fmt(s.p50), fmt(s.p99), s.n);
}

fn config(cache: Option<&std::path::Path>) -> HostConfig {
    HostConfig {
        cache_dir: cache.map(|p| p.to_owned()),
        ..HostConfig::default()
    }
}

fn req(d: &PluginDigest, step: &str, input: serde_json::Value) -> InvokeStepRequest {
    InvokeStepRequest::new(
        d.clone(),
        step,
        input,
        RunId::new("bench").unwrap(),
        StepId::new("s").unwrap(),
    )
}

/// Bare wasmtime: the same component instantiated from an `InstancePre`
/// into a store with an empty WASI context, then dropped (no call, no
/// limits, no events). The floor the host's per-invocation cost is
/// compared with.
struct Bare {
    wasi: WasiCtx,
    http: WasiHttpCtx,
    table: wasmtime::component::ResourceTable,
}
impl WasiView for Bare {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}
impl WasiHttpView for Bare {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: Default::default(),
        }
    }
}

async fn bare_instantiate(bytes: &[u8], iters: usize) -> Result<Stats> {
    let mut cfg = wasmtime::Config::new();
    cfg.allocation_strategy(wasmtime::InstanceAllocationStrategy::pooling());
    let engine = wasmtime::Engine::new(&cfg)?;
    let component = Component::new(&engine, bytes)?;
    let mut linker: Linker<Bare> = Linker::new(&engine);
    wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
    wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker)?;
    // The Weft host interface as no-ops: `noop` never calls it.
    linker.instance("weft:plugin/types@0.1.0")?;
    let mut host = linker.instance("weft:plugin/host@0.1.0")?;
    for name in ["log", "progress", "emit-artifact", "secret", "cancelled"] {
        host.func_new(name, |_, _, _, _| Ok(()))?;
    }
    let pre = linker.instantiate_pre(&component)?;
    let mut samples = Vec::with_capacity(iters);
    for _ in 0..iters {
        let t = Instant::now();
        let mut store = wasmtime::Store::new(
            &engine,
            Bare {
                wasi: WasiCtx::builder().build(),
                http: WasiHttpCtx::new(),
                table: Default::default(),
            },
        );
        pre.instantiate_async(&mut store).await?;
        drop(store);
        samples.push(t.elapsed());
    }
    Ok(stats(samples))
}

fn main() -> Result<()> {
    let quick = std::env::var_os("WEFT_BENCH_QUICK").is_some();
    let scale = |n: usize| if quick { (n / 20).max(5) } else { n };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(async {
        let bytes = core_wasm()?;
        println!("core.wasm: {} KiB; {} cores", bytes.len() / 1024, std::thread::available_parallelism().map_or(1, |n| n.get()));
        println!();
        println!("| measurement | p50 | p99 | n |");
        println!("|---|---|---|---|");

        // `WEFT_BENCH_ONLY=invoke` skips compile and warm-start (for profiling).
        let only_invoke = std::env::var("WEFT_BENCH_ONLY").is_ok_and(|v| v == "invoke");
        let mut compile = Vec::new();
        for _ in 0..if only_invoke { 1 } else { scale(5).min(5) } {
            let host = PluginHost::new(config(None))?;
            compile.push(host.install(&bytes).await?.compile_time);
        }
        row("compile core plugin (cranelift, cold)", &stats(compile));

        let cache = tempfile::tempdir()?;
        PluginHost::new(config(Some(cache.path())))?.install(&bytes).await?;
        let mut warm = Vec::new();
        let mut warm_load = Vec::new();
        for _ in 0..if only_invoke { 1 } else { scale(40) } {
            let host = PluginHost::new(config(Some(cache.path())))?;
            let installed = host.install(&bytes).await?;
            assert_eq!(installed.source, weft_host::CompileSource::Cache);
            warm.push(installed.total_time);
            warm_load.push(installed.compile_time);
        }
        row("warm start: install from disk cache (hash + load + link + describe)", &stats(warm));
        row("  of which: sha256 + load compiled artifact", &stats(warm_load));

        // Profiling runs reuse the cached artifact so cranelift stays out of the profile.
        let host = Arc::new(PluginHost::new(config(only_invoke.then(|| cache.path())))?);
        let core = host.install(&bytes).await?.plugin.digest.clone();

        let noop_step = std::env::var("WEFT_BENCH_STEP").unwrap_or_else(|_| "noop".into());
        let noop_step = noop_step.as_str();
        let noop_input: serde_json::Value = match std::env::var("WEFT_BENCH_INPUT") {
            Ok(v) => serde_json::from_str(&v).context("WEFT_BENCH_INPUT is not JSON")?,
            Err(_) => json!({}),
        };
        for _ in 0..1000 {
            host.invoke_step(req(&core, noop_step, noop_input.clone())).await?;
        }
        let iters = scale(20_000);
        let mut noop = Vec::with_capacity(iters);
        for _ in 0..iters {
            let t = Instant::now();
            host.invoke_step(req(&core, noop_step, noop_input.clone())).await?;
            noop.push(t.elapsed());
        }
        let noop = stats(noop);
        row("core/noop: instantiate + call + drop (engine)", &noop);
        let bare = bare_instantiate(&bytes, iters).await?;
        row("bare wasmtime: new store + instantiate + drop", &bare);

        if std::env::var_os("WEFT_BENCH_WASM").is_none() {
            let mut fibo = Vec::new();
            for _ in 0..scale(2_000) {
                let t = Instant::now();
                host.invoke_step(req(&core, "fibo", json!({"n": 10}))).await?;
                fibo.push(t.elapsed());
            }
            row("core/fibo(10) invocation", &stats(fibo));
        }

        let total = scale(200_000);
        let concurrency = 64;
        let cpu_before = thread_cpu();
        let t = Instant::now();
        let mut tasks = Vec::new();
        for _ in 0..concurrency {
            let host = host.clone();
            let core = core.clone();
            let step = noop_step.to_owned();
            let input = noop_input.clone();
            tasks.push(tokio::spawn(async move {
                for _ in 0..total / concurrency {
                    host.invoke_step(req(&core, &step, input.clone())).await?;
                }
                anyhow::Ok(())
            }));
        }
        for task in tasks {
            task.await??;
        }
        let elapsed = t.elapsed();
        let cpu = cpu_between(&cpu_before, &thread_cpu());
        println!();
        println!(
            "core/noop throughput, {concurrency} concurrent tasks on 2 worker threads: {:.0} invocations/s ({} in {:.2} s)",
            (total / concurrency * concurrency) as f64 / elapsed.as_secs_f64(),
            total / concurrency * concurrency,
            elapsed.as_secs_f64()
        );
        if let Some(cpu) = cpu {
            println!(
                "  CPU used by this process meanwhile: {:.2} s of {:.2} s available on 2 workers ({:.1} µs per invocation); load average {}",
                cpu.as_secs_f64(),
                2.0 * elapsed.as_secs_f64(),
                cpu.as_secs_f64() * 1e6 / (total / concurrency * concurrency) as f64,
                std::fs::read_to_string("/proc/loadavg").unwrap_or_default().split_whitespace().take(3).collect::<Vec<_>>().join(" "),
            );
        }
        println!(
            "ratio engine noop p50 / bare instantiate p50: {:.2}",
            noop.p50.as_secs_f64() / bare.p50.as_secs_f64()
        );
        anyhow::Ok(())
    })
}
