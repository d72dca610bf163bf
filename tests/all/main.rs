//! End-to-end tests through the real host and real compiled plugins
//! (`scripts/build-guests.sh` builds them into `build/wasm/`).

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod capabilities;
mod core_steps;
mod durability;
mod engine;
mod examples;
mod hostile;
mod install;
mod limits;
mod sockets;
mod sync;
mod sync_hostile;
mod sync_http;
mod sync_postgres;
mod sync_postgres_faults;
