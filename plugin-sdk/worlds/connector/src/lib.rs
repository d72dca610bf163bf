//! Bindings of the `weft:plugin@0.2.0` world `connector` (Connector (source and destination)), used
//! through `weft-plugin-sdk`. wit-bindgen's export macros are exported at
//! the crate root, so every world needs a crate of its own.

#![allow(missing_docs, unsafe_code, clippy::all)]

wit_bindgen::generate!({
        path: "../../wit/weft-plugin@0.2.0",
        world: "connector",
        pub_export_macro: true,
        default_bindings_module: "weft_plugin_sdk::bindings::connector",
        export_macro_name: "export",
        with: {
            "weft:plugin/types@0.2.0": weft_sdk_world_step::weft::plugin::types,
            "weft:plugin/host@0.2.0": weft_sdk_world_step::weft::plugin::host,
        },
});
