//! Sluice: stream records from sources through sandboxed WebAssembly
//! transform plugins into sinks, with dead letters, checkpoints and a
//! bounded, back-pressured record path.
//!
//! Follow one record: [`sources`] reads and encodes it into a batch;
//! [`pipeline`] hands the batch to each [`plugin`] slot in turn (the batch
//! crosses into WASM as one buffer, see `codec/FORMAT.md`); survivors go to
//! [`sinks`], rejects and failures to the dead-letter sink; then the
//! checkpoint moves past the batch.

#[cfg(feature = "admin")]
pub mod admin;
pub mod cli;
pub mod config;
pub mod connector;
pub mod control;
pub mod conventions;
#[cfg(all(feature = "postgres", feature = "admin"))]
pub mod cutover;
pub mod declared_types;
#[cfg(feature = "kafka")]
pub mod kafka;
#[cfg(feature = "postgres")]
pub mod pg;
pub mod pipeline;
pub mod plugin;
pub mod reload;
pub mod replay;
pub mod report;
pub mod schema_policy;
pub mod shadow;
pub mod sinks;
pub mod sources;
pub mod sql;
#[cfg(feature = "toolchain")]
pub mod toolchain;
pub mod value_json;
#[cfg(feature = "postgres")]
pub mod verify;
