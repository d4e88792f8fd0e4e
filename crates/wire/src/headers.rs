//! Header names of the four Lambda APIs and of the Invoke API. Spelled here once.

// Runtime API (2018-06-01).
/// The invocation's request id (on `next`).
pub const RUNTIME_REQUEST_ID: &str = "Lambda-Runtime-Aws-Request-Id";
/// The invocation's deadline in milliseconds since the epoch.
pub const RUNTIME_DEADLINE_MS: &str = "Lambda-Runtime-Deadline-Ms";
/// The ARN the function was invoked with.
pub const RUNTIME_INVOKED_FUNCTION_ARN: &str = "Lambda-Runtime-Invoked-Function-Arn";
/// The X-Ray trace header of the invocation.
pub const RUNTIME_TRACE_ID: &str = "Lambda-Runtime-Trace-Id";
/// The client context (JSON) of a mobile SDK caller.
pub const RUNTIME_CLIENT_CONTEXT: &str = "Lambda-Runtime-Client-Context";
/// The Cognito identity (JSON) of a mobile SDK caller.
pub const RUNTIME_COGNITO_IDENTITY: &str = "Lambda-Runtime-Cognito-Identity";
/// The error type a runtime reports (`…/error`, `init/error`, streaming trailer).
pub const RUNTIME_FUNCTION_ERROR_TYPE: &str = "Lambda-Runtime-Function-Error-Type";
/// The base64 error body of a streamed response that failed (a trailer).
pub const RUNTIME_FUNCTION_ERROR_BODY: &str = "Lambda-Runtime-Function-Error-Body";
/// The X-Ray error cause (JSON) a runtime may attach to `…/error`.
pub const RUNTIME_XRAY_ERROR_CAUSE: &str = "Lambda-Runtime-Function-XRay-Error-Cause";
/// Set to `streaming` on a streamed response.
pub const RUNTIME_RESPONSE_MODE: &str = "Lambda-Runtime-Function-Response-Mode";
/// The only value `Lambda-Runtime-Function-Response-Mode` may take.
pub const RESPONSE_MODE_STREAMING: &str = "streaming";

// Extensions API (2020-01-01).
/// The name an extension registers under.
pub const EXTENSION_NAME: &str = "Lambda-Extension-Name";
/// The identifier `register` returns; every later call carries it.
pub const EXTENSION_IDENTIFIER: &str = "Lambda-Extension-Identifier";
/// A unique id of each event `next` returns.
pub const EXTENSION_EVENT_IDENTIFIER: &str = "Lambda-Extension-Event-Identifier";
/// Optional features asked for at `register` (comma-separated).
pub const EXTENSION_ACCEPT_FEATURE: &str = "Lambda-Extension-Accept-Feature";
/// The error type of an extension's `init/error` or `exit/error`.
pub const EXTENSION_FUNCTION_ERROR_TYPE: &str = "Lambda-Extension-Function-Error-Type";
/// Value of `Lambda-Extension-Accept-Feature` that adds `accountId` to the register answer.
pub const FEATURE_ACCOUNT_ID: &str = "accountId";

// Invoke API (2015-03-31), as the emulator's front door serves it.
/// The client context, base64-encoded JSON.
pub const INVOKE_CLIENT_CONTEXT: &str = "X-Amz-Client-Context";
/// The caller's X-Ray trace header; also the `type` of a record's trace context.
pub const INVOKE_TRACE_ID: &str = "X-Amzn-Trace-Id";
/// `Tail` asks for the last 4 KB of the invocation's log.
pub const INVOKE_LOG_TYPE: &str = "X-Amz-Log-Type";
/// The base64 log tail, when `Tail` was asked for.
pub const INVOKE_LOG_RESULT: &str = "X-Amz-Log-Result";
/// `Unhandled` (or `Handled`) when the function failed.
pub const INVOKE_FUNCTION_ERROR: &str = "X-Amz-Function-Error";
/// The function version that ran.
pub const INVOKE_EXECUTED_VERSION: &str = "X-Amz-Executed-Version";
/// The invocation's request id.
pub const INVOKE_REQUEST_ID: &str = "X-Amzn-RequestId";
/// The error type of an Invoke API error answer.
pub const INVOKE_ERROR_TYPE: &str = "X-Amzn-ErrorType";
/// `RequestResponse` (default), `Event` (asynchronous) or `DryRun`.
pub const INVOKE_INVOCATION_TYPE: &str = "X-Amz-Invocation-Type";
/// Values of `X-Amz-Invocation-Type`.
pub const INVOCATION_TYPE_EVENT: &str = "Event";
/// `X-Amz-Invocation-Type: DryRun`: validate, do not run.
pub const INVOCATION_TYPE_DRY_RUN: &str = "DryRun";
/// The value of `X-Amz-Log-Type` that asks for the log tail.
pub const LOG_TYPE_TAIL: &str = "Tail";
