#![allow(clippy::unwrap_used)]

use super::*;

#[test]
fn c_bindings_are_generated() {
    let files = c::bindings().unwrap();
    let names: Vec<&str> = files.iter().map(|(n, _)| n.as_str()).collect();
    assert!(names.contains(&"transformer.h"), "{names:?}");
    assert!(names.contains(&"transformer.c"), "{names:?}");
    assert!(names.contains(&"transformer_component_type.o"), "{names:?}");
    if let Ok(dir) = std::env::var("SLUICE_DUMP_C_BINDINGS") {
        for (n, b) in &files {
            std::fs::write(Path::new(&dir).join(n), b).unwrap();
        }
    }
}
