//! # wrong-version — a component for an unsupported contract version
//!
//! Exports `weft:plugin/plugin@9.0.0` (whose `describe` returns a string),
//! which no host supports; installing it must be rejected with a clear error.

#[allow(missing_docs, unsafe_code, clippy::all)]
mod bindings {
    wit_bindgen::generate!({
        inline: "
            package weft:plugin@9.0.0;

            interface plugin {
                describe: func() -> string;
            }

            world w {
                export plugin;
            }
        ",
        world: "w",
    });
}

struct Component;

impl bindings::exports::weft::plugin::plugin::Guest for Component {
    fn describe() -> String {
        r#"{"name":"wrong-version","version":"9.0.0"}"#.to_string()
    }
}

bindings::export!(Component with_types_in bindings);
