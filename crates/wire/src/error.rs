//! Error bodies and error types of the Lambda APIs. Spelled here once.

use serde::{Deserialize, Serialize};

/// The JSON error body every Lambda API answers with: `{"errorMessage","errorType"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ErrorResponse {
    /// What went wrong, for a person.
    #[serde(default)]
    pub error_message: String,
    /// What went wrong, for a program (one of [`types`] or a runtime's own).
    #[serde(default)]
    pub error_type: String,
}

impl ErrorResponse {
    /// An error body of `error_type` with `error_message`.
    pub fn new(error_type: impl Into<String>, error_message: impl Into<String>) -> Self {
        Self { error_type: error_type.into(), error_message: error_message.into() }
    }
}

/// The body a function or extension posts to an `…/error` endpoint.
/// Every field is optional: Lambda accepts (and passes on) whatever is sent.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ErrorRequest {
    /// What went wrong, for a person.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_message: Option<String>,
    /// The error type, when the header did not give it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_type: Option<String>,
    /// The stack, one frame a line.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stack_trace: Option<Vec<String>>,
}

/// `{"status":"OK"}`, the body of a 202 from the Runtime and Extensions APIs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusResponse {
    /// Always `OK`.
    pub status: String,
}

impl StatusResponse {
    /// `{"status":"OK"}`.
    pub fn ok() -> Self {
        Self { status: "OK".into() }
    }
}

/// Error types (`errorType`) used by the Lambda APIs and in platform records.
pub mod types {
    // Extensions API.
    /// `register` without a usable `Lambda-Extension-Name`.
    pub const EXTENSION_INVALID_NAME: &str = "Extension.InvalidExtensionName";
    /// A register body that is not the expected JSON.
    pub const INVALID_REQUEST_FORMAT: &str = "InvalidRequestFormat";
    /// An event type that is not `INVOKE` or `SHUTDOWN` (or `SHUTDOWN` for an internal extension).
    pub const EXTENSION_INVALID_EVENT_TYPE: &str = "Extension.InvalidEventType";
    /// `register` after init ended.
    pub const EXTENSION_REGISTRATION_CLOSED: &str = "Extension.RegistrationClosed";
    /// A call the extension's state does not allow (twice `next`, after an error, a name taken).
    pub const EXTENSION_INVALID_STATE: &str = "Extension.InvalidExtensionState";
    /// More than ten extensions registered.
    pub const EXTENSION_TOO_MANY: &str = "Extension.TooManyExtensions";
    /// A call without `Lambda-Extension-Identifier`.
    pub const EXTENSION_MISSING_ID: &str = "Extension.MissingExtensionIdentifier";
    /// A `Lambda-Extension-Identifier` that is not a UUID.
    pub const EXTENSION_INVALID_ID: &str = "Extension.InvalidExtensionIdentifier";
    /// A `Lambda-Extension-Identifier` nobody registered with.
    pub const EXTENSION_UNKNOWN_ID: &str = "Extension.UnknownExtensionIdentifier";
    /// An `init/error` or `exit/error` without its error type header.
    pub const EXTENSION_MISSING_HEADER: &str = "Extension.MissingHeader";
    /// The platform itself failed.
    pub const INTERNAL_SERVER_ERROR: &str = "InternalServerError";

    // Runtime API.
    /// A response or error for a request id that is not the current invocation.
    pub const INVALID_REQUEST_ID: &str = "InvalidRequestID";
    /// A Runtime API call its state does not allow (answered twice, `next` before answering).
    pub const INVALID_STATE_TRANSITION: &str = "InvalidStateTransition";
    /// A response or error body over its limit.
    pub const REQUEST_ENTITY_TOO_LARGE: &str = "RequestEntityTooLarge";
    /// A `Lambda-Runtime-Function-Response-Mode` other than `streaming`.
    pub const INVALID_RESPONSE_MODE: &str = "InvalidFunctionResponseMode";

    // Telemetry and Logs APIs.
    /// A Telemetry API subscription Lambda rejects.
    pub const TELEMETRY_VALIDATION: &str = "ValidationError";
    /// A Logs API subscription Lambda rejects.
    pub const LOGS_VALIDATION: &str = "Logs.ValidationError";
    /// A subscription after init ended (the cloud answers 403).
    pub const TELEMETRY_SUBSCRIPTION_CLOSED: &str = "Telemetry.SubscriptionClosed";
    /// A Logs API subscription after init ended.
    pub const LOGS_SUBSCRIPTION_CLOSED: &str = "Logs.SubscriptionClosed";
    /// An extension that already used the other API (Telemetry vs Logs).
    pub const TELEMETRY_CONFLICT: &str = "Telemetry.SubscriptionConflict";
    /// A Logs API subscription by an extension that used the Telemetry API.
    pub const LOGS_CONFLICT: &str = "Logs.SubscriptionConflict";

