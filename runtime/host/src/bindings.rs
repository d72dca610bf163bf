//! Host bindings for `weft:plugin@0.1.0`, generated from `wit/`.
//!
//! One `bindgen!` per world; worlds after the first reuse the shared
//! interfaces (`types`, `host`) through `with`, so the host implements
//! `host` once for every kind of plugin.

#![allow(missing_docs)]

/// Bindings for the `step-plugin` world (also used to call `describe` on
/// any plugin, since every plugin exports `plugin`).
pub mod step_plugin {
    wasmtime::component::bindgen!({
        path: "../../wit/weft-plugin@0.1.0",
        world: "step-plugin",
        imports: { default: trappable },
        exports: { default: async },
    });
}

/// The interface names this host understands, at the version it supports.
pub mod names {
    /// The contract version this host implements.
    pub const VERSION: &str = "0.1.0";
    /// `plugin` interface export name.
    pub const PLUGIN: &str = "weft:plugin/plugin@0.1.0";
    /// `step` interface export name.
    pub const STEP: &str = "weft:plugin/step@0.1.0";
    /// `source` interface export name.
    pub const SOURCE: &str = "weft:plugin/source@0.1.0";
    /// `destination` interface export name.
    pub const DESTINATION: &str = "weft:plugin/destination@0.1.0";
}
