//! # unknown-world — a component that is not a Weft plugin at all
//!
//! Exports `acme:thing/greet@1.0.0`; installing it must be rejected with a
//! clear error.

#[allow(missing_docs, unsafe_code, clippy::all)]
mod bindings {
    wit_bindgen::generate!({
        inline: "
            package acme:thing@1.0.0;

            interface greet {
                hello: func() -> string;
            }

            world w {
                export greet;
            }
        ",
        world: "w",
    });
}

struct Component;

impl bindings::exports::acme::thing::greet::Guest for Component {
    fn hello() -> String {
        "hello".to_string()
    }
}

bindings::export!(Component with_types_in bindings);
