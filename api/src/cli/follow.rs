//! Following a run live: its event stream (`GET /workflow-runs/{id}/events`,
//! SSE, resumed with `Last-Event-ID` if the connection drops), step
//! transitions, a progress bar, input requests, and step logs.
//!
//! Logs: when a step starts, its log stream (`…/steps/{step}/logs` with
//! `Accept: text/event-stream`) is tailed live; when the run's events say
//! the step ended, the tail stops and the rest is read as JSON pages after
//! the last line shown. The engine commits a step's last log lines before
//! (or with) its end event, so nothing is lost, nothing is shown twice, and
//! a step's lines come before the line saying it ended.

use super::client::{self, Client, decode};
use super::output::{self, dim, styled_status};
use super::runs;
use super::sse::SseStream;
use anyhow::Result;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde_json::Value;
use std::collections::{BTreeMap, HashSet};
use std::io::IsTerminal;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use weft_api_types::{EventView, LogView, RunView, StepView};
use weft_model::{EventKind, LogLevel, RunStatus, StepStatus};

/// Steps whose logs are tailed live at once; others (a wide `forEach`)
/// are read when they end, so a fan-out does not open hundreds of streams.
const MAX_LIVE_TAILS: usize = 8;
/// Reconnections to the event stream before giving up.
const MAX_RECONNECTS: u32 = 8;
/// Log lines per page when reading logs as JSON.
const PAGE: usize = 1000;

/// Where lines go: above the progress bar when there is one, else stdout.
#[derive(Clone)]
pub struct Console {
    bar: Option<ProgressBar>,
    /// Whether the bar is drawn yet: not before the first progress, so it
    /// never shows a meaningless `0/0`.
    shown: Arc<AtomicBool>,
}

impl Console {
    /// Plain stdout.
    pub fn plain() -> Self {
        Self {
            bar: None,
            shown: Arc::default(),
        }
    }

    /// With a progress bar on stderr when stderr is a terminal.
    pub fn with_progress() -> Self {
        if !std::io::stderr().is_terminal() {
            return Self::plain();
        }
        let style = ProgressStyle::with_template(
            "{spinner:.cyan} {elapsed:>4} [{bar:30.cyan/blue}] {pos}/{len} steps  {msg}",
        )
        .map(|s| s.progress_chars("=> "))
        .unwrap_or_else(|_| ProgressStyle::default_bar());
        let bar =
            ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::hidden()).with_style(style);
        Self {
            bar: Some(bar),
            shown: Arc::default(),
        }
    }

    /// Prints a line (the bar is redrawn below it).
    pub fn line(&self, text: &str) {
        match &self.bar {
            Some(bar) => bar.suspend(|| outln!("{text}")),
            None => outln!("{text}"),
        }
    }

    /// Removes the progress bar.
    pub fn clear(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }

    fn progress(&self, run: &RunView) {
        let Some(bar) = &self.bar else {
            return;
        };
        let p = &run.progress;
        bar.set_length(u64::from(p.total));
        bar.set_position(u64::from(p.completed));
        let status = run.status.as_str();
        bar.set_message(if p.running.is_empty() {
            styled_status(status)
        } else {
            format!("{}  {}", styled_status(status), p.running.join(", "))
        });
        if !self.shown.swap(true, Ordering::SeqCst) {
            bar.set_draw_target(ProgressDrawTarget::stderr());
            bar.enable_steady_tick(Duration::from_millis(120));
        }
    }
}

/// What to show while following.
#[derive(Clone)]
pub struct Options {
    /// Step and run transitions (`▶ greet: attempt 1 started`).
    pub transitions: bool,
    /// Input requests with the `weft runs answer` command.
    pub prompts: bool,
    /// Step logs.
    pub logs: LogMode,
    /// Only this step's logs.
    pub only: Option<String>,
}

/// How step logs are shown.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum LogMode {
    /// Not at all.
    Off,
    /// `step │ message` lines.
    Human,
    /// One JSON object per line, with a `step` field.
    Json,
}

/// Prints a step's log lines.
#[derive(Clone)]
pub struct LogPrinter {
    console: Console,
    step: String,
    mode: LogMode,
}

impl LogPrinter {
    /// A printer for `step`'s lines.
    pub fn new(console: &Console, step: &str, mode: LogMode) -> Self {
        Self {
            console: console.clone(),
            step: step.to_owned(),
            mode,
        }
    }

