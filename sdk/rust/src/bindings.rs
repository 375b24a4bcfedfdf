//! The one place the guest side generates bindings from `wit/` (inside the
//! crate: in the repository a link to the top-level `wit/`, in the copy
//! `sluice plugin new` writes out the files themselves): the world of the
//! plugin kind the crate's features choose.

#![allow(missing_docs, clippy::all)]

#[cfg(any(
    all(feature = "transform", any(feature = "source", feature = "sink")),
    all(feature = "source", feature = "sink")
))]
compile_error!(
    "sluice-sdk: a plugin is one kind: enable exactly one of the features `transform` (the default), `source` or `sink` (with `default-features = false`)"
);

#[cfg(not(any(feature = "transform", feature = "source", feature = "sink")))]
compile_error!(
    "sluice-sdk: enable one of the features `transform` (the default), `source` or `sink`"
);

#[cfg(feature = "transform")]
wit_bindgen::generate!({
    path: "wit",
    world: "transformer",
    pub_export_macro: true,
    export_macro_name: "__export_transformer",
    default_bindings_module: "::sluice_sdk::__private::bindings",
});

#[cfg(all(feature = "source", not(feature = "transform"), not(feature = "sink")))]
wit_bindgen::generate!({
    path: "wit",
    world: "source-connector",
    pub_export_macro: true,
    export_macro_name: "__export_source_connector",
    default_bindings_module: "::sluice_sdk::__private::bindings",
    generate_all,
});

#[cfg(all(feature = "sink", not(feature = "transform"), not(feature = "source")))]
wit_bindgen::generate!({
    path: "wit",
    world: "sink-connector",
    pub_export_macro: true,
    export_macro_name: "__export_sink_connector",
    default_bindings_module: "::sluice_sdk::__private::bindings",
    generate_all,
});
