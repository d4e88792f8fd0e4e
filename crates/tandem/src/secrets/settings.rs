//! secrets::settings: the cache's settings, read from the environment with the names
//! and defaults of AWS's Parameters and Secrets extension, without its caps, plus
//! tandem's own (`TANDEM_SECRETS`, `TANDEM_PREFETCH`, `TANDEM_SECRETS_STALE_IF_ERROR_S`).
//! Pure: the environment is passed in as a function. A bad value is a problem line and
//! the default is used; a value past AWS's caps is accepted and noted.

use super::request::Lookup;
use std::time::Duration;

/// The secrets settings and what each does (`check-config`, `--help`, the README).
pub const SETTINGS: &[(&str, &str)] = &[
    ("TANDEM_SECRETS", "the secrets cache on 127.0.0.1: on (default) or off"),
    ("PARAMETERS_SECRETS_EXTENSION_HTTP_PORT", "secrets cache port (default 2773)"),
    ("PARAMETERS_SECRETS_EXTENSION_CACHE_ENABLED", "cache values: true (default) or false (every read calls AWS)"),
    ("PARAMETERS_SECRETS_EXTENSION_CACHE_SIZE", "entries kept, least recently used evicted (default 1000, no cap)"),
    ("PARAMETERS_SECRETS_EXTENSION_MAX_CONNECTIONS", "connections per AWS service (default 3)"),
    ("PARAMETERS_SECRETS_EXTENSION_LOG_LEVEL", "secrets cache diagnostics: debug, info (default), warn, error, none"),
    ("SECRETS_MANAGER_TTL", "seconds a secret is served from the cache, 0 disables (default 300, no cap)"),
    ("SSM_PARAMETER_STORE_TTL", "seconds a parameter is served from the cache, 0 disables (default 300, no cap)"),
    ("SECRETS_MANAGER_TIMEOUT_MILLIS", "time a Secrets Manager read may take, retries included (default 0: 60 s)"),
    ("SSM_PARAMETER_STORE_TIMEOUT_MILLIS", "time a Parameter Store read may take, retries included (default 0: 60 s)"),
    ("TANDEM_SECRETS_STALE_IF_ERROR_S", "seconds past its TTL a value is served while AWS fails (default 300)"),
    ("TANDEM_PREFETCH", "fetched during INIT: secretsmanager:ID, ssm:NAME[?withDecryption=true], comma-separated"),
    ("TANDEM_SECRET_ENV", "for `tandem wrap`: NAME=secretsmanager:ID[#key] or NAME=ssm:NAME, comma-separated"),
];

/// AWS's extension caps its TTLs here; tandem accepts more and says so.
pub const AWS_MAX_TTL_S: u64 = 300;
/// AWS's extension caps its cache size here; tandem accepts more and says so.
pub const AWS_MAX_CACHE_SIZE: usize = 1000;
/// The timeout used for a `…_TIMEOUT_MILLIS` of 0 (AWS's "no timeout of its own").
pub const UNSET_TIMEOUT: Duration = Duration::from_secs(60);

/// The cache diagnostics' verbosity (AWS's levels).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    /// Nothing.
    None,
    /// Errors.
    Error,
    /// Warnings.
    Warn,
    /// Start-up and prefetch outcomes.
    Info,
    /// Every miss and refresh (names only).
    Debug,
}

/// The settings.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// Whether the listener starts at all.
    pub enabled: bool,
    /// Its port on 127.0.0.1.
    pub port: u16,
    /// Whether values are cached.
    pub cache_enabled: bool,
    /// Entries kept.
    pub cache_size: usize,
    /// Connections per service.
    pub max_connections: usize,
    /// Diagnostics level.
    pub level: Level,
    /// Secrets' TTL (zero: not cached).
    pub secrets_ttl: Duration,
    /// Parameters' TTL (zero: not cached).
    pub parameters_ttl: Duration,
    /// Secrets Manager reads' timeout.
    pub secrets_timeout: Duration,
    /// Parameter Store reads' timeout.
    pub parameters_timeout: Duration,
    /// How long past its TTL a value is served while AWS fails.
    pub stale_if_error: Duration,
    /// What to fetch during INIT.
    pub prefetch: Vec<Lookup>,
}

impl Default for Settings {
    fn default() -> Settings {
        Settings::from_env(|_| None).0
    }
}

