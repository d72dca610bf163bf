//! What the CLI prints: `--json` data, tables, coloured statuses, times and
//! durations. Tables and colours are for people; `--json` is for scripts.

use comfy_table::presets::NOTHING;
use comfy_table::{Attribute, Cell, Color, ContentArrangement, Table};
use serde_json::Value;
use std::io::{IsTerminal, Write};
use std::time::{SystemTime, UNIX_EPOCH};
use weft_api_types::ValidationError;
use weft_model::Failure;

/// Writes to stdout (see `outln!`): a closed pipe ends the process.
pub fn write_out(args: std::fmt::Arguments<'_>) {
    let mut out = std::io::stdout().lock();
    if let Err(e) = out.write_fmt(args).and_then(|()| out.flush())
        && e.kind() == std::io::ErrorKind::BrokenPipe
    {
        std::process::exit(141);
    }
}

/// Prints `v` as pretty JSON on stdout.
pub fn print_json(v: &Value) {
    outln!(
        "{}",
        serde_json::to_string_pretty(v).unwrap_or_else(|_| v.to_string())
    );
}

/// Whether stdout gets colours (a terminal, and `NO_COLOR` unset).
pub fn colour() -> bool {
    std::env::var_os("NO_COLOR").is_none() && std::io::stdout().is_terminal()
}

/// A borderless table (kubectl-style) with a bold header.
pub fn table(header: &[&str]) -> Table {
    let mut t = Table::new();
    t.load_style(NOTHING)
        .set_content_arrangement(ContentArrangement::Dynamic);
    if !colour() {
        t.force_no_tty();
    }
    t.set_header(
        header
            .iter()
            .map(|h| Cell::new(h).add_attribute(Attribute::Bold)),
    );
    // No borders: columns are told apart by two spaces, none at the left.
    for c in t.column_iter_mut() {
        c.set_padding((0, 2));
    }
    t
}

/// Prints a table, or a note when there are no rows.
pub fn print_table(t: &Table, empty: &str) {
    if t.row_count() == 0 {
        outln!("{empty}");
    } else {
        // Without a right border every line ends in padding: trim it.
        outln!("{}", t.trim_fmt());
    }
}

/// The colour that goes with a run or step status.
fn status_color(status: &str) -> Option<Color> {
    match status {
        "SUCCESS" | "OK" => Some(Color::Green),
        "FAILED" | "CANCELLED" => Some(Color::Red),
        "RUNNING" | "RETRYING" => Some(Color::Cyan),
        "AWAITING_INPUT" | "PAUSED" | "DISABLED" => Some(Color::Yellow),
        _ => None,
    }
}

/// A table cell with a coloured status.
pub fn status_cell(status: &str) -> Cell {
    let cell = Cell::new(status);
    match status_color(status) {
        Some(c) => cell.fg(c),
        None => cell,
    }
}

/// A status coloured for a plain line of text (colour only on a terminal).
pub fn styled_status(status: &str) -> String {
    if !colour() {
        return status.to_owned();
    }
    let s = console::style(status).force_styling(true);
    match status_color(status) {
        Some(Color::Green) => s.green(),
        Some(Color::Red) => s.red(),
        Some(Color::Cyan) => s.cyan(),
        Some(Color::Yellow) => s.yellow(),
        _ => s,
    }
    .to_string()
}

/// Dimmed text for secondary information (on a terminal).
pub fn dim(text: &str) -> String {
    if colour() {
        console::style(text).force_styling(true).dim().to_string()
    } else {
        text.to_owned()
    }
}

/// Milliseconds since the Unix epoch, now.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// Parses the server's timestamps (`2024-05-01T12:00:00.123Z`, RFC 3339 in
/// UTC) into Unix milliseconds.
pub fn parse_time(s: &str) -> Option<i64> {
    let s = s.strip_suffix('Z')?;
    let (date, time) = s.split_once('T')?;
    let mut d = date.splitn(3, '-').map(|p| p.parse::<i64>().ok());
    let (y, m, day) = (d.next()??, d.next()??, d.next()??);
    let (hms, frac) = time.split_once('.').unwrap_or((time, "0"));
    let mut t = hms.splitn(3, ':').map(|p| p.parse::<i64>().ok());
    let (h, mi, sec) = (t.next()??, t.next()??, t.next()??);
    let millis: i64 = format!("{frac:0<3}").get(..3)?.parse().ok()?;
    // Days from civil (Howard Hinnant's algorithm), the inverse of the server's.
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(((days * 86_400 + h * 3600 + mi * 60 + sec) * 1000) + millis)
}

