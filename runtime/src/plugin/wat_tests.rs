//! Hostile components Rust cannot produce, written in WAT: several linear
//! memories, and a table that grows. Each must hit the one budget the
//! limiter keeps for everything an instance holds.

use wit_bindgen_core::wit_parser::Resolve;

use super::{CallError, Grants, Limits, PluginHost, PluginSpec};

/// A `transformer` component whose `process` runs `body`, then traps (also
/// used by the pipeline's stage tests as a plugin that always fails).
pub(crate) fn component(body: &str) -> Vec<u8> {
    let wat = format!(
        r#"(module
  (memory (export "memory") 1)
  (memory $extra 0)
  (table $t 1 funcref)
  (global $next (mut i32) (i32.const 4096))
  (func (export "cabi_realloc") (param i32 i32 i32 i32) (result i32)
    (local $p i32)
    (local.set $p (global.get $next))
    (global.set $next
      (i32.add (global.get $next)
        (i32.and (i32.add (local.get 3) (i32.const 7)) (i32.const -8))))
    (local.get $p))
  (func (export "sluice:plugin/transform@0.1.0#init") (param i32 i32) (result i32)
    (i32.const 1024))
  (func (export "sluice:plugin/transform@0.1.0#process") (param i32 i32) (result i32)
    {body}
    unreachable))"#
    );
    let mut module = wat::parse_str(&wat).expect("valid WAT");
    let mut resolve = Resolve::default();
    let pkg = resolve
        .push_str("plugin.wit", include_str!("../../../wit/plugin.wit"))
        .expect("the WIT parses");
    let world = resolve
        .select_world(&[pkg], Some("transformer"))
        .expect("the world");
    wit_component::embed_component_metadata(
        &mut module,
        &resolve,
        world,
        wit_component::StringEncoding::UTF8,
    )
    .expect("metadata");
    wit_component::ComponentEncoder::default()
        .validate(true)
        .module(&module)
        .expect("a core module")
        .encode()
        .expect("a component")
}

/// Runs `process` of a component made from `body` under the default limits.
fn process(body: &str) -> Result<Vec<u8>, CallError> {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("hostile.wasm");
    std::fs::write(&path, component(body)).expect("write");
    let host = PluginHost::new(None).expect("host");
    let plugin = host
        .load(PluginSpec {
            name: "hostile".into(),
            path,
            config_json: "{}".into(),
            grants: Grants::default(),
            limits: Limits::default(),
            canary: None,
        })
        .expect("loads");
    let mut instance = plugin.instantiate().expect("starts");
    instance.process(&vec![0u8; 16])
}

#[test]
fn several_memories_share_one_budget() {
    // 40 MiB in each of two memories: each under the 64 MiB cap, together
    // over it. The second growth is refused, and the plugin traps.
    let r = process(
        "(if (i32.eq (memory.grow 0 (i32.const 640)) (i32.const -1)) (then unreachable))
         (if (i32.eq (memory.grow $extra (i32.const 640)) (i32.const -1)) (then unreachable))",
    );
    assert_eq!(r, Err(CallError::Memory(64)));
}

#[test]
fn a_growing_table_counts_against_the_budget() {
    // Ten million elements: 80 MB at 8 bytes each.
    let r = process(
        "(if (i32.eq (table.grow $t (ref.null func) (i32.const 10000000)) (i32.const -1)) (then unreachable))",
    );
    assert_eq!(r, Err(CallError::Memory(64)));
}

#[test]
fn within_the_budget_the_same_component_only_traps() {
    let r = process("(drop (memory.grow $extra (i32.const 16)))");
    assert!(matches!(r, Err(CallError::Trap(_))), "{r:?}");
}