impl Settings {
    /// Reads the settings; answers them and the problems found (one line each, naming
    /// the variable; a problem means its default is used).
    pub fn from_env(var: impl Fn(&str) -> Option<String>) -> (Settings, Vec<String>) {
        let mut problems = Vec::new();
        let get = |k: &str| var(k).map(|v| v.trim().to_owned()).filter(|v| !v.is_empty());
        let mut num = |k: &str, default: u64, min: u64| -> u64 {
            match get(k).map(|v| v.parse::<u64>()) {
                None => default,
                Some(Ok(n)) if n >= min => n,
                Some(_) => {
                    problems.push(format!("{k}: expected a whole number ≥ {min}; using {default}"));
                    default
                }
            }
        };
        let port = num("PARAMETERS_SECRETS_EXTENSION_HTTP_PORT", 2773, 1);
        let cache_size = num("PARAMETERS_SECRETS_EXTENSION_CACHE_SIZE", 1000, 1);
        let max_connections = num("PARAMETERS_SECRETS_EXTENSION_MAX_CONNECTIONS", 3, 1);
        let secrets_ttl = num("SECRETS_MANAGER_TTL", 300, 0);
        let parameters_ttl = num("SSM_PARAMETER_STORE_TTL", 300, 0);
        let secrets_timeout = num("SECRETS_MANAGER_TIMEOUT_MILLIS", 0, 0);
        let parameters_timeout = num("SSM_PARAMETER_STORE_TIMEOUT_MILLIS", 0, 0);
        let stale_if_error = num("TANDEM_SECRETS_STALE_IF_ERROR_S", 300, 0);
        let port = u16::try_from(port).unwrap_or_else(|_| {
            problems.push("PARAMETERS_SECRETS_EXTENSION_HTTP_PORT: not a port (1-65535); using 2773".into());
            2773
        });
        let mut flag = |k: &str, yes: &[&str], no: &[&str]| -> bool {
            match get(k).map(|v| v.to_ascii_lowercase()) {
                None => true,
                Some(v) if yes.contains(&v.as_str()) => true,
                Some(v) if no.contains(&v.as_str()) => false,
                Some(v) => {
                    problems.push(format!("{k}: {v:?} is neither {} nor {}; using {}", yes[0], no[0], yes[0]));
                    true
                }
            }
        };
        let enabled = flag("TANDEM_SECRETS", &["on", "true", "1"], &["off", "false", "0"]);
        let cache_enabled =
            flag("PARAMETERS_SECRETS_EXTENSION_CACHE_ENABLED", &["true", "on", "1"], &["false", "off", "0"]);
        let level = match get("PARAMETERS_SECRETS_EXTENSION_LOG_LEVEL").map(|v| v.to_ascii_lowercase()).as_deref() {
            None | Some("info") => Level::Info,
            Some("debug") => Level::Debug,
            Some("warn") => Level::Warn,
            Some("error") => Level::Error,
            Some("none") => Level::None,
            Some(other) => {
                problems.push(format!(
                    "PARAMETERS_SECRETS_EXTENSION_LOG_LEVEL: {other:?} is not debug, info, warn, error or none; using info"
                ));
                Level::Info
            }
        };
        let mut prefetch = Vec::new();
        for item in get("TANDEM_PREFETCH").unwrap_or_default().split([',', ' ', '\n']).filter(|s| !s.is_empty()) {
            match Lookup::parse_reference(item) {
                Ok(l) => prefetch.push(l),
                Err(why) => problems.push(format!("TANDEM_PREFETCH: {item:?} {why}; skipped")),
            }
        }
        let timeout = |ms: u64| if ms == 0 { UNSET_TIMEOUT } else { Duration::from_millis(ms) };
        let settings = Settings {
            enabled,
            port,
            cache_enabled,
            cache_size: usize::try_from(cache_size).unwrap_or(usize::MAX),
            max_connections: usize::try_from(max_connections).unwrap_or(usize::MAX),
            level,
            secrets_ttl: Duration::from_secs(secrets_ttl),
            parameters_ttl: Duration::from_secs(parameters_ttl),
            secrets_timeout: timeout(secrets_timeout),
            parameters_timeout: timeout(parameters_timeout),
            stale_if_error: Duration::from_secs(stale_if_error),
            prefetch,
        };
        (settings, problems)
    }

