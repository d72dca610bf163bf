//! Bindings of the `weft:plugin@0.2.0` world `step-plugin` (Step), used
//! through `weft-plugin-sdk`. wit-bindgen's export macros are exported at
//! the crate root, so every world needs a crate of its own.

#![allow(missing_docs, unsafe_code, clippy::all)]

wit_bindgen::generate!({
        // The SDK's own copy, so it builds once published; a test of the SDK
        // checks it is byte for byte the repository's `wit/`.
        path: "../../wit/weft-plugin@0.2.0",
        world: "step-plugin",
        pub_export_macro: true,
        default_bindings_module: "weft_plugin_sdk::bindings::step_plugin",
        export_macro_name: "export",
});
