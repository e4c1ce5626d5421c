//! The Rust side of each kernel family: shape checks, variant choice, dispatch, CPU reference.
//!
//! Each op validates its tensors, picks its pipeline (variant flags from the device's caps,
//! sizes as override constants) and returns `Dispatch`es that can be recorded into any pass.

pub mod elementwise;

pub use elementwise::Elementwise;
