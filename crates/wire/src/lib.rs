//! `tandem-wire`: the typed model of the AWS Lambda Runtime API (2018-06-01), Extensions
//! API (2020-01-01), Telemetry API (2022-07-01) and Logs API (2020-08-15).
//!
//! This crate is the one place where a header name, a path, an error type or a record
//! field is spelled. It does no I/O and depends on serde alone, so that both sides of
//! the wire (the emulator serving it, the SDK and extensions consuming it) share it
//! and extensions pay nothing for it at start-up.
//!
//! Parsing is forward-compatible: unknown fields are ignored, unknown enum values are
//! kept as `Other(..)`, and an unknown telemetry `type` becomes
//! [`telemetry::Record::Unknown`] with its raw JSON.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod strings;

pub mod error;
pub mod extensions;
pub mod headers;
pub mod paths;
pub mod runtime;
pub mod subscription;
pub mod telemetry;
pub mod time;

pub use error::{ErrorRequest, ErrorResponse, StatusResponse};
pub use extensions::{EventType, NextEvent, RegisterRequest, RegisterResponse, ShutdownReason};
pub use subscription::{Api, Protocol, SubscribeRequest, Subscription};
pub use telemetry::{parse_batch, parse_events, Event, LogRecord, Record, Status, TelemetryType};

// The README's examples run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
