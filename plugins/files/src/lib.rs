//! # weft-plugin-files
//!
//! Weft's `files` connector: CSV and NDJSON files in a directory an admin
//! grants as `/data`.
//!
//! - **Source**: the files of `path` matching `glob`, each file a stream (or
//!   all of them one stream), with a schema from the configuration or
//!   inferred from the first rows; CSV cells are typed by the schema.
//!   NDJSON passes through untouched when the destination takes NDJSON,
//!   everything else travels as Arrow IPC. Checkpoints are byte offsets, so
//!   a stopped sync resumes, and incremental syncs read new files and lines.
//! - **Destination**: exactly-once, one output file per stream and sync,
//!   published atomically at the end (see [`destination`]).
//!
//! Build with `cargo build --target wasm32-wasip2 --release` in `plugins/`.
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

pub mod config;
pub mod destination;
mod schema;
pub mod source;

pub use destination::FilesDestination;
pub use source::FilesSource;

weft_plugin_sdk::export_plugin! {
    name: "files",
    version: env!("CARGO_PKG_VERSION"),
    description: "CSV and NDJSON files in a granted directory: a source, and an exactly-once destination.",
    capabilities: weft_plugin_sdk::Capabilities {
        directories: vec![config::ROOT.into()],
        ..Default::default()
    },
    source: FilesSource,
    destination: FilesDestination,
}
