//! The SDK sources and the WIT package, compiled into the binary so that
//! `sluice plugin build` and `sluice plugin new` work without a checkout.

/// The WIT package (`wit/plugin.wit`).
pub(crate) const WIT: &str = include_str!("../../../wit/plugin.wit");

/// The whole WIT directory connectors build against: the package (both
/// files) and the WASI packages it imports, as (path, contents).
pub(crate) const CONNECTOR_WIT: &[(&str, &str)] = &[
    ("plugin.wit", WIT),
    ("connector.wit", include_str!("../../../wit/connector.wit")),
    (
        "deps/cli/package.wit",
        include_str!("../../../wit/deps/cli/package.wit"),
    ),
    (
        "deps/clocks/package.wit",
        include_str!("../../../wit/deps/clocks/package.wit"),
    ),
    (
        "deps/filesystem/package.wit",
        include_str!("../../../wit/deps/filesystem/package.wit"),
    ),
    (
        "deps/http/package.wit",
        include_str!("../../../wit/deps/http/package.wit"),
    ),
    (
        "deps/io/package.wit",
        include_str!("../../../wit/deps/io/package.wit"),
    ),
    (
        "deps/random/package.wit",
        include_str!("../../../wit/deps/random/package.wit"),
    ),
    (
        "deps/sockets/package.wit",
        include_str!("../../../wit/deps/sockets/package.wit"),
    ),
];

/// The Python SDK: (path under the SDK root, contents).
pub(crate) const PYTHON: &[(&str, &str)] = &[
    (
        "sluice_app.py",
        include_str!("../../../sdk/python/sluice_app.py"),
    ),
    (
        "sluice_sink_app.py",
        include_str!("../../../sdk/python/sluice_sink_app.py"),
    ),
    (
        "sluice_source_app.py",
        include_str!("../../../sdk/python/sluice_source_app.py"),
    ),
    (
        "sluice_sdk/_glue.py",
        include_str!("../../../sdk/python/sluice_sdk/_glue.py"),
    ),
    (
        "sluice_sdk/connector.py",
        include_str!("../../../sdk/python/sluice_sdk/connector.py"),
    ),
    (
        "sluice_sdk/http.py",
        include_str!("../../../sdk/python/sluice_sdk/http.py"),
    ),
    (
        "sluice_sdk/__init__.py",
        include_str!("../../../sdk/python/sluice_sdk/__init__.py"),
    ),
    (
        "sluice_sdk/_codec.py",
        include_str!("../../../sdk/python/sluice_sdk/_codec.py"),
    ),
    (
        "sluice_sdk/_record.py",
        include_str!("../../../sdk/python/sluice_sdk/_record.py"),
    ),
    (
        "sluice_sdk/log.py",
        include_str!("../../../sdk/python/sluice_sdk/log.py"),
    ),
    (
        "sluice_sdk/jsonio.py",
        include_str!("../../../sdk/python/sluice_sdk/jsonio.py"),
    ),
];

/// The JavaScript SDK (the `sluice-sdk` module).
pub(crate) const JS: &[(&str, &str)] = &[
    ("package.json", include_str!("../../../sdk/js/package.json")),
    ("index.js", include_str!("../../../sdk/js/index.js")),
    ("index.d.ts", include_str!("../../../sdk/js/index.d.ts")),
    ("codec.js", include_str!("../../../sdk/js/codec.js")),
    ("log.js", include_str!("../../../sdk/js/log.js")),
    ("export.js", include_str!("../../../sdk/js/export.js")),
    ("connector.js", include_str!("../../../sdk/js/connector.js")),
    ("http.js", include_str!("../../../sdk/js/http.js")),
];

/// The C SDK.
pub(crate) const C: &[(&str, &str)] = &[
    ("sluice.h", include_str!("../../../sdk/c/sluice.h")),
    ("sluice.c", include_str!("../../../sdk/c/sluice.c")),
];
