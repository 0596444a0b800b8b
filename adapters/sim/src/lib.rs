//! In-memory storage with a fault model.
#![no_std]