    fn print(&self, line: &LogView) {
        match self.mode {
            LogMode::Off => {}
            LogMode::Json => {
                let mut l = serde_json::to_value(line).unwrap_or_default();
                if let Some(o) = l.as_object_mut() {
                    o.insert("step".into(), Value::String(self.step.clone()));
                }
                self.console.line(&l.to_string());
            }
            LogMode::Human => {
                let level = match line.level {
                    LogLevel::Info | LogLevel::Debug | LogLevel::Trace | LogLevel::Progress => {
                        String::new()
                    }
                    other => format!("{} ", other.as_str().to_ascii_uppercase()),
                };
                self.console.line(&format!(
                    "{} {level}{}",
                    dim(&format!("{} │", self.step)),
                    line.message
                ));
            }
        }
    }
}

/// Prints `step`'s log lines after `last` from JSON pages, advancing `last`.
pub async fn print_logs(
    client: &Client,
    run_id: &str,
    printer: &LogPrinter,
    last: &AtomicU64,
) -> Result<()> {
    let step = printer.step.clone();
    loop {
        let page = client
            .get(
                &["workflow-runs", run_id, "steps", &step, "logs"],
                &[
                    ("after", last.load(Ordering::SeqCst).to_string()),
                    ("limit", PAGE.to_string()),
                ],
            )
            .await?;
        let lines: Vec<LogView> = decode(&page)?;
        for l in &lines {
            emit(printer, last, l);
        }
        if lines.len() < PAGE {
            return Ok(());
        }
    }
}

/// Prints a line unless it was shown already.
fn emit(printer: &LogPrinter, last: &AtomicU64, line: &LogView) {
    let seq = line.seq;
    if seq > last.load(Ordering::SeqCst) {
        printer.print(line);
        last.store(seq, Ordering::SeqCst);
    }
}

/// Tails a step's live log stream until aborted or the stream ends.
async fn tail(client: Client, run_id: String, printer: LogPrinter, last: Arc<AtomicU64>) {
    let url = client.url(&["workflow-runs", &run_id, "steps", &printer.step, "logs"]);
    let Ok(resp) = client.stream(url, Some(last.load(Ordering::SeqCst))).await else {
        return; // the final page read catches up
    };
    let mut sse = SseStream::new(resp);
    while let Ok(Some(ev)) = sse.next().await {
        if let Ok(line) = serde_json::from_str::<LogView>(&ev.data) {
            emit(&printer, &last, &line);
        }
    }
}

#[derive(Default)]
struct Tail {
    last: Arc<AtomicU64>,
    task: Option<JoinHandle<()>>,
}

impl Tail {
    fn live(&self) -> bool {
        self.task.as_ref().is_some_and(|t| !t.is_finished())
    }
}

/// The log tails of one run's steps.
struct LogTails {
    client: Client,
    run_id: String,
    console: Console,
    mode: LogMode,
    only: Option<String>,
    steps: BTreeMap<String, Tail>,
}

impl LogTails {
    fn wanted(&self, step: &str) -> bool {
        self.mode != LogMode::Off && self.only.as_deref().is_none_or(|o| o == step)
    }

    fn start(&mut self, step: &str) {
        if !self.wanted(step) {
            return;
        }
        let live = self.steps.values().filter(|t| t.live()).count();
        let tail = self.steps.entry(step.to_owned()).or_default();
        if tail.live() || live >= MAX_LIVE_TAILS {
            return;
        }
        tail.task = Some(tokio::spawn(self::tail(
            self.client.clone(),
            self.run_id.clone(),
            LogPrinter::new(&self.console, step, self.mode),
            tail.last.clone(),
        )));
    }

    /// Stops the live tail and prints what is left.
    async fn stop(&mut self, step: &str) {
        if !self.wanted(step) {
            return;
        }
        let tail = self.steps.entry(step.to_owned()).or_default();
        if let Some(task) = tail.task.take() {
            task.abort();
            let _ = task.await;
        }
        let printer = LogPrinter::new(&self.console, step, self.mode);
        if let Err(e) = print_logs(&self.client, &self.run_id, &printer, &tail.last).await {
            self.console
                .line(&format!("warning: cannot read the logs of {step}: {e:#}"));
        }
    }

