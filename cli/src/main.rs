//! The walden command.
fn main() {}
