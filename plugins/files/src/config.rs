//! Connection configurations and the checks on them.

use schemars::JsonSchema;
use serde::Deserialize;
use std::path::{Component, Path, PathBuf};
use weft_plugin_sdk::PluginError;

/// The directory the connector asks to have preopened; paths live under it.
pub const ROOT: &str = "/data";

/// How rows are laid out in a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum FileFormat {
    /// One JSON object per line.
    Ndjson,
    /// Comma- (or otherwise) separated values.
    Csv,
}

impl FileFormat {
    /// The file name extension.
    pub fn extension(self) -> &'static str {
        match self {
            FileFormat::Ndjson => "ndjson",
            FileFormat::Csv => "csv",
        }
    }

    /// The format a file name suggests: `.csv`/`.tsv` are CSV, the rest NDJSON.
    pub fn from_name(name: &str) -> FileFormat {
        let lower = name.to_ascii_lowercase();
        if lower.ends_with(".csv") || lower.ends_with(".tsv") {
            FileFormat::Csv
        } else {
            FileFormat::Ndjson
        }
    }
}

/// CSV dialect.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct CsvOptions {
    /// Field separator, one ASCII character.
    pub delimiter: String,
    /// Quote character, one ASCII character.
    pub quote: String,
    /// Whether the first row names the columns (otherwise `column_1`, `column_2`, ...).
    pub header: bool,
}

impl Default for CsvOptions {
    fn default() -> Self {
        Self {
            delimiter: ",".into(),
            quote: "\"".into(),
            header: true,
        }
    }
}

impl CsvOptions {
    /// The delimiter and quote as bytes, refusing anything but one ASCII character.
    pub fn bytes(&self) -> Result<(u8, u8), PluginError> {
        let one = |field: &str, value: &str| match value.as_bytes() {
            [b] if b.is_ascii() && *b != b'\n' && *b != b'\r' => Ok(*b),
            _ => Err(PluginError::config(format!(
                "csv.{field} must be one ASCII character other than a line break, not {value:?}"
            ))),
        };
        let delimiter = if self.delimiter == "\\t" {
            b'\t'
        } else {
            one("delimiter", &self.delimiter)?
        };
        let quote = one("quote", &self.quote)?;
        if delimiter == quote {
            return Err(PluginError::config(
                "csv.delimiter and csv.quote must differ",
            ));
        }
        Ok((delimiter, quote))
    }
}

/// A files source: the files of one directory matching a glob.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SourceConfig {
    /// The directory to read, `/data` or below it.
    #[serde(default = "default_root")]
    pub path: String,
    /// Which file names to read: `*` any run of characters, `?` one, `[abc]` a set.
    #[serde(default = "default_glob")]
    pub glob: String,
    /// How the files are laid out; by default from each name (`.csv`/`.tsv` are CSV).
    #[serde(default)]
    pub format: Option<FileFormat>,
    /// Read every matching file as one stream of this name; by default each
    /// file is its own stream, named after the file.
    #[serde(default)]
    pub stream: Option<String>,
    /// CSV dialect.
    #[serde(default)]
    pub csv: CsvOptions,
    /// The rows' JSON Schema; by default inferred from the first rows.
    #[serde(default)]
    pub schema: Option<serde_json::Value>,
    /// Rows sampled per stream to infer a schema.
    #[serde(default = "default_sample")]
    pub sample_rows: u32,
}

/// A files destination: one output file per stream and sync, in one directory.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DestinationConfig {
    /// The directory to write, `/data` or below it (created when missing).
    #[serde(default = "default_root")]
    pub path: String,
    /// How to write rows.
    #[serde(default = "default_format")]
    pub format: FileFormat,
    /// CSV dialect.
    #[serde(default)]
    pub csv: CsvOptions,
}

fn default_root() -> String {
    ROOT.into()
}

fn default_glob() -> String {
    "*".into()
}

fn default_sample() -> u32 {
    1000
}

fn default_format() -> FileFormat {
    FileFormat::Ndjson
}

/// A file-system error as a plugin error: a missing or refused path is the
/// configuration's (or the grant's) fault and not worth retrying; anything
/// else may pass.
pub fn io_error(what: impl std::fmt::Display, e: std::io::Error) -> PluginError {
    match e.kind() {
        std::io::ErrorKind::NotFound
        | std::io::ErrorKind::PermissionDenied
        | std::io::ErrorKind::ReadOnlyFilesystem => PluginError::config(format!(
            "{what}: {e} (is {ROOT} granted, and read-write for a destination?)"
        )),
        _ => PluginError::transient(format!("{what}: {e}")),
    }
}

/// `path` as a directory under [`ROOT`]; `..` and paths elsewhere are refused
/// (the sandbox would refuse them anyway, with a less helpful message).
pub fn directory(path: &str) -> Result<PathBuf, PluginError> {
    let p = Path::new(path);
    let p = if p.is_absolute() {
        p.to_path_buf()
    } else {
        Path::new(ROOT).join(p)
    };
    if !p.starts_with(ROOT) || p.components().any(|c| matches!(c, Component::ParentDir)) {
        return Err(PluginError::config(format!(
            "path {path:?} must be {ROOT} or a directory below it, without `..`"
        )));
    }
    Ok(p)
}

/// A stream or sync name made safe for a file name: characters other than
/// letters, digits, `-`, `_` and `.` become `_`, and it never starts with `.`.
pub fn file_safe(name: &str) -> String {
    let mut out: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '_'
            }
        })
        .collect();
    if out.is_empty() || out.starts_with('.') {
        out.insert(0, '_');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn directories_stay_under_the_root() {
        assert_eq!(directory("in").unwrap(), PathBuf::from("/data/in"));
        assert_eq!(directory("/data").unwrap(), PathBuf::from("/data"));
        assert!(directory("/etc").is_err());
        assert!(directory("/data/../etc").is_err());
        assert!(directory("/database").is_err());
    }

    #[test]
    fn names_are_file_safe() {
        assert_eq!(file_safe("public.users"), "public.users");
        assert_eq!(file_safe("../x"), "_.._x");
        assert_eq!(file_safe(""), "_");
        assert_eq!(file_safe("a b/c"), "a_b_c");
    }

    #[test]
    fn csv_dialect_is_checked() {
        assert_eq!(CsvOptions::default().bytes().unwrap(), (b',', b'"'));
        let tab = CsvOptions {
            delimiter: "\\t".into(),
            ..Default::default()
        };
        assert_eq!(tab.bytes().unwrap().0, b'\t');
        let bad = CsvOptions {
            delimiter: ";;".into(),
            ..Default::default()
        };
        assert!(bad.bytes().is_err());
    }
}
