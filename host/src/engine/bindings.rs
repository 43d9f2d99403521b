//! Host-side bindings generated from `wit/step.wit` (the `capable-step`
//! world, so every capability can be linked), and conversions between them
//! and the crate's own [`Item`](crate::item::Item) type.

wasmtime::component::bindgen!({
    path: "../wit",
    world: "capable-step",
    imports: { default: async },
    exports: { default: async },
});

use self::weft::plugin::types;
use crate::item::{self as host, Payload};

impl From<host::Item> for types::Item {
    fn from(item: host::Item) -> Self {
        types::Item {
            payload: match item.payload {
                Payload::Text(text) => types::Payload::Text(text),
                Payload::Bytes(bytes) => types::Payload::Bytes(bytes),
            },
            metadata: item.metadata,
        }
    }
}

impl From<types::Item> for host::Item {
    fn from(item: types::Item) -> Self {
        host::Item {
            payload: match item.payload {
                types::Payload::Text(text) => Payload::Text(text),
                types::Payload::Bytes(bytes) => Payload::Bytes(bytes),
            },
            metadata: item.metadata,
        }
    }
}