    async fn finish(&mut self) {
        let steps: Vec<String> = self.steps.keys().cloned().collect();
        for s in steps {
            self.stop(&s).await;
        }
    }
}

/// Re-reads the run for the progress bar in the background. Reads never
/// overlap and wake-ups arriving meanwhile coalesce into one more read, so
/// the bar stays current without a request per event or a stalled event loop.
struct Refresher {
    wake: Arc<Notify>,
    task: JoinHandle<()>,
}

impl Refresher {
    fn spawn(client: Client, run_id: String, console: Console) -> Self {
        let wake = Arc::new(Notify::new());
        let notified = wake.clone();
        let task = tokio::spawn(async move {
            loop {
                notified.notified().await;
                if let Ok(run) = client.get(&["workflow-runs", &run_id], &[]).await
                    && let Ok(run) = decode::<RunView>(&run)
                {
                    console.progress(&run);
                }
            }
        });
        Self { wake, task }
    }
}

impl Drop for Refresher {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Follows one run's events.
struct Follower<'a> {
    client: &'a Client,
    run_id: &'a str,
    opts: Options,
    console: Console,
    tails: LogTails,
    refresher: Option<Refresher>,
    prompted: HashSet<String>,
}

impl Follower<'_> {
    /// Asks for the progress bar to be brought up to date.
    fn refresh(&self) {
        if let Some(r) = &self.refresher {
            r.wake.notify_one();
        }
    }

    fn transition(&self, symbol: &str, subject: &str, message: &str) {
        if self.opts.transitions {
            self.console
                .line(&format!("{symbol} {subject}: {}", dim(message)));
        }
    }

    async fn handle(&mut self, event: &EventView) {
        let kind = event.kind;
        let step = event.step.as_deref().unwrap_or_default();
        let message = event.message.as_str();
        match kind {
            EventKind::StepStarted => {
                self.transition("▶", step, message);
                self.tails.start(step);
                self.refresh();
            }
            EventKind::StepSucceeded
            | EventKind::StepFailed
            | EventKind::StepRetrying
            | EventKind::StepCancelled
            | EventKind::StepSkipped => {
                self.tails.stop(step).await;
                let symbol = match kind {
                    EventKind::StepSucceeded => "✔",
                    EventKind::StepFailed | EventKind::StepCancelled => "✘",
                    EventKind::StepRetrying => "↻",
                    _ => "–",
                };
                self.transition(symbol, step, message);
                self.refresh();
            }
            EventKind::StepAwaitingInput => {
                self.tails.stop(step).await;
                self.refresh();
                if self.opts.prompts {
                    self.prompt(step).await;
                } else {
                    self.transition("⏸", step, message);
                }
            }
            EventKind::StepInputReceived => {
                // A restart may ask again: prompt again if it does.
                self.prompted.remove(step);
                self.transition("✎", step, message);
            }
            k if k.is_step() => {
                self.transition("·", step, message);
                self.refresh();
            }
            EventKind::RunCreated | EventKind::RunStarted => {}
            EventKind::RunStatusChanged => {
                if self.opts.transitions {
                    let status = event.status.map_or(message, |s| s.as_str());
                    self.console
                        .line(&format!("● run is {}", styled_status(status)));
                }
                self.refresh();
            }
            _ => {
                self.transition("●", "run", message);
                self.refresh();
            }
        }
    }

    /// Shows an input request with the command that answers it, unless it
    /// was answered already (replayed history).
    async fn prompt(&mut self, step: &str) {
        if !self.prompted.insert(step.to_owned()) {
            return;
        }
        match self
            .client
            .get(&["workflow-runs", self.run_id, "steps", step], &[])
            .await
        {
            Ok(s) => {
                let Some(request) = decode::<StepView>(&s)
                    .ok()
                    .filter(|s| s.status == StepStatus::AwaitingInput)
                    .and_then(|s| s.input_request)
                else {
                    return;
                };
                for line in runs::input_request_lines(self.client, self.run_id, step, &request) {
                    self.console.line(&line);
                }
                self.console.line(&dim(
                    "waiting for the answer… (Ctrl-C stops following; the run keeps waiting)",
                ));
            }
            Err(e) => self.console.line(&format!(
                "warning: cannot read the input request of {step}: {e:#}"
            )),
        }
    }
}