    /// What AWS's extension would refuse and tandem accepts, one line each, for
    /// `check-config`.
    pub fn beyond_aws_caps(&self) -> Vec<String> {
        let mut notes = Vec::new();
        for (k, ttl) in [("SECRETS_MANAGER_TTL", self.secrets_ttl), ("SSM_PARAMETER_STORE_TTL", self.parameters_ttl)] {
            if ttl.as_secs() > AWS_MAX_TTL_S {
                notes.push(format!(
                    "{k}={} is over AWS's extension cap of {AWS_MAX_TTL_S} s: accepted by tandem",
                    ttl.as_secs()
                ));
            }
        }
        if self.cache_size > AWS_MAX_CACHE_SIZE {
            notes.push(format!(
                "PARAMETERS_SECRETS_EXTENSION_CACHE_SIZE={} is over AWS's extension cap of {AWS_MAX_CACHE_SIZE}: accepted by tandem",
                self.cache_size
            ));
        }
        notes
    }

    /// What `check-config` prints about the cache (names only, never values).
    pub fn describe(&self) -> String {
        if !self.enabled {
            return "secrets cache: off (TANDEM_SECRETS)\n".into();
        }
        let ttl = |d: Duration| {
            if self.cache_enabled && !d.is_zero() {
                format!("{} s", d.as_secs())
            } else {
                "not cached".into()
            }
        };
        format!(
            "secrets cache: 127.0.0.1:{}, {} entries, secrets {}, parameters {}, stale-if-error {} s, {} prefetched\n",
            self.port,
            self.cache_size,
            ttl(self.secrets_ttl),
            ttl(self.parameters_ttl),
            self.stale_if_error.as_secs(),
            self.prefetch.len()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn load(pairs: &[(&str, &str)]) -> (Settings, Vec<String>) {
        let map: HashMap<String, String> = pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        Settings::from_env(|k| map.get(k).cloned())
    }

    #[test]
    fn defaults_are_aws_extensions() {
        let (s, problems) = load(&[]);
        assert!(problems.is_empty());
        assert!(s.enabled && s.cache_enabled);
        assert_eq!((s.port, s.cache_size, s.max_connections), (2773, 1000, 3));
        assert_eq!((s.secrets_ttl, s.parameters_ttl), (Duration::from_secs(300), Duration::from_secs(300)));
        assert_eq!(s.secrets_timeout, UNSET_TIMEOUT);
        assert_eq!(s.level, Level::Info);
        assert!(s.beyond_aws_caps().is_empty());
    }

    #[test]
    fn values_past_aws_caps_are_accepted_and_noted() {
        let (s, problems) =
            load(&[("SECRETS_MANAGER_TTL", "3600"), ("PARAMETERS_SECRETS_EXTENSION_CACHE_SIZE", "10000")]);
        assert!(problems.is_empty());
        assert_eq!((s.secrets_ttl.as_secs(), s.cache_size), (3600, 10_000));
        let notes = s.beyond_aws_caps();
        assert_eq!(notes.len(), 2, "{notes:?}");
        assert!(notes[0].contains("SECRETS_MANAGER_TTL=3600"));
    }

    #[test]
    fn bad_values_fall_back_with_a_problem() {
        let (s, problems) = load(&[
            ("PARAMETERS_SECRETS_EXTENSION_HTTP_PORT", "99999"),
            ("PARAMETERS_SECRETS_EXTENSION_CACHE_SIZE", "0"),
            ("PARAMETERS_SECRETS_EXTENSION_LOG_LEVEL", "loud"),
            ("TANDEM_SECRETS", "maybe"),
            ("TANDEM_PREFETCH", "secretsmanager:a, dynamodb:b ,ssm:/p?withDecryption=true"),
            ("SSM_PARAMETER_STORE_TIMEOUT_MILLIS", "250"),
        ]);
        assert_eq!((s.port, s.cache_size, s.level, s.enabled), (2773, 1000, Level::Info, true));
        assert_eq!(s.parameters_timeout, Duration::from_millis(250));
        assert_eq!(s.prefetch.len(), 2);
        assert_eq!(problems.len(), 5, "{problems:?}");
        assert!(problems.iter().any(|p| p.starts_with("TANDEM_PREFETCH: \"dynamodb:b\"")), "{problems:?}");
        let (s, _) = load(&[("TANDEM_SECRETS", "off")]);
        assert!(!s.enabled);
    }
}
