//! error: what can go wrong in an extension, and how Lambda should hear of it.

use std::fmt;

/// An error of the SDK or of a handler.
///
/// A *fatal* error carries a Lambda error type (such as `Extension.ConfigInvalid`) and
/// ends the extension: the SDK reports it through `init/error` during init or
/// `exit/error` afterwards, then returns it from [`Extension::run`](crate::Extension::run).
/// Any other error is logged and the extension carries on, because an extension must
/// never take its function down for a problem it can live with.
#[derive(Debug)]
pub struct Error {
    message: String,
    error_type: Option<String>,
}

impl Error {
    /// A problem the extension survives (logged; for telemetry, the batch is refused
    /// so that Lambda delivers it again).
    pub fn transient(message: impl Into<String>) -> Self {
        Self { message: message.into(), error_type: None }
    }

    /// A problem that ends the extension, reported to Lambda as `error_type`
    /// (by convention `Extension.<Reason>`).
    pub fn fatal(error_type: impl Into<String>, message: impl Into<String>) -> Self {
        Self { message: message.into(), error_type: Some(error_type.into()) }
    }

    /// The Lambda error type of a fatal error.
    pub fn error_type(&self) -> Option<&str> {
        self.error_type.as_deref()
    }

    /// Whether this error ends the extension.
    pub fn is_fatal(&self) -> bool {
        self.error_type.is_some()
    }

    /// What went wrong, in words.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.error_type {
            Some(t) => write!(f, "{t}: {}", self.message),
            None => f.write_str(&self.message),
        }
    }
}

impl std::error::Error for Error {}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Self {
        Error::transient(e.to_string())
    }
}
