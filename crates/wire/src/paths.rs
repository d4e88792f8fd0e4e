//! Request paths of the Lambda APIs. Spelled here once.

/// `GET`: the runtime waits for the next invocation.
pub const RUNTIME_NEXT: &str = "/2018-06-01/runtime/invocation/next";
/// Prefix of `/{id}/response` and `/{id}/error`.
pub const RUNTIME_INVOCATION_PREFIX: &str = "/2018-06-01/runtime/invocation/";
/// `POST`: the runtime reports that its init failed.
pub const RUNTIME_INIT_ERROR: &str = "/2018-06-01/runtime/init/error";
/// Suffix of the response path after the request id.
pub const RUNTIME_RESPONSE_SUFFIX: &str = "/response";
/// Suffix of the error path after the request id.
pub const RUNTIME_ERROR_SUFFIX: &str = "/error";

/// `POST`: an extension registers.
pub const EXTENSION_REGISTER: &str = "/2020-01-01/extension/register";
/// `GET`: an extension waits for its next event.
pub const EXTENSION_NEXT: &str = "/2020-01-01/extension/event/next";
/// `POST`: an extension reports that its init failed.
pub const EXTENSION_INIT_ERROR: &str = "/2020-01-01/extension/init/error";
/// `POST`: an extension reports an error before it exits.
pub const EXTENSION_EXIT_ERROR: &str = "/2020-01-01/extension/exit/error";

/// `PUT`: subscribe to the Telemetry API.
pub const TELEMETRY_SUBSCRIBE: &str = "/2022-07-01/telemetry";
/// `PUT`: subscribe to the Logs API.
pub const LOGS_SUBSCRIBE: &str = "/2020-08-15/logs";

/// RIE's invoke path; the function name in it is ignored.
pub const INVOKE_RIE: &str = "/2015-03-31/functions/function/invocations";
/// Prefix of the Invoke API path, before the function name.
pub const INVOKE_PREFIX: &str = "/2015-03-31/functions/";
/// Suffix of the Invoke API path, after the function name.
pub const INVOKE_SUFFIX: &str = "/invocations";
/// The function name RIE's path uses; it stands for whatever function runs.
pub const INVOKE_ANY_FUNCTION: &str = "function";

/// The response path for an invocation id.
pub fn runtime_response(request_id: &str) -> String {
    format!("{RUNTIME_INVOCATION_PREFIX}{request_id}{RUNTIME_RESPONSE_SUFFIX}")
}

/// The error path for an invocation id.
pub fn runtime_error(request_id: &str) -> String {
    format!("{RUNTIME_INVOCATION_PREFIX}{request_id}{RUNTIME_ERROR_SUFFIX}")
}

/// What a path under `/2018-06-01/runtime/invocation/` asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InvocationPath<'a> {
    /// `next`.
    Next,
    /// `{id}/response`.
    Response(&'a str),
    /// `{id}/error`.
    Error(&'a str),
}

/// Splits a Runtime API invocation path; `None` when it is not one.
pub fn parse_invocation_path(path: &str) -> Option<InvocationPath<'_>> {
    if path == RUNTIME_NEXT {
        return Some(InvocationPath::Next);
    }
    let rest = path.strip_prefix(RUNTIME_INVOCATION_PREFIX)?;
    if let Some(id) = rest.strip_suffix(RUNTIME_RESPONSE_SUFFIX) {
        return (!id.contains('/')).then_some(InvocationPath::Response(id));
    }
    if let Some(id) = rest.strip_suffix(RUNTIME_ERROR_SUFFIX) {
        return (!id.contains('/')).then_some(InvocationPath::Error(id));
    }
    None
}

/// The function name of an Invoke API path, `None` when it is not one.
pub fn parse_invoke_path(path: &str) -> Option<&str> {
    let name = path.strip_prefix(INVOKE_PREFIX)?.strip_suffix(INVOKE_SUFFIX)?;
    (!name.is_empty() && !name.contains('/')).then_some(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_invocation_paths() {
        assert_eq!(parse_invocation_path(RUNTIME_NEXT), Some(InvocationPath::Next));
        assert_eq!(parse_invocation_path(&runtime_response("abc")), Some(InvocationPath::Response("abc")));
        assert_eq!(parse_invocation_path(&runtime_error("abc")), Some(InvocationPath::Error("abc")));
        assert_eq!(parse_invocation_path("/2018-06-01/runtime/invocation/a/b/response"), None);
        assert_eq!(parse_invocation_path("/2018-06-01/runtime/invocation/abc"), None);
        assert_eq!(parse_invoke_path(INVOKE_RIE), Some("function"));
        assert_eq!(parse_invoke_path("/2015-03-31/functions/my-fn/invocations"), Some("my-fn"));
        assert_eq!(parse_invoke_path("/2015-03-31/functions//invocations"), None);
    }
}