/// A duration for people: `850ms`, `4.2s`, `3m05s`, `2h04m`, `3d04h`.
pub fn fmt_duration(ms: i64) -> String {
    let ms = ms.max(0);
    let s = ms / 1000;
    match ms {
        0..1_000 => format!("{ms}ms"),
        1_000..60_000 => format!("{:.1}s", ms as f64 / 1000.0),
        60_000..3_600_000 => format!("{}m{:02}s", s / 60, s % 60),
        3_600_000..86_400_000 => format!("{}h{:02}m", s / 3600, (s % 3600) / 60),
        _ => format!("{}d{:02}h", s / 86_400, (s % 86_400) / 3600),
    }
}

/// How long ago a server timestamp was (`12s ago`, `3m ago`); the raw
/// text if it does not parse.
pub fn age(ts: &str) -> String {
    let Some(t) = parse_time(ts) else {
        return ts.to_owned();
    };
    let s = (now_ms() - t).max(0) / 1000;
    match s {
        0 => "just now".to_owned(),
        1..60 => format!("{s}s ago"),
        60..3600 => format!("{}m ago", s / 60),
        3600..86_400 => format!("{}h ago", s / 3600),
        _ => format!("{}d ago", s / 86_400),
    }
}

/// A run's or step's duration from its timestamps; open-ended ones count
/// up to now.
pub fn span(start: Option<&str>, end: Option<&str>) -> String {
    let Some(start) = start.and_then(parse_time) else {
        return "-".to_owned();
    };
    match end.and_then(parse_time) {
        Some(end) => fmt_duration(end - start),
        None => format!("{}…", fmt_duration(now_ms() - start)),
    }
}

/// One-line JSON, cut to `max` characters.
pub fn compact(v: &Value, max: usize) -> String {
    let s = match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    if s.chars().count() <= max {
        s
    } else {
        let mut cut: String = s.chars().take(max.saturating_sub(1)).collect();
        cut.push('…');
        cut
    }
}

/// A failure as one line: the messages down the cause chain, then the
/// innermost code.
pub fn failure_text(err: &Failure) -> String {
    let mut parts: Vec<&str> = Vec::new();
    let mut code = err.code;
    let mut cur = Some(err);
    // Bounded: a cause chain is short, and the data comes from the server.
    for _ in 0..8 {
        let Some(f) = cur else { break };
        parts.push(&f.message);
        code = f.code;
        cur = f.cause.as_deref();
    }
    format!("{} ({code})", parts.join(": "))
}

/// Problems as aligned `<pointer>  <code>  <message>` lines (the empty
/// pointer, the whole document, shows as `(root)`).
pub fn problem_lines(problems: &[ValidationError]) -> Vec<String> {
    let pointer = |p: &ValidationError| {
        if p.pointer.is_empty() {
            "(root)".to_owned()
        } else {
            p.pointer.clone()
        }
    };
    let wp = problems.iter().map(|p| pointer(p).len()).max().unwrap_or(0);
    let wc = problems.iter().map(|p| p.code.len()).max().unwrap_or(0);
    problems
        .iter()
        .map(|p| {
            format!("{:wp$}  {:wc$}  {}", pointer(p), p.code, p.message)
                .trim_end()
                .to_owned()
        })
        .collect()
}

/// Quotes a word for a POSIX shell when it needs it.
pub fn shell_quote(s: &str) -> String {
    let plain = !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "_-./:=@%+,".contains(c));
    if plain {
        s.to_owned()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::{fmt_duration, parse_time, shell_quote};

    #[test]
    fn parses_server_timestamps() {
        assert_eq!(parse_time("1970-01-01T00:00:00.000Z"), Some(0));
        assert_eq!(
            parse_time("2023-11-14T22:13:20.123Z"),
            Some(1_700_000_000_123)
        );
        assert_eq!(parse_time("2000-02-29T00:00:00Z"), Some(951_782_400_000));
        assert_eq!(parse_time("yesterday"), None);
    }

    #[test]
    fn formats_durations_and_quotes() {
        assert_eq!(fmt_duration(850), "850ms");
        assert_eq!(fmt_duration(4_200), "4.2s");
        assert_eq!(fmt_duration(185_000), "3m05s");
        assert_eq!(shell_quote("fib[0]"), "'fib[0]'");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
        assert_eq!(shell_quote("approved=true"), "approved=true");
    }
}
