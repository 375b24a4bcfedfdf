//! Any bytes as a CSV file (header, quotes, encodings, over-long rows):
//! records and dead letters, never a panic.
#![no_main]

mod reader_common;

use libfuzzer_sys::fuzz_target;
use sluice_runtime::sources::csv::{CsvConfig, CsvSource};

fuzz_target!(|data: &[u8]| {
    let path = reader_common::scratch("in.csv", data);
    let latin1 = data.first().is_some_and(|b| b & 1 == 1);
    let config: CsvConfig = toml::from_str(&format!(
        "path = {:?}\nencoding = {:?}\nmax_record_bytes = 256\n",
        path.display().to_string(),
        if latin1 { "windows-1252" } else { "utf-8" }
    ))
    .expect("config");
    if let Ok(mut s) = CsvSource::new(config) {
        reader_common::drain(&mut s);
    }
});
