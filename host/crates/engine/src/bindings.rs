//! Host-side bindings generated from `wit/step.wit` (the `capable-step`
//! world, so every capability can be linked), and conversions between them
//! and the crate's own [`Item`](weft_core::item::Item) type. Parameters of the
//! exported `run` are borrowed types, so an attempt's input is lowered from
//! the host's items without cloning them first.

wasmtime::component::bindgen!({
    path: "../../../wit",
    world: "capable-step",
    imports: { default: async },
    exports: { default: async },
    ownership: Borrowing { duplicate_if_necessary: true },
});

use self::weft::plugin::types;
use weft_core::item::{self as host, Payload};

/// Each item's metadata as borrowed pairs, for [`item_params`] to point at.
pub(super) fn metadata_refs(items: &[host::Item]) -> Vec<Vec<(&str, &str)>> {
    items.iter().map(|item| item.metadata.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect()).collect()
}

/// The items as `run`'s borrowed parameter: lowering copies them into the
/// instance's memory straight from the host's items, with no copy between.
pub(super) fn item_params<'a>(
    items: &'a [host::Item],
    metadata: &'a [Vec<(&'a str, &'a str)>],
) -> Vec<types::ItemParam<'a>> {
    items
        .iter()
        .zip(metadata)
        .map(|(item, metadata)| types::ItemParam {
            payload: match &item.payload {
                Payload::Text(text) => types::PayloadParam::Text(text),
                Payload::Bytes(bytes) => types::PayloadParam::Bytes(bytes),
            },
            metadata,
        })
        .collect()
}

impl From<types::ItemResult> for host::Item {
    fn from(item: types::ItemResult) -> Self {
        host::Item {
            payload: match item.payload {
                types::PayloadResult::Text(text) => Payload::Text(text),
                types::PayloadResult::Bytes(bytes) => Payload::Bytes(bytes),
            },
            metadata: item.metadata,
        }
    }
}
