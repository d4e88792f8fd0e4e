//! sink::http: NDJSON POSTed to `TANDEM_HTTP_URL`, one JSON object per record and line
//! (`Content-Type: application/x-ndjson`), gzipped when `TANDEM_HTTP_GZIP` is on, with
//! the headers of `TANDEM_HTTP_HEADERS`. One request per batch on a keep-alive
//! connection; 2xx accepts the batch, see [`super::classify`] for the rest.

use super::client::{self, Client, Endpoint};
use super::{judge, Attempt};
use crate::config::HttpConfig;
use crate::encode::ndjson;
use crate::queue::Entry;
use bytes::Bytes;
use http::HeaderMap;
use std::time::Duration;

/// The longest one request may take (the flush's own deadline is usually shorter).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

pub struct HttpSink {
    endpoint: Endpoint,
    client: Client,
    headers: HeaderMap,
    gzip: bool,
    what: String,
    buf: Vec<u8>,
}

impl HttpSink {
    pub fn new(cfg: &HttpConfig) -> Result<HttpSink, String> {
        let url = cfg.url.as_deref().ok_or("the http sink needs TANDEM_HTTP_URL")?;
        let endpoint =
            Endpoint::parse(url).map_err(|e| format!("TANDEM_HTTP_URL {:?} {e}", crate::config::redact_url(url)))?;
        Ok(HttpSink {
            client: Client::new(&endpoint),
            what: format!("POST {}", crate::config::redact_url(url)),
            endpoint,
            headers: client::header_map(&cfg.headers),
            gzip: cfg.gzip,
            buf: Vec::new(),
        })
    }

    pub async fn attempt(&mut self, batch: &mut [Entry]) -> Attempt {
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
        let req = match client::post(&self.endpoint, "application/x-ndjson", self.gzip, &self.headers, body) {
            Ok(r) => r,
            Err(e) => return Attempt::Permanent(e),
        };
        match self.client.send(req).await {
            Ok(answer) => judge(&self.what, &answer),
            Err(e) => Attempt::retry(e),
        }
    }
}