    // Invoke failures (function errors and platform faults).
    /// Prefix of the runtime's failures.
    pub const RUNTIME_PREFIX: &str = "Runtime.";
    /// Prefix of the platform's faults (status `failure`, or `timeout` for a timeout).
    pub const SANDBOX_PREFIX: &str = "Sandbox.";
    /// Prefix of the extensions' failures.
    pub const EXTENSION_PREFIX: &str = "Extension.";
    /// The function's response was over the limit.
    pub const FUNCTION_RESPONSE_TOO_LARGE: &str = "Function.ResponseSizeTooLarge";
    /// The runtime process exited.
    pub const RUNTIME_EXIT_ERROR: &str = "Runtime.ExitError";
    /// The memory limit killed a process.
    pub const RUNTIME_OUT_OF_MEMORY: &str = "Runtime.OutOfMemory";
    /// A runtime error without a type.
    pub const RUNTIME_UNKNOWN: &str = "Runtime.Unknown";
    /// The runtime's response ended before its announced end (connection closed mid-body).
    pub const RUNTIME_TRUNCATED_RESPONSE: &str = "Runtime.TruncatedResponse";
    /// The runtime could not be started.
    pub const RUNTIME_INVALID_ENTRYPOINT: &str = "Runtime.InvalidEntrypoint";
    /// The invocation or the init ran out of time.
    pub const SANDBOX_TIMEOUT: &str = "Sandbox.Timedout";
    /// An extension process exited.
    pub const EXTENSION_CRASH: &str = "Extension.Crash";
    /// An extension reported `init/error`.
    pub const EXTENSION_INIT_ERROR: &str = "Extension.InitError";
    /// An extension reported `exit/error`.
    pub const EXTENSION_EXIT_ERROR: &str = "Extension.ExitError";
    /// An extension could not be started.
    pub const EXTENSION_LAUNCH_ERROR: &str = "Extension.LaunchError";
    /// Handled/unhandled function errors as the Invoke API reports them.
    pub const FUNCTION_ERROR_UNHANDLED: &str = "Unhandled";
    /// A function error the function reported itself (the Invoke API's `Handled`).
    pub const FUNCTION_ERROR_HANDLED: &str = "Handled";
    // Invoke API.
    /// Too many invocations waiting.
    pub const TOO_MANY_REQUESTS: &str = "TooManyRequestsException";
    /// No such function or endpoint.
    pub const RESOURCE_NOT_FOUND: &str = "ResourceNotFoundException";
    /// An invoke payload over 6 MiB.
    pub const REQUEST_TOO_LARGE: &str = "RequestTooLargeException";
    /// An invoke request that cannot be read (for example, its client context).
    pub const INVALID_REQUEST_CONTENT: &str = "InvalidRequestContentException";
    /// The service could not run the invocation.
    pub const SERVICE_EXCEPTION: &str = "ServiceException";

    // Reported by extensions built on tandem-sdk (Lambda accepts any `Extension.*`).
    /// The extension's configuration (here, its telemetry subscription) is invalid.
    pub const EXTENSION_CONFIG_INVALID: &str = "Extension.ConfigInvalid";
    /// The telemetry listener could not be started.
    pub const EXTENSION_LISTENER_FAILED: &str = "Extension.ListenerFailed";
    /// The extension's own init failed.
    pub const EXTENSION_INIT_FAILED: &str = "Extension.InitFailed";
    /// The Telemetry API refused the subscription.
    pub const EXTENSION_SUBSCRIBE_FAILED: &str = "Extension.SubscribeFailed";
    /// An error without a type of its own.
    pub const EXTENSION_UNKNOWN_ERROR: &str = "Extension.UnknownError";

    // The emulator's HTTP edge, for requests no Lambda API route matches.
    /// No such endpoint.
    pub const NOT_FOUND: &str = "NotFound";
    /// A known path with the wrong method.
    pub const METHOD_NOT_ALLOWED: &str = "MethodNotAllowed";
}
