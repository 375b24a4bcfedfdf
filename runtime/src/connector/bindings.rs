//! Host bindings of the connector worlds (`wit/connector.wit`). The shared
//! `types` and `log` interfaces come from the transform bindings, WASI from
//! wasmtime-wasi and wasmtime-wasi-http, so each is implemented once.

#![allow(missing_docs)]

/// The `source-connector` world.
pub mod source {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "source-connector",
        require_store_data_send: true,
        with: {
            "sluice:plugin/types": crate::plugin::bindings::sluice::plugin::types,
            "sluice:plugin/log": crate::plugin::bindings::sluice::plugin::log,
            "wasi:http": wasmtime_wasi_http::p2::bindings::http,
            "wasi:io": wasmtime_wasi::p2::bindings::io,
            "wasi:clocks": wasmtime_wasi::p2::bindings::clocks,
        },
    });
}

/// The `sink-connector` world.
pub mod sink {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "sink-connector",
        require_store_data_send: true,
        with: {
            "sluice:plugin/types": crate::plugin::bindings::sluice::plugin::types,
            "sluice:plugin/log": crate::plugin::bindings::sluice::plugin::log,
            "sluice:plugin/connector-types": super::source::sluice::plugin::connector_types,
            "sluice:plugin/secrets": super::source::sluice::plugin::secrets,
            "sluice:plugin/http-client": super::source::sluice::plugin::http_client,
            "sluice:plugin/json": super::source::sluice::plugin::json,
            "wasi:http": wasmtime_wasi_http::p2::bindings::http,
            "wasi:io": wasmtime_wasi::p2::bindings::io,
            "wasi:clocks": wasmtime_wasi::p2::bindings::clocks,
        },
    });
}
