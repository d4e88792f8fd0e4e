//! tandem-sdk (being written).
