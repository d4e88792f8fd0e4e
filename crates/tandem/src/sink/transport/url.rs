//! sink::transport::url: what an HTTP destination is, checked without connecting: URL
//! parsing into an [`Endpoint`], the configuration's URL and header-name checks, and
//! the redaction of URLs for messages (credentials and query strings hold secrets).
//! Pure: the configuration uses it at load time, [`super`] at send time.

use http::Uri;

/// Where requests go: a parsed `http://` or `https://` URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// `https://` rather than `http://`.
    pub https: bool,
    /// Host name or address (IPv6 without brackets).
    pub host: String,
    /// Port (default 80 or 443).
    pub port: u16,
    /// `Host` header value.
    pub authority: String,
    /// Path and query, `/` at least.
    pub path: String,
}

impl Endpoint {
    /// Parses an absolute http(s) URL. Userinfo is refused (credentials belong in
    /// headers), and so is `https` when the binary was built without TLS.
    pub fn parse(url: &str) -> Result<Endpoint, String> {
        let uri: Uri = url.trim().parse().map_err(|e| format!("is not a valid URL ({e})"))?;
        let https = match uri.scheme_str() {
            Some("http") => false,
            Some("https") => true,
            _ => return Err("is not an http:// or https:// URL".into()),
        };
        if https && !cfg!(feature = "tls") {
            return Err("is https, but this build of tandem has no TLS support (feature `tls`)".into());
        }
        let authority = uri.authority().ok_or("has no host")?;
        if authority.as_str().contains('@') {
            return Err("carries credentials in the URL; put them in a header instead".into());
        }
        let host = authority.host().trim_start_matches('[').trim_end_matches(']').to_owned();
        if host.is_empty() {
            return Err("has no host".into());
        }
        let port = explicit_port(authority.as_str()).map_err(String::from)?.unwrap_or(if https { 443 } else { 80 });
        let path = uri.path_and_query().map_or("/".to_owned(), |p| p.as_str().to_owned());
        let path = if path.is_empty() { "/".to_owned() } else { path };
        Ok(Endpoint { https, host, port, authority: authority.as_str().to_owned(), path })
    }

    /// Whether two endpoints can share a connection.
    pub fn same_origin(&self, other: &Endpoint) -> bool {
        self.https == other.https && self.host == other.host && self.port == other.port
    }
}

/// Whether `s` is a valid HTTP header name (an RFC 9110 token).
pub fn is_header_name(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|c| c.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&c))
}

/// `http://host[:port][/path]` or `https://…` with a non-empty host.
pub fn check_url(url: &str) -> Result<(), &'static str> {
    let rest = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"))
        .ok_or("is not an http:// or https:// URL")?;
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host = authority.rsplit('@').next().unwrap_or("");
    if host.is_empty() || host.starts_with(':') {
        return Err("has no host");
    }
    if url.bytes().any(|c| c.is_ascii_whitespace() || c.is_ascii_control()) {
        return Err("contains spaces or control characters");
    }
    explicit_port(host).map(|_| ())
}

/// The port an authority (`host`, `host:port`, `[v6]:port`, without userinfo) names,
/// if any. A port that is not a number from 1 to 65535 is an error: it must never fall
/// back to the scheme's default (an `:99999` typo would silently send to port 80).
fn explicit_port(authority: &str) -> Result<Option<u16>, &'static str> {
    let after_host = match authority.strip_prefix('[') {
        Some(v6) => match v6.split_once(']') {
            Some((_, rest)) => rest,
            None => return Err("has an unterminated [IPv6] host"),
        },
        None => authority.rsplit_once('@').map_or(authority, |(_, h)| h),
    };
    let Some(i) = after_host.find(':') else { return Ok(None) };
    let digits = &after_host[i + 1..];
    if digits.is_empty() {
        return Ok(None);
    }
    match digits.parse::<u16>() {
        Ok(p) if p > 0 && digits.bytes().all(|c| c.is_ascii_digit()) => Ok(Some(p)),
        _ => Err("has an invalid port (a number from 1 to 65535)"),
    }
}

/// The URL without credentials or query string, for messages and `describe`.
pub fn redact_url(url: &str) -> String {
    let (scheme, rest) = match url.split_once("://") {
        Some((s, r)) => (Some(s), r),
        None => (None, url),
    };
    let (authority, tail) = match rest.find(['/', '?', '#']) {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    let authority = match authority.rsplit_once('@') {
        Some((_, host)) => format!("***@{host}"),
        None => authority.to_owned(),
    };
    let tail = match tail.find(['?', '#']) {
        Some(i) => format!("{}?***", &tail[..i]),
        None => tail.to_owned(),
    };
    match scheme {
        Some(s) => format!("{s}://{authority}{tail}"),
        None => format!("{authority}{tail}"),
    }
}

/// Header names with their values hidden (`name=***, …`, or `none`): values hold secrets.
pub fn redact_headers(h: &[(String, String)]) -> String {
    if h.is_empty() {
        "none".into()
    } else {
        h.iter().map(|(k, _)| format!("{k}=***")).collect::<Vec<_>>().join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_parse_with_default_ports_and_paths() {
        let e = Endpoint::parse("http://127.0.0.1:4318/v1/logs").unwrap();
        assert_eq!((e.https, e.host.as_str(), e.port, e.path.as_str()), (false, "127.0.0.1", 4318, "/v1/logs"));
        assert_eq!(e.authority, "127.0.0.1:4318");
        let e = Endpoint::parse("http://collector").unwrap();
        assert_eq!((e.port, e.path.as_str()), (80, "/"));
        let e = Endpoint::parse("http://[::1]:9000/in?x=1").unwrap();
        assert_eq!((e.host.as_str(), e.path.as_str()), ("::1", "/in?x=1"));
        assert!(Endpoint::parse("ftp://h/x").is_err());
        assert!(Endpoint::parse("http://user:pw@h/x").unwrap_err().contains("credentials"));
        assert!(Endpoint::parse("not a url").is_err());
        let a = Endpoint::parse("http://h:1/a").unwrap();
        assert!(a.same_origin(&Endpoint::parse("http://h:1/b").unwrap()));
        assert!(!a.same_origin(&Endpoint::parse("http://h:2/a").unwrap()));
        for bad in ["http://h:99999/x", "http://h:abc/x", "http://h:0/x", "http://[::1]:70000/", "http://h:+80/"] {
            assert!(check_url(bad).unwrap_err().contains("invalid port"), "{bad}");
            assert!(Endpoint::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(Endpoint::parse("http://h:/x").unwrap().port, 80);
        assert_eq!(Endpoint::parse("http://[::1]:65535/").unwrap().port, 65535);
        assert!(check_url("http://[::1]:4318/v1/logs").is_ok());
        if cfg!(feature = "tls") {
            assert_eq!(Endpoint::parse("https://logs.example.com/in").unwrap().port, 443);
        } else {
            assert!(Endpoint::parse("https://logs.example.com/in").is_err());
        }
    }
}
