//! emulator (being written).
pub mod clock;
pub mod lifecycle;
