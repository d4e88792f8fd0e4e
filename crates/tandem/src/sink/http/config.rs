//! sink::http::config: the `http` sink's settings (`TANDEM_HTTP_URL`,
//! `TANDEM_HTTP_HEADERS`, `TANDEM_HTTP_GZIP`), their loading and their `check-config`
//! line. The URL is read only when the sink is enabled (see [`HttpConfig::enable`]).
//! Pure.

use crate::config::load::Loader;
use crate::sink::transport::url::{redact_headers, redact_url};
use std::fmt::Write as _;

/// The `http` sink's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpConfig {
    /// Required by the `http` sink.
    pub url: Option<String>,
    /// Extra request headers, checked at load time.
    pub headers: Vec<(String, String)>,
    /// Whether bodies are gzipped.
    pub gzip: bool,
}

impl HttpConfig {
    pub(crate) fn load(l: &mut Loader<'_>) -> HttpConfig {
        HttpConfig { url: None, headers: l.headers("TANDEM_HTTP_HEADERS"), gzip: l.boolean("TANDEM_HTTP_GZIP", false) }
    }

    /// The sink was asked for in `TANDEM_SINKS`: reads its URL. `false` (after reporting)
    /// when there is no usable one, and the sink is dropped.
    pub(crate) fn enable(&mut self, l: &mut Loader<'_>) -> bool {
        self.url = l.url("TANDEM_HTTP_URL", "the http sink is dropped");
        if self.url.is_some() {
            return true;
        }
        if l.get("TANDEM_HTTP_URL").is_none() {
            l.problem("TANDEM_SINKS", "the http sink needs TANDEM_HTTP_URL; dropped");
        }
        false
    }

    pub(crate) fn describe(&self, s: &mut String) {
        // Writing to a String cannot fail.
        let _ = writeln!(
            s,
            "  http: NDJSON to {}, gzip {}, headers: {}",
            self.url.as_deref().map_or("(none)".into(), redact_url),
            if self.gzip { "on" } else { "off" },
            redact_headers(&self.headers)
        );
    }
}
