//! # weft-plugin-postgres
//!
//! Weft's `postgres` connector, one component with both roles, speaking the
//! PostgreSQL wire protocol from inside the sandbox over `wasi:sockets`
//! (the host lets it reach only the host and port an admin granted).
//!
//! - **Source** ([`source`]): tables and views of the configured schemas,
//!   read with `COPY … TO STDOUT` in resumable chunks, full refresh or
//!   incremental by a cursor with a key tie-break.
//! - **Destination** ([`destination`]): `COPY … FROM STDIN` into tables it
//!   creates or extends; append, overwrite (swapped in at the end) and
//!   upsert; exactly-once, the data and the commit marker in one transaction.
//! - A postgres → postgres sync passes COPY text through untouched.
//!
//! The protocol codec and authentication (SCRAM-SHA-256, md5) are
//! `postgres-protocol`'s; [`wire`] is the small blocking client around it,
//! and [`tls`] encrypts it with rustls and a pure-Rust crypto provider.
//! Build with `cargo build --target wasm32-wasip2 --release` in `plugins/`.
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

pub mod catalog;
pub mod config;
pub mod copy_text;
pub mod destination;
pub mod ndjson;
pub mod source;
pub mod tls;
pub mod wire;

pub use destination::PgDestination;
pub use source::PgSource;

weft_plugin_sdk::export_plugin! {
    name: "postgres",
    version: env!("CARGO_PKG_VERSION"),
    description: "PostgreSQL tables as a chunked, resumable COPY source, and an exactly-once COPY destination.",
    capabilities: weft_plugin_sdk::Capabilities {
        outbound_hosts: vec!["*".into()],
        ..Default::default()
    },
    source: PgSource,
    destination: PgDestination,
}
