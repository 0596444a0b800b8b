#![doc = include_str!("../README.md")]
#![no_std]
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod error;
mod layout;
mod storage;
#[cfg(test)]
mod tests;

pub use error::FlashError;
pub use layout::{AREA_HEADER_LEN, Layout, LayoutError, MAX_WORD};
pub use storage::{FlashStorage, MountError};
