//! # weft-plugin-http
//!
//! Weft's `http` connector.
//!
//! - **Source**: each configured endpoint of a JSON API is a stream. Records
//!   are the array at a JSON pointer of each response; pages follow by
//!   offset, page number, a cursor in the body, a next URL in the body or
//!   the `Link` header. Incremental reads resume from the highest cursor
//!   seen. A checkpoint follows every page (see [`source`]).
//! - **Destination**: posts records as JSON to a webhook (see [`destination`]).
//!
//! Both send an auth header from a secret config field, only to the
//! configured origin, and retry network errors, 5xx and 429 with back-off,
//! honouring `Retry-After`. The hosts must be granted to the plugin.
//!
//! Build with `cargo build --target wasm32-wasip2 --release` in `plugins/`.
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

pub mod client;
pub mod config;
pub mod destination;
pub mod source;
pub mod url;

pub use destination::WebhookDestination;
pub use source::HttpSource;

weft_plugin_sdk::export_plugin! {
    name: "http",
    version: env!("CARGO_PKG_VERSION"),
    description: "Paginated JSON APIs as a source, and a webhook destination that posts records as JSON.",
    capabilities: weft_plugin_sdk::Capabilities {
        outbound_hosts: vec!["*".into()],
        ..Default::default()
    },
    source: HttpSource,
    destination: WebhookDestination,
}