/// Follows a run until it ends and returns the final run (the API's view).
pub async fn follow(
    client: &Client,
    run_id: &str,
    opts: Options,
    console: &Console,
) -> Result<Value> {
    let tails = LogTails {
        client: client.clone(),
        run_id: run_id.to_owned(),
        console: console.clone(),
        mode: opts.logs,
        only: opts.only.clone(),
        steps: BTreeMap::new(),
    };
    let mut f = Follower {
        client,
        run_id,
        opts,
        console: console.clone(),
        tails,
        refresher: console
            .bar
            .is_some()
            .then(|| Refresher::spawn(client.clone(), run_id.to_owned(), console.clone())),
        prompted: HashSet::new(),
    };
    f.refresh();
    let mut last_seq: Option<u64> = None;
    let mut failures = 0u32;
    let url = client.url(&["workflow-runs", run_id, "events"]);
    'stream: loop {
        match client.stream(url.clone(), last_seq).await {
            Ok(resp) => {
                let mut sse = SseStream::new(resp);
                while let Ok(Some(ev)) = sse.next().await {
                    failures = 0;
                    let Ok(event) = serde_json::from_str::<EventView>(&ev.data) else {
                        continue;
                    };
                    last_seq = Some(event.seq);
                    if event.kind.ends_run() {
                        break 'stream;
                    }
                    f.handle(&event).await;
                }
            }
            // The server answered (unknown run, bad token): retrying cannot help.
            Err(e) if client::api_error(&e).is_some() => return Err(e),
            Err(e) if failures >= MAX_RECONNECTS => return Err(e),
            Err(_) => {}
        }
        // The stream ended before the run did (a server restart, a proxy
        // timeout): resume after the last event seen.
        failures += 1;
        if failures > MAX_RECONNECTS {
            anyhow::bail!("lost the event stream of run {run_id}; see `weft runs show {run_id}`");
        }
        if let Ok(run) = client.get(&["workflow-runs", run_id], &[]).await
            && decode::<RunView>(&run).is_ok_and(|r| r.status.is_terminal())
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250 << failures.min(5))).await;
    }
    f.tails.finish().await;
    // Stop background reads before the last one, so it is the one shown.
    drop(f.refresher.take());
    let raw = client.get(&["workflow-runs", run_id], &[]).await?;
    console.progress(&decode(&raw)?);
    Ok(raw)
}

/// Follows a run to its end for `weft run --follow`, prints the result and
/// returns the exit code: 0 SUCCESS, 1 FAILED or CANCELLED, 130 on Ctrl-C.
pub async fn run_to_end(client: &Client, run_id: &str, json: bool) -> Result<i32> {
    let (console, opts) = if json {
        let off = Options {
            transitions: false,
            prompts: false,
            logs: LogMode::Off,
            only: None,
        };
        (Console::plain(), off)
    } else {
        let on = Options {
            transitions: true,
            prompts: true,
            logs: LogMode::Human,
            only: None,
        };
        (Console::with_progress(), on)
    };
    if !json {
        console.line(&dim(&format!("following run {run_id}")));
    }
    let run = tokio::select! {
        run = follow(client, run_id, opts, &console) => {
            console.clear();
            run?
        }
        _ = tokio::signal::ctrl_c() => {
            console.clear();
            eprintln!("stopped following; run {run_id} carries on: weft runs show {run_id}");
            return Ok(130);
        }
    };
    if json {
        output::print_json(&run);
    }
    let run: RunView = decode(&run)?;
    if !json {
        print_result(&run);
    }
    Ok(if run.status == RunStatus::Success {
        0
    } else {
        1
    })
}

/// `✔ run … SUCCESS in 1.2s` and the outputs, or the error.
pub fn print_result(run: &RunView) {
    let took = output::span(run.started_at.as_deref(), run.ended_at.as_deref());
    let symbol = if run.status == RunStatus::Success {
        "✔"
    } else {
        "✘"
    };
    outln!(
        "{symbol} run {} {} in {took}",
        run.id,
        styled_status(run.status.as_str())
    );
    if let Some(err) = &run.error {
        outln!("error: {}", output::failure_text(err));
    }
    if let Some(outputs) = run.outputs.as_ref().filter(|o| !o.is_null()) {
        outln!("outputs:");
        output::print_json(outputs);
    }
}
