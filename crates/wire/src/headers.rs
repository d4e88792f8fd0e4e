//! Header names of the four Lambda APIs and of the Invoke API. Spelled here once.

// Runtime API (2018-06-01).
pub const RUNTIME_REQUEST_ID: &str = "Lambda-Runtime-Aws-Request-Id";
pub const RUNTIME_DEADLINE_MS: &str = "Lambda-Runtime-Deadline-Ms";
pub const RUNTIME_INVOKED_FUNCTION_ARN: &str = "Lambda-Runtime-Invoked-Function-Arn";
pub const RUNTIME_TRACE_ID: &str = "Lambda-Runtime-Trace-Id";
pub const RUNTIME_CLIENT_CONTEXT: &str = "Lambda-Runtime-Client-Context";
pub const RUNTIME_COGNITO_IDENTITY: &str = "Lambda-Runtime-Cognito-Identity";
pub const RUNTIME_FUNCTION_ERROR_TYPE: &str = "Lambda-Runtime-Function-Error-Type";
pub const RUNTIME_FUNCTION_ERROR_BODY: &str = "Lambda-Runtime-Function-Error-Body";
pub const RUNTIME_XRAY_ERROR_CAUSE: &str = "Lambda-Runtime-Function-XRay-Error-Cause";
pub const RUNTIME_RESPONSE_MODE: &str = "Lambda-Runtime-Function-Response-Mode";
/// The only value `Lambda-Runtime-Function-Response-Mode` may take.
pub const RESPONSE_MODE_STREAMING: &str = "streaming";

// Extensions API (2020-01-01).
pub const EXTENSION_NAME: &str = "Lambda-Extension-Name";
pub const EXTENSION_IDENTIFIER: &str = "Lambda-Extension-Identifier";
pub const EXTENSION_EVENT_IDENTIFIER: &str = "Lambda-Extension-Event-Identifier";
pub const EXTENSION_ACCEPT_FEATURE: &str = "Lambda-Extension-Accept-Feature";
pub const EXTENSION_FUNCTION_ERROR_TYPE: &str = "Lambda-Extension-Function-Error-Type";
/// Value of `Lambda-Extension-Accept-Feature` that adds `accountId` to the register answer.
pub const FEATURE_ACCOUNT_ID: &str = "accountId";

// Invoke API (2015-03-31), as the emulator's front door serves it.
pub const INVOKE_CLIENT_CONTEXT: &str = "X-Amz-Client-Context";
pub const INVOKE_TRACE_ID: &str = "X-Amzn-Trace-Id";
pub const INVOKE_LOG_TYPE: &str = "X-Amz-Log-Type";
pub const INVOKE_LOG_RESULT: &str = "X-Amz-Log-Result";
pub const INVOKE_FUNCTION_ERROR: &str = "X-Amz-Function-Error";
pub const INVOKE_EXECUTED_VERSION: &str = "X-Amz-Executed-Version";
pub const INVOKE_REQUEST_ID: &str = "X-Amzn-RequestId";
pub const INVOKE_ERROR_TYPE: &str = "X-Amzn-ErrorType";
