//! Any text as a pipeline file: parsed or refused with an error, never a
//! panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = sluice_runtime::config::Pipeline::parse(
        std::path::Path::new("/fuzz/pipeline.toml"),
        text,
        |name| (name == "SET").then(|| "value".to_string()),
    );
});
