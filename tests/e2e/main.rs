//! End-to-end tests: they drive the real `sluice` binary on real files,
//! with the real plugins built for `wasm32-wasip2` (see `tests/README.md`).

#![allow(missing_docs, clippy::unwrap_used)]

mod cli;
mod common;
mod connectors;
mod console;
mod cutover;
mod docs;
mod failures;
mod fast_verify;
mod fidelity;
mod fixed_width;
mod hot_reload;
mod kafka;
mod mysql;
mod pipeline;
mod polyglot;
mod postgres;
mod replay;
mod schema_drift;
mod verify_follow;
