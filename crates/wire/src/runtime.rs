//! Runtime API (2018-06-01): what an invocation carries besides its raw event body.

/// The per-invocation values `GET /runtime/invocation/next` sends as headers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InvocationContext {
    /// `Lambda-Runtime-Aws-Request-Id`.
    pub request_id: String,
    /// `Lambda-Runtime-Deadline-Ms`.
    pub deadline_ms: u64,
    /// `Lambda-Runtime-Invoked-Function-Arn`.
    pub invoked_function_arn: String,
    /// `Lambda-Runtime-Trace-Id`.
    pub trace_id: Option<String>,
    /// `Lambda-Runtime-Client-Context`.
    pub client_context: Option<String>,
    /// `Lambda-Runtime-Cognito-Identity`.
    pub cognito_identity: Option<String>,
}

impl InvocationContext {
    /// `(header, value)` pairs in the order Lambda sends them, empty ones omitted.
    pub fn headers(&self) -> Vec<(&'static str, String)> {
        use crate::headers::*;
        let mut h = vec![
            (RUNTIME_REQUEST_ID, self.request_id.clone()),
            (RUNTIME_DEADLINE_MS, self.deadline_ms.to_string()),
            (RUNTIME_INVOKED_FUNCTION_ARN, self.invoked_function_arn.clone()),
        ];
        let optional = [
            (RUNTIME_TRACE_ID, &self.trace_id),
            (RUNTIME_CLIENT_CONTEXT, &self.client_context),
            (RUNTIME_COGNITO_IDENTITY, &self.cognito_identity),
        ];
        for (name, value) in optional {
            if let Some(v) = value.as_deref().filter(|v| !v.is_empty()) {
                h.push((name, v.to_owned()));
            }
        }
        h
    }
}

/// Largest buffered response the Runtime API accepts (6 MiB).
pub const MAX_RESPONSE_BYTES: usize = 6 * 1024 * 1024;
/// Largest streamed response (20 MiB, Lambda's soft limit for streaming).
pub const MAX_STREAMED_RESPONSE_BYTES: usize = 20 * 1024 * 1024;
/// Largest synchronous invoke payload (6 MiB).
pub const MAX_REQUEST_BYTES: usize = 6 * 1024 * 1024;

/// The function ARN local emulators use, as RIE does.
pub fn function_arn(region: &str, account_id: &str, function_name: &str) -> String {
    format!("arn:aws:lambda:{region}:{account_id}:function:{function_name}")
}
