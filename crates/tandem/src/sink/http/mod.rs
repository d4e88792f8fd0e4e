//! sink::http: NDJSON POSTed to `TANDEM_HTTP_URL`, one JSON object per record and line
//! (`Content-Type: application/x-ndjson`), gzipped when `TANDEM_HTTP_GZIP` is on, with
//! the headers of `TANDEM_HTTP_HEADERS`. One request per batch on a keep-alive
//! connection; 2xx accepts the batch, see [`super::classify`] for the rest.
//!
//! Every request carries an `Idempotency-Key` naming its records (the process that
//! numbered the first one, its number, the count; kept in the spool): the same for
//! every retry of the same records, also by a new process after a `kill -9`, so that a
//! receiver can drop the rare duplicate that at-least-once delivery allows (a request
//! whose answer was not seen, sent again).

pub mod config;

use super::transport::url::{redact_url, Endpoint};
use super::transport::{self, Client};
use super::{judge, Attempt, Deliver};
use crate::config::Config;
use crate::encode::ndjson;
use crate::queue::Entry;
use bytes::Bytes;
use config::HttpConfig;
use http::{HeaderMap, HeaderName, HeaderValue};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

/// The longest one request may take (the flush's own deadline is usually shorter).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// The header naming a request's records.
pub const IDEMPOTENCY_KEY: HeaderName = HeaderName::from_static("idempotency-key");

/// `<origin>-<first record>-<count>`: the first record's stamp (a queue is FIFO, so it
/// and the count name the records), see [`crate::spool::Stamp`].
pub fn idempotency_key(batch: &[Entry]) -> String {
    match batch.first() {
        Some(e) => format!("{}-{}-{}", e.stamp.origin, e.stamp.seq, batch.len()),
        None => format!("{}-0-0", crate::spool::origin()),
    }
}

/// The `http` sink.
pub struct HttpSink {
    endpoint: Endpoint,
    client: Client,
    headers: HeaderMap,
    gzip: bool,
    what: String,
    buf: Vec<u8>,
}

impl HttpSink {
    /// A sink posting to `cfg.url` (required).
    pub fn new(cfg: &HttpConfig) -> Result<HttpSink, String> {
        let url = cfg.url.as_deref().ok_or("the http sink needs TANDEM_HTTP_URL")?;
        let endpoint = Endpoint::parse(url).map_err(|e| format!("TANDEM_HTTP_URL {:?} {e}", redact_url(url)))?;
        Ok(HttpSink {
            client: Client::new(&endpoint),
            what: format!("POST {}", redact_url(url)),
            endpoint,
            headers: transport::header_map(&cfg.headers),
            gzip: cfg.gzip,
            buf: Vec::new(),
        })
    }
}

impl Deliver for HttpSink {
    fn build(config: &Config, _instance: &Arc<OnceLock<String>>) -> Result<Self, String> {
        HttpSink::new(&config.http)
    }

    fn attempt_timeout(&self) -> Duration {
        REQUEST_TIMEOUT
    }

    async fn attempt(&mut self, batch: &mut [Entry]) -> Attempt {
        self.buf.clear();
        ndjson::encode_batch(batch.iter().map(|e| &*e.item), &mut self.buf);
        let body = if self.gzip {
            match ndjson::gzip(&self.buf) {
                Ok(b) => Bytes::from(b),
                Err(e) => return Attempt::retry(format!("cannot gzip the body: {e}")),
            }
        } else {
            Bytes::copy_from_slice(&self.buf)
        };
        let mut req = match transport::post(&self.endpoint, "application/x-ndjson", self.gzip, &self.headers, body) {
            Ok(r) => r,
            Err(e) => return Attempt::Permanent(e),
        };
        if let Ok(v) = HeaderValue::from_str(&idempotency_key(batch)) {
            req.headers_mut().insert(IDEMPOTENCY_KEY, v);
        }
        match self.client.send(req).await {
            Ok(answer) => judge(&self.what, &answer),
            Err(e) => Attempt::retry(e),
        }
    }
}
