//! Host bindings for the `weft:plugin` contract, generated from `wit/`.
//!
//! [`latest`] is the version the host implements (`0.2.0`); every older
//! version this host still supports has a module of its own
//! ([`v0_1`]) whose types the adapters in `since_v0_1` map onto the latest
//! ones. [`ContractVersion::SUPPORTED`] is the one list of versions.

#![allow(missing_docs)]

/// `weft:plugin@0.2.0`, the contract the host implements.
pub mod latest {
    /// The `step-plugin` world: `types`, `host`, `plugin` and `step`.
    pub mod step_plugin {
        wasmtime::component::bindgen!({
            path: "../../wit/weft-plugin@0.2.0",
            world: "step-plugin",
            imports: { default: trappable },
            exports: { default: async },
        });
    }

    /// The `connector` world: `source` and `destination`, sharing the
    /// `types` and `host` of [`step_plugin`] so the host implements `host` once.
    pub mod connector {
        wasmtime::component::bindgen!({
            path: "../../wit/weft-plugin@0.2.0",
            world: "connector",
            imports: { default: trappable },
            exports: { default: async },
            with: {
                "weft:plugin/types": super::step_plugin::weft::plugin::types,
                "weft:plugin/host": super::step_plugin::weft::plugin::host,
            },
        });
    }

    pub use connector::exports::weft::plugin::{destination, source};
    pub use step_plugin::exports::weft::plugin::{plugin, step};
    pub use step_plugin::weft::plugin::{host, types};
}

/// `weft:plugin@0.1.0` (frozen): step plugins only; see `since_v0_1`.
pub mod v0_1 {
    wasmtime::component::bindgen!({
        path: "../../wit/weft-plugin@0.1.0",
        world: "step-plugin",
        imports: { default: trappable },
        exports: { default: async },
    });

    pub use exports::weft::plugin::{plugin, step};
    pub use weft::plugin::{host, types};
}

/// A version of the contract this host can load.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContractVersion {
    /// `0.1.0`: step plugins, through the `since_v0_1` adapter.
    V0_1,
    /// `0.2.0`: steps and connectors, native.
    V0_2,
}

/// A role interface of the contract.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Interface {
    /// `plugin`, exported by every plugin.
    Plugin,
    /// `step`.
    Step,
    /// `source`.
    Source,
    /// `destination`.
    Destination,
}

impl ContractVersion {
    /// Every version the host loads, newest first.
    pub const SUPPORTED: [Self; 2] = [Self::V0_2, Self::V0_1];

    /// The semver text, e.g. `0.2.0`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::V0_1 => "0.1.0",
            Self::V0_2 => "0.2.0",
        }
    }

    /// The export name of `interface` at this version, e.g. `weft:plugin/step@0.2.0`.
    pub fn export_name(self, interface: Interface) -> String {
        let name = match interface {
            Interface::Plugin => "plugin",
            Interface::Step => "step",
            Interface::Source => "source",
            Interface::Destination => "destination",
        };
        format!("weft:plugin/{name}@{}", self.as_str())
    }

    /// The supported versions as text, for errors: `0.2.0, 0.1.0`.
    pub fn supported_list() -> String {
        Self::SUPPORTED
            .iter()
            .map(|v| v.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    }
}
