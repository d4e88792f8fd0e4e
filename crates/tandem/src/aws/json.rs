//! aws::json: the JSON 1.1 protocol's framing: the `X-Amz-Target` and content type a
//! request carries, and the error an answer that is not 200 carries (`__type`, with
//! or without its namespace, and `message`). Pure.

/// `Content-Type` of JSON 1.1 requests.
pub const CONTENT_TYPE: &str = "application/x-amz-json-1.1";

/// An error answered by AWS: its HTTP status and error type, passed through as given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AwsError {
    /// The HTTP status.
    pub status: u16,
    /// The error type without its namespace (`ResourceNotFoundException`).
    pub error_type: String,
    /// AWS's message (it names resources, never values).
    pub message: String,
}

impl std::fmt::Display for AwsError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({}): {}", self.error_type, self.status, self.message)
    }
}

/// The error of a non-200 answer. A body that is not AWS's error shape still gives an
/// error: its type is then named after the status.
pub fn error_of(status: u16, body: &[u8]) -> AwsError {
    let v: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
    let field = |names: &[&str]| names.iter().find_map(|n| v.get(*n).and_then(|s| s.as_str())).map(str::to_owned);
    let error_type = field(&["__type", "code", "Code"])
        .map(|t| short_type(&t).to_owned())
        .filter(|t| !t.is_empty())
        .unwrap_or_else(|| if status >= 500 { "InternalFailure".to_owned() } else { format!("Http{status}") });
    let message = field(&["message", "Message"]).unwrap_or_default();
    AwsError { status, error_type, message }
}

/// `com.amazonaws.secretsmanager#ResourceNotFoundException` or
/// `ResourceNotFoundException:http://…` (the header form) to `ResourceNotFoundException`.
pub fn short_type(t: &str) -> &str {
    let t = t.rsplit('#').next().unwrap_or(t);
    t.split(':').next().unwrap_or(t).trim()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_types_lose_their_namespace() {
        let e = error_of(400, br#"{"__type":"com.amazonaws.secretsmanager#ResourceNotFoundException","message":"no"}"#);
        assert_eq!((e.status, e.error_type.as_str(), e.message.as_str()), (400, "ResourceNotFoundException", "no"));
        let e = error_of(400, br#"{"__type":"ParameterNotFound","Message":"x"}"#);
        assert_eq!((e.error_type.as_str(), e.message.as_str()), ("ParameterNotFound", "x"));
        assert_eq!(short_type("ThrottlingException:http://internal.amazon.com/"), "ThrottlingException");
        assert_eq!(error_of(503, b"<html>").error_type, "InternalFailure");
        assert_eq!(error_of(403, b"").error_type, "Http403");
    }
}
