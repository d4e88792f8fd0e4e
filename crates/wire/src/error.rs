//! Error bodies and error types of the Lambda APIs. Spelled here once.

use serde::{Deserialize, Serialize};

/// The JSON error body every Lambda API answers with: `{"errorMessage","errorType"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ErrorResponse {
    #[serde(default)]
    pub error_message: String,
    #[serde(default)]
    pub error_type: String,
}

impl ErrorResponse {
    pub fn new(error_type: impl Into<String>, error_message: impl Into<String>) -> Self {
        Self { error_type: error_type.into(), error_message: error_message.into() }
    }
}

/// The body a function or extension posts to an `…/error` endpoint.
/// Every field is optional: Lambda accepts (and passes on) whatever is sent.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ErrorRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_message: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stack_trace: Option<Vec<String>>,
}

/// `{"status":"OK"}`, the body of a 202 from the Runtime and Extensions APIs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusResponse {
    pub status: String,
}

impl StatusResponse {
    pub fn ok() -> Self {
        Self { status: "OK".into() }
    }
}

/// Error types (`errorType`) used by the Lambda APIs and in platform records.
pub mod types {
    // Extensions API.
    pub const EXTENSION_INVALID_NAME: &str = "Extension.InvalidExtensionName";
    pub const INVALID_REQUEST_FORMAT: &str = "InvalidRequestFormat";
    pub const EXTENSION_INVALID_EVENT_TYPE: &str = "Extension.InvalidEventType";
    pub const EXTENSION_REGISTRATION_CLOSED: &str = "Extension.RegistrationClosed";
    pub const EXTENSION_INVALID_STATE: &str = "Extension.InvalidExtensionState";
    pub const EXTENSION_TOO_MANY: &str = "Extension.TooManyExtensions";
    pub const EXTENSION_MISSING_ID: &str = "Extension.MissingExtensionIdentifier";
    pub const EXTENSION_INVALID_ID: &str = "Extension.InvalidExtensionIdentifier";
    pub const EXTENSION_UNKNOWN_ID: &str = "Extension.UnknownExtensionIdentifier";
    pub const EXTENSION_MISSING_HEADER: &str = "Extension.MissingHeader";
    pub const INTERNAL_SERVER_ERROR: &str = "InternalServerError";

    // Runtime API.
    pub const INVALID_REQUEST_ID: &str = "InvalidRequestID";
    pub const INVALID_STATE_TRANSITION: &str = "InvalidStateTransition";
    pub const REQUEST_ENTITY_TOO_LARGE: &str = "RequestEntityTooLarge";
    pub const INVALID_RESPONSE_MODE: &str = "InvalidFunctionResponseMode";

    // Telemetry and Logs APIs.
    pub const TELEMETRY_VALIDATION: &str = "ValidationError";
    pub const LOGS_VALIDATION: &str = "Logs.ValidationError";
    /// A subscription after init ended (the cloud answers 403).
    pub const TELEMETRY_SUBSCRIPTION_CLOSED: &str = "Telemetry.SubscriptionClosed";
    pub const LOGS_SUBSCRIPTION_CLOSED: &str = "Logs.SubscriptionClosed";
    /// An extension that already used the other API (Telemetry vs Logs).
    pub const TELEMETRY_CONFLICT: &str = "Telemetry.SubscriptionConflict";
    pub const LOGS_CONFLICT: &str = "Logs.SubscriptionConflict";

    // Invoke failures (function errors and platform faults).
    pub const FUNCTION_RESPONSE_TOO_LARGE: &str = "Function.ResponseSizeTooLarge";
    pub const RUNTIME_EXIT_ERROR: &str = "Runtime.ExitError";
    pub const RUNTIME_OUT_OF_MEMORY: &str = "Runtime.OutOfMemory";
    pub const RUNTIME_UNKNOWN: &str = "Runtime.Unknown";
    pub const SANDBOX_TIMEOUT: &str = "Sandbox.Timedout";
    pub const EXTENSION_CRASH: &str = "Extension.Crash";
    pub const EXTENSION_INIT_ERROR: &str = "Extension.InitError";
    pub const EXTENSION_EXIT_ERROR: &str = "Extension.ExitError";
    pub const EXTENSION_LAUNCH_ERROR: &str = "Extension.LaunchError";
    /// Handled/unhandled function errors as the Invoke API reports them.
    pub const FUNCTION_ERROR_UNHANDLED: &str = "Unhandled";
    pub const FUNCTION_ERROR_HANDLED: &str = "Handled";
    // Invoke API.
    pub const TOO_MANY_REQUESTS: &str = "TooManyRequestsException";
    pub const RESOURCE_NOT_FOUND: &str = "ResourceNotFoundException";
    pub const REQUEST_TOO_LARGE: &str = "RequestTooLargeException";
    pub const INVALID_REQUEST_CONTENT: &str = "InvalidRequestContentException";
    pub const SERVICE_EXCEPTION: &str = "ServiceException";
}
