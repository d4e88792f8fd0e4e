//! aws: one small AWS client for `tandem` (the secrets cache now, the AWS sinks next).
//!
//! Owns where AWS is and who we are to it: credentials from the environment Lambda
//! gives extensions (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`),
//! the region (`AWS_REGION`, else `AWS_DEFAULT_REGION`), endpoints from the SDKs'
//! standard variables (`AWS_ENDPOINT_URL_<SERVICE>`, then `AWS_ENDPOINT_URL`, then
//! `https://<service>.<region>.amazonaws.com`); SigV4 signing with the official
//! `aws-sigv4` crate ([`sign`]); the JSON 1.1 protocol (`X-Amz-Target`) and AWS's error
//! bodies ([`json`]); the retry policy ([`retry`], sans-I/O); and the calls themselves
//! over keep-alive connections of the one HTTP transport ([`client`]).
//!
//! Everything here but [`client`] is pure. Never logs a request or answer body: they
//! carry secrets. The credentials' [`std::fmt::Debug`] hides them.

pub mod client;
pub mod json;
pub mod retry;
pub mod sign;

use crate::sink::transport::url::Endpoint;

/// The AWS services `tandem` calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Service {
    /// AWS Secrets Manager.
    SecretsManager,
    /// AWS Systems Manager (Parameter Store).
    Ssm,
}

impl Service {
    /// The SigV4 signing name and endpoint prefix.
    pub fn signing_name(self) -> &'static str {
        match self {
            Service::SecretsManager => "secretsmanager",
            Service::Ssm => "ssm",
        }
    }

    /// The JSON 1.1 target prefix (`X-Amz-Target: <prefix>.<Operation>`).
    pub fn target_prefix(self) -> &'static str {
        match self {
            Service::SecretsManager => "secretsmanager",
            Service::Ssm => "AmazonSSM",
        }
    }

    /// The service's own endpoint variable (the SDKs' `AWS_ENDPOINT_URL_<SERVICE_ID>`).
    pub fn endpoint_variable(self) -> &'static str {
        match self {
            Service::SecretsManager => "AWS_ENDPOINT_URL_SECRETS_MANAGER",
            Service::Ssm => "AWS_ENDPOINT_URL_SSM",
        }
    }
}

/// Credentials, as Lambda gives them to extensions. `Debug` shows the key id only.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    /// `AWS_ACCESS_KEY_ID`.
    pub access_key_id: String,
    /// `AWS_SECRET_ACCESS_KEY`.
    pub secret_access_key: String,
    /// `AWS_SESSION_TOKEN`, when temporary.
    pub session_token: Option<String>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials").field("access_key_id", &self.access_key_id).finish_non_exhaustive()
    }
}

/// Where AWS is and who we are: read once from the environment.
#[derive(Debug, Clone)]
pub struct AwsEnv {
    /// The credentials, if the environment has them (a call without is refused).
    pub credentials: Option<Credentials>,
    /// The region (`us-east-1` when none is set, as the SDKs' last resort is none:
    /// Lambda always sets `AWS_REGION`).
    pub region: String,
    secrets_manager: Result<Endpoint, String>,
    ssm: Result<Endpoint, String>,
}

/// Region used when the environment names none (never the case in Lambda).
pub const DEFAULT_REGION: &str = "us-east-1";

impl AwsEnv {
    /// Reads the environment through `var` (pure: tests pass a map).
    pub fn from_env(var: impl Fn(&str) -> Option<String>) -> AwsEnv {
        let non_empty = |k: &str| var(k).map(|v| v.trim().to_owned()).filter(|v| !v.is_empty());
        let credentials = match (non_empty("AWS_ACCESS_KEY_ID"), non_empty("AWS_SECRET_ACCESS_KEY")) {
            (Some(access_key_id), Some(secret_access_key)) => {
                Some(Credentials { access_key_id, secret_access_key, session_token: non_empty("AWS_SESSION_TOKEN") })
            }
            _ => None,
        };
        let region = non_empty("AWS_REGION").or_else(|| non_empty("AWS_DEFAULT_REGION"));
        let region = region.unwrap_or_else(|| DEFAULT_REGION.to_owned());
        let endpoint = |service: Service| {
            let url = non_empty(service.endpoint_variable())
                .or_else(|| non_empty("AWS_ENDPOINT_URL"))
                .unwrap_or_else(|| default_endpoint(service, &region));
            Endpoint::parse(&url).map_err(|e| format!("the {} endpoint {e}", service.signing_name()))
        };
        AwsEnv { credentials, secrets_manager: endpoint(Service::SecretsManager), ssm: endpoint(Service::Ssm), region }
    }

    /// The endpoint of `service`, or why there is none usable.
    pub fn endpoint(&self, service: Service) -> Result<&Endpoint, &str> {
        match service {
            Service::SecretsManager => self.secrets_manager.as_ref(),
            Service::Ssm => self.ssm.as_ref(),
        }
        .map_err(String::as_str)
    }
}

/// `https://<service>.<region>.amazonaws.com` (`.amazonaws.com.cn` in China's regions).
pub fn default_endpoint(service: Service, region: &str) -> String {
    let suffix = if region.starts_with("cn-") { "amazonaws.com.cn" } else { "amazonaws.com" };
    format!("https://{}.{region}.{suffix}", service.signing_name())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env(pairs: &[(&str, &str)]) -> AwsEnv {
        let map: HashMap<String, String> = pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        AwsEnv::from_env(|k| map.get(k).cloned())
    }

    #[test]
    fn endpoints_follow_the_sdk_variables() {
        let e = env(&[("AWS_REGION", "eu-west-3")]);
        assert_eq!(e.endpoint(Service::SecretsManager).unwrap().host, "secretsmanager.eu-west-3.amazonaws.com");
        assert!(e.endpoint(Service::Ssm).unwrap().https);
        let e =
            env(&[("AWS_ENDPOINT_URL", "http://127.0.0.1:5000"), ("AWS_ENDPOINT_URL_SSM", "http://127.0.0.1:6000")]);
        assert_eq!(e.endpoint(Service::SecretsManager).unwrap().port, 5000);
        assert_eq!(e.endpoint(Service::Ssm).unwrap().port, 6000);
        assert_eq!(e.region, DEFAULT_REGION);
        let e = env(&[("AWS_REGION", "cn-north-1")]);
        assert_eq!(e.endpoint(Service::Ssm).unwrap().host, "ssm.cn-north-1.amazonaws.com.cn");
        let e = env(&[("AWS_ENDPOINT_URL_SECRETS_MANAGER", "ftp://x")]);
        assert!(e.endpoint(Service::SecretsManager).unwrap_err().contains("secretsmanager endpoint"));
    }

    #[test]
    fn credentials_need_both_keys_and_never_show_the_secret() {
        assert!(env(&[("AWS_ACCESS_KEY_ID", "AKID")]).credentials.is_none());
        let e =
            env(&[("AWS_ACCESS_KEY_ID", "AKID"), ("AWS_SECRET_ACCESS_KEY", "s3cr3t"), ("AWS_SESSION_TOKEN", "tok")]);
        let c = e.credentials.unwrap();
        assert_eq!(c.session_token.as_deref(), Some("tok"));
        let shown = format!("{c:?}");
        assert!(shown.contains("AKID") && !shown.contains("s3cr3t") && !shown.contains("tok"), "{shown}");
    }
}
