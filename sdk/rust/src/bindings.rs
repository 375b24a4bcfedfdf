//! The one place the guest side generates bindings from `wit/`.

#![allow(missing_docs, clippy::all)]

wit_bindgen::generate!({
    path: "../../wit",
    world: "transformer",
    pub_export_macro: true,
    export_macro_name: "__export_transformer",
    default_bindings_module: "::sluice_sdk::__private::bindings",
});
