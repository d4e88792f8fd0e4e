//! secrets::request: what a read asks for. Parses the HTTP API's paths and query
//! parameters (AWS's extension's) and the `secretsmanager:ID` / `ssm:NAME` references
//! of `TANDEM_PREFETCH` and `TANDEM_SECRET_ENV` into a [`Lookup`], and turns a lookup
//! into its cache key and its AWS call (`GetSecretValue`, `GetParameter`). Also maps
//! AWS's error types to the status the API answers. Pure.

use crate::aws::Service;
use bytes::Bytes;
use serde_json::{json, Value};

/// One value to read: a secret (with its version or stage) or a parameter.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Lookup {
    /// `GetSecretValue`.
    Secret {
        /// `SecretId` (name or ARN).
        id: String,
        /// `VersionId`.
        version_id: Option<String>,
        /// `VersionStage`.
        version_stage: Option<String>,
    },
    /// `GetParameter`.
    Parameter {
        /// `Name`, with its `:version` or `:label` selector if any.
        name: String,
        /// `WithDecryption`.
        with_decryption: bool,
    },
}

/// The HTTP API's paths.
pub const SECRET_PATH: &str = "/secretsmanager/get";
/// The HTTP API's parameter path.
pub const PARAMETER_PATH: &str = "/systemsmanager/parameters/get";

impl Lookup {
    /// Parses a request of the HTTP API (path and raw query). `Err` is the message of a
    /// 400 answer; `Ok(None)` an unknown path (404).
    pub fn from_http(path: &str, query: &str) -> Result<Option<Lookup>, String> {
        let params = parse_query(query)?;
        let get = |k: &str| params.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone()).filter(|v| !v.is_empty());
        match path.trim_end_matches('/') {
            SECRET_PATH => {
                let id = get("secretId").ok_or("secretId is required")?;
                let (version_id, version_stage) = (get("versionId"), get("versionStage"));
                if version_id.is_some() && version_stage.is_some() {
                    return Err("versionId and versionStage cannot both be given".into());
                }
                Ok(Some(Lookup::Secret { id, version_id, version_stage }))
            }
            PARAMETER_PATH => {
                let mut name = get("name").ok_or("name is required")?;
                match (get("version"), get("label")) {
                    (Some(_), Some(_)) => return Err("version and label cannot both be given".into()),
                    (Some(v), None) | (None, Some(v)) => {
                        name.push(':');
                        name.push_str(&v);
                    }
                    (None, None) => {}
                }
                let with_decryption = match get("withDecryption").as_deref() {
                    None | Some("false") => false,
                    Some("true") => true,
                    Some(_) => return Err("withDecryption must be true or false".into()),
                };
                Ok(Some(Lookup::Parameter { name, with_decryption }))
            }
            _ => Ok(None),
        }
    }

    /// Parses `secretsmanager:ID` or `ssm:NAME[?withDecryption=true]` (prefetch and
    /// wrapper references; a secret's `#key` is the caller's to strip first).
    pub fn parse_reference(s: &str) -> Result<Lookup, String> {
        if let Some(id) = s.strip_prefix("secretsmanager:") {
            if id.is_empty() {
                return Err("names no secret".into());
            }
            return Ok(Lookup::Secret { id: id.to_owned(), version_id: None, version_stage: None });
        }
        if let Some(rest) = s.strip_prefix("ssm:") {
            let (name, query) = rest.split_once('?').unwrap_or((rest, ""));
            if name.is_empty() {
                return Err("names no parameter".into());
            }
            let with_decryption = match query {
                "" | "withDecryption=false" => false,
                "withDecryption=true" => true,
                _ => return Err("accepts only ?withDecryption=true".into()),
            };
            return Ok(Lookup::Parameter { name: name.to_owned(), with_decryption });
        }
        Err("is not secretsmanager:ID or ssm:NAME".into())
    }

    /// The HTTP API path and query that read this lookup (what `tandem wrap` asks).
    pub fn http_path(&self) -> String {
        match self {
            Lookup::Secret { id, version_id, version_stage } => {
                let mut p = format!("{SECRET_PATH}?secretId={}", encode(id));
                if let Some(v) = version_id {
                    p.push_str(&format!("&versionId={}", encode(v)));
                }
                if let Some(v) = version_stage {
                    p.push_str(&format!("&versionStage={}", encode(v)));
                }
                p
            }
            Lookup::Parameter { name, with_decryption } => {
                format!("{PARAMETER_PATH}?name={}&withDecryption={with_decryption}", encode(name))
            }
        }
    }

    /// The service that answers it.
    pub fn service(&self) -> Service {
        match self {
            Lookup::Secret { .. } => Service::SecretsManager,
            Lookup::Parameter { .. } => Service::Ssm,
        }
    }

    /// The operation and JSON body of its AWS call.
    pub fn aws_call(&self) -> (&'static str, Bytes) {
        match self {
            Lookup::Secret { id, version_id, version_stage } => {
                let mut body = json!({ "SecretId": id });
                if let Some(v) = version_id {
                    body["VersionId"] = Value::String(v.clone());
                }
                if let Some(v) = version_stage {
                    body["VersionStage"] = Value::String(v.clone());
                }
                ("GetSecretValue", Bytes::from(body.to_string()))
            }
            Lookup::Parameter { name, with_decryption } => {
                let body = json!({ "Name": name, "WithDecryption": with_decryption });
                ("GetParameter", Bytes::from(body.to_string()))
            }
        }
    }

    /// A short name for diagnostics: the secret's id or the parameter's name (never a
    /// value).
    pub fn name(&self) -> &str {
        match self {
            Lookup::Secret { id, .. } => id,
            Lookup::Parameter { name, .. } => name,
        }
    }
}

