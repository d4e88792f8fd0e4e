//! tandem (being written).
