//! Write Sluice transform plugins in Rust.
//!
//! ```
//! use sluice_sdk::{Config, InitError, Outcome, Record, Transform};
//!
//! struct Upper;
//!
//! impl Transform for Upper {
//!     fn init(_config: Config) -> Result<Self, InitError> {
//!         Ok(Upper)
//!     }
//!     fn process<'a>(&mut self, record: &mut Record<'a>) -> Outcome<'a> {
//!         if let Some(name) = record.get_str("name") {
//!             let upper = name.to_uppercase();
//!             record.set("name", upper);
//!         }
//!         Outcome::Keep
//!     }
//! }
//!
//! #[cfg(target_arch = "wasm32")]
//! sluice_sdk::export!(Upper);
//! ```
//!
//! The SDK decodes each batch the host sends into [`Record`]s that borrow
//! from the batch buffer, calls [`Transform::process`] for each (or your
//! [`Transform::process_batch`]), and encodes the outcomes into one buffer.

mod config;
pub mod log;
mod outcome;
mod record;
#[cfg(feature = "transform")]
mod run;

pub use config::{Config, InitError};
pub use log::install_panic_hook;
pub use outcome::{Outcome, Rejection};
pub use record::{Operation, Record, Value};
#[cfg(feature = "transform")]
pub use run::{BatchError, run_batch};

/// A transform plugin.
#[cfg(feature = "transform")]
///
/// The host creates one instance per pipeline slot, calls [`Transform::init`]
/// once with the plugin's config, then [`Transform::process_batch`] for every
/// batch, in source order, on the same instance. After a trap or a missed
/// deadline the instance is thrown away and a fresh one is initialised, so
/// keep no state that must survive a crash.
pub trait Transform: Sized + 'static {
    /// Builds the plugin from its config (the `config` table of the
    /// transform in the pipeline file). Return [`InitError::InvalidConfig`]
    /// naming the key at fault when the config is wrong.
    fn init(config: Config) -> Result<Self, InitError>;

    /// Decides what happens to one record: keep it (after changing it in
    /// place), emit others, drop it, or reject it with a reason.
    fn process<'a>(&mut self, record: &mut Record<'a>) -> Outcome<'a>;

    /// Processes a whole batch; returns exactly one outcome per record, in
    /// order. The default calls [`Transform::process`] for each record;
    /// override it to work on the batch as a whole.
    fn process_batch<'a>(&mut self, records: &mut [Record<'a>]) -> Vec<Outcome<'a>> {
        records.iter_mut().map(|r| self.process(r)).collect()
    }
}

/// Exports a [`Transform`] implementation as the plugin's `transform`
/// interface. Use it once per plugin crate.
#[cfg(feature = "transform")]
#[macro_export]
macro_rules! export {
    ($plugin:ty) => {
        const _: () = {
            ::std::thread_local! {
                static __SLUICE_STATE: ::std::cell::RefCell<::std::option::Option<$plugin>> =
                    const { ::std::cell::RefCell::new(::std::option::Option::None) };
            }

            struct __SluiceExport;

            impl $crate::__private::Guest for __SluiceExport {
                fn init(
                    config: ::std::string::String,
                ) -> ::std::result::Result<(), $crate::__private::WitInitError> {
                    __SLUICE_STATE.with(|state| $crate::__private::init::<$plugin>(state, config))
                }

                fn process(
                    batch: ::std::vec::Vec<u8>,
                ) -> ::std::result::Result<::std::vec::Vec<u8>, $crate::__private::WitBatchError> {
                    __SLUICE_STATE.with(|state| $crate::__private::process::<$plugin>(state, &batch))
                }
            }

            $crate::__export_transformer_impl!(__SluiceExport with_types_in $crate::__private::bindings);
        };
    };
}

#[doc(hidden)]
pub mod __private {
    pub use crate::bindings;
    #[cfg(feature = "transform")]
    pub use crate::bindings::exports::sluice::plugin::transform::Guest;
    pub use crate::bindings::sluice::plugin::types::{
        BatchError as WitBatchError, InitError as WitInitError,
    };
    #[cfg(feature = "transform")]
    pub use crate::run::{init, process};
}

#[cfg(any(feature = "source", feature = "sink"))]
pub mod connector;
#[cfg(any(feature = "source", feature = "sink"))]
pub mod http;
#[cfg(any(feature = "source", feature = "sink"))]
pub mod json;

#[doc(hidden)]
pub mod bindings;
