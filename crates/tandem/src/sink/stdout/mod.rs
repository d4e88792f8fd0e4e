//! sink::stdout: CloudWatch Embedded Metric Format on the extension's stdout, which
//! Lambda sends to the function's log group, where CloudWatch extracts the metrics.
//! The default sink: it needs no configuration and no network.
//!
//! One EMF document per invocation (namespace `TANDEM_EMF_NAMESPACE`), per health
//! snapshot (`TANDEM_EMF_HEALTH_NAMESPACE`, counters as changes since the previous
//! snapshot written) and per security finding of the guard (`SecurityFindings` by
//! `kind`, in the invocation namespace). Other log records are not written: the
//! function's lines are in CloudWatch already (and a finding's own line is written by
//! the guard as a diagnostic). A batch is one write. What it prints comes back through the
//! Telemetry API as `extension` lines; the pipeline recognises and drops them.

pub mod config;
pub mod encode;
pub mod received;
#[cfg(test)]
mod spec_tests;

use super::{Attempt, Deliver};
use crate::config::Config;
use crate::model::{HealthSnapshot, Item};
use crate::queue::Entry;
use encode::{self as emf, EmfOptions};
use std::future::Future;
use std::io::{self, Write};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

/// The `stdout` sink.
pub struct StdoutSink {
    opts: EmfOptions,
    /// The last health snapshot written, for the counters' deltas.
    last_health: Option<HealthSnapshot>,
    buf: Vec<u8>,
}

impl StdoutSink {
    /// A sink writing with `opts`.
    pub fn new(opts: EmfOptions) -> StdoutSink {
        StdoutSink { opts, last_health: None, buf: Vec::new() }
    }

    /// Renders the batch; returns the last health snapshot in it.
    fn render(&mut self, batch: &[Entry]) -> Option<HealthSnapshot> {
        self.buf.clear();
        let mut previous = self.last_health.clone();
        for e in batch {
            match &*e.item {
                Item::Invocation(i) => emf::encode_invocation(i, &self.opts, &mut self.buf),
                Item::Health(h) => {
                    emf::encode_health(h, previous.as_ref(), &self.opts, &mut self.buf);
                    previous = Some((**h).clone());
                }
                Item::Otlp(r) => received::encode_received(r, &self.opts, &mut self.buf),
                Item::Log(r) => {
                    emf::encode_security(r, &self.opts, &mut self.buf);
                }
            }
        }
        previous
    }

    /// Writes the documents of the batch in one write.
    pub fn attempt(&mut self, batch: &mut [Entry]) -> Attempt {
        let last = self.render(batch);
        if self.buf.is_empty() {
            return Attempt::Ok;
        }
        let mut out = io::stdout().lock();
        match out.write_all(&self.buf).and_then(|()| out.flush()) {
            Ok(()) => {
                self.last_health = last;
                Attempt::Ok
            }
            // Nobody reads stdout any more: nothing written there can ever arrive.
            Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Attempt::Permanent(format!("stdout is closed: {e}")),
            Err(e) => Attempt::retry(format!("cannot write to stdout: {e}")),
        }
    }
}

impl Deliver for StdoutSink {
    fn build(config: &Config, _instance: &Arc<OnceLock<String>>) -> Result<Self, String> {
        Ok(StdoutSink::new(config.emf.clone()))
    }

    /// Metrics only: the function's log lines are in CloudWatch already; of log records,
    /// the guard's findings, as `SecurityFindings`. Of what the
    /// OTLP receiver took in, the metric points with an unambiguous EMF form
    /// ([`received`]); the receiver counts the rest as not deliverable to this sink
    /// (`receiver::UNDELIVERABLE_STDOUT`).
    fn accepts(item: &Item) -> bool {
        match item {
            Item::Log(r) => emf::security_kind(r).is_some(),
            Item::Otlp(r) => received::emf_points(r) > 0,
            _ => true,
        }
    }

    fn attempt_timeout(&self) -> Duration {
        Duration::from_secs(5)
    }

    fn attempt(&mut self, batch: &mut [Entry]) -> impl Future<Output = Attempt> + Send {
        std::future::ready(StdoutSink::attempt(self, batch))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Invocation;
    use std::sync::Arc;

    #[test]
    fn one_document_per_invocation_and_health_deltas() {
        let mut s = StdoutSink::new(EmfOptions { function_name: "f".into(), ..EmfOptions::default() });
        let inv =
            Invocation { request_id: "r-1".into(), status: "success".into(), complete: true, ..Invocation::default() };
        let h1 = HealthSnapshot { records_in: 10, ..HealthSnapshot::default() };
        let h2 = HealthSnapshot { records_in: 25, ..HealthSnapshot::default() };
        let batch: Vec<Entry> =
            [Item::from(inv), Item::from(h1), Item::from(h2)].into_iter().map(|i| Entry::new(Arc::new(i), 1)).collect();
        let last = s.render(&batch);
        let text = String::from_utf8(s.buf.clone()).unwrap();
        let docs: Vec<serde_json::Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        assert_eq!(docs.len(), 3);
        assert!(docs.iter().all(|d| d.get("_aws").is_some()));
        assert!(text.lines().all(encode::is_emf_document));
        assert_eq!(docs[0]["requestId"], "r-1");
        assert_eq!(docs[1]["RecordsIn"], 10);
        assert_eq!(docs[2]["RecordsIn"], 15, "a delta against the previous snapshot");
        assert_eq!(last.map(|h| h.records_in), Some(25));
    }
}
