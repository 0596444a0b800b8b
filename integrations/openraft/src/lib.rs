#![doc = include_str!("../README.md")]
#![deny(unsafe_code)]

mod error;
mod index;
pub mod kv;
mod meta;
mod store;

pub use error::OpenError;
pub use store::{LogReader, LogStore};
