//! The one place the host generates bindings from `wit/`.

#![allow(missing_docs)]

wasmtime::component::bindgen!({
    path: "../wit",
    world: "transformer",
});