/// The status the HTTP API answers for an AWS error: AWS's own mapping of its common
/// error types (JSON 1.1 answers every client error as 400), else AWS's status.
pub fn status_of(error_type: &str, aws_status: u16) -> u16 {
    match error_type {
        "ResourceNotFoundException" | "ParameterNotFound" | "ParameterVersionNotFound" => 404,
        "AccessDeniedException" | "UnrecognizedClientException" | "InvalidSignatureException" => 403,
        "ThrottlingException" | "TooManyRequestsException" | "ThrottledException" => 429,
        _ => aws_status,
    }
}

/// `k=v&k2=v2` percent-decoded (`+` is a space, as in forms).
fn parse_query(query: &str) -> Result<Vec<(String, String)>, String> {
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            Ok((decode(k)?, decode(v)?))
        })
        .collect()
}

fn decode(s: &str) -> Result<String, String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' => {
                let hex = b.get(i + 1..i + 3).and_then(|h| std::str::from_utf8(h).ok());
                let byte =
                    hex.and_then(|h| u8::from_str_radix(h, 16).ok()).ok_or("bad percent-encoding in the query")?;
                out.push(byte);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8(out).map_err(|_| "the query is not UTF-8".into())
}

/// Percent-encodes all but RFC 3986's unreserved characters.
pub fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_http_api_as_aws_extension() {
        let l = Lookup::from_http("/secretsmanager/get", "secretId=prod%2Fdb&versionStage=AWSPREVIOUS").unwrap();
        assert_eq!(
            l,
            Some(Lookup::Secret { id: "prod/db".into(), version_id: None, version_stage: Some("AWSPREVIOUS".into()) })
        );
        let l = Lookup::from_http("/systemsmanager/parameters/get/", "name=%2Fapp%2Furl&version=3&withDecryption=true");
        assert_eq!(l.unwrap(), Some(Lookup::Parameter { name: "/app/url:3".into(), with_decryption: true }));
        let l = Lookup::from_http("/systemsmanager/parameters/get", "name=/app/url:prod").unwrap().unwrap();
        assert_eq!(l.aws_call().1, Bytes::from(r#"{"Name":"/app/url:prod","WithDecryption":false}"#));
        assert_eq!(Lookup::from_http("/other", ""), Ok(None));
        assert!(Lookup::from_http("/secretsmanager/get", "").is_err());
        assert!(Lookup::from_http("/secretsmanager/get", "secretId=a&versionId=1&versionStage=b").is_err());
        assert!(Lookup::from_http("/secretsmanager/get", "secretId=%zz").is_err());
    }

    #[test]
    fn references_and_paths_round_trip() {
        for r in ["secretsmanager:prod/db", "ssm:/app/url?withDecryption=true", "ssm:/a b"] {
            let l = Lookup::parse_reference(r).unwrap();
            let p = l.http_path();
            let (path, query) = p.split_once('?').unwrap();
            assert_eq!(Lookup::from_http(path, query).unwrap(), Some(l), "{r}");
        }
        assert!(Lookup::parse_reference("s3:x").is_err());
        assert!(Lookup::parse_reference("ssm:/a?x=1").is_err());
    }

    #[test]
    fn aws_error_types_map_to_statuses() {
        assert_eq!(status_of("ResourceNotFoundException", 400), 404);
        assert_eq!(status_of("ParameterNotFound", 400), 404);
        assert_eq!(status_of("AccessDeniedException", 400), 403);
        assert_eq!(status_of("InvalidRequestException", 400), 400);
        assert_eq!(status_of("InternalServiceError", 500), 500);
    }
}
