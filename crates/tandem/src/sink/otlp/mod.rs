//! sink::otlp: OTLP/HTTP to a collector: log records to `/v1/logs`, invocation metrics
//! and the extension's health to `/v1/metrics`, invocation spans to `/v1/traces`
//! (endpoints from `OTEL_EXPORTER_OTLP_ENDPOINT` or the per-signal variables), protobuf
//! or JSON (`OTEL_EXPORTER_OTLP_PROTOCOL`), optionally gzipped, with
//! `OTEL_EXPORTER_OTLP_HEADERS`.
//!
//! A batch is up to three requests, one per signal it holds. A record counts as
//! delivered only when every signal it produces was accepted: each entry remembers the
//! signals already accepted (its `progress` bits), so a retry re-sends only the
//! signals that failed, never duplicating an accepted one. A signal rejected for good
//! marks its records rejected; the other signals still go. One connection per distinct
//! origin, shared by the signals that use it.

pub mod config;
pub mod encode;
pub mod grpc;
pub mod ids;
pub mod logs;
pub mod metrics;
pub mod resource;
pub mod traces;

use super::transport::url::{redact_url, Endpoint};
use super::transport::{self, Client};
use super::{judge, Attempt, Deliver};
use crate::config::Config;
use crate::encode::ndjson;
use crate::model::Item;
use crate::queue::Entry;
use bytes::Bytes;
use config::OtlpConfig;
use encode::{Protocol, Signal};
use http::HeaderMap;
use metrics::MetricsState;
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use resource::Resource;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

struct Target {
    signal: Signal,
    /// The signal's own protocol, compression and timeout (`…_<SIGNAL>_…` settings).
    protocol: Protocol,
    gzip: bool,
    timeout: Duration,
    endpoint: Endpoint,
    headers: HeaderMap,
    client: usize,
    what: String,
    /// The gRPC connection, when the signal's protocol is `grpc`.
    grpc: Option<grpc::GrpcClient>,
}

/// The `otlp` sink.
pub struct OtlpSink {
    /// An attempt's bound: one request of each signal, each within its own timeout.
    timeout: Duration,
    /// The resource from the configuration; `resource` is it completed with the
    /// environment's identity as far as known (`identified` tells how far).
    base: Resource,
    resource: Resource,
    instance: Arc<OnceLock<String>>,
    identified: (bool, bool),
    targets: Vec<Target>,
    clients: Vec<Client>,
    /// What metric windows and totals were accepted so far.
    metrics: Box<MetricsState>,
}

fn bit(signal: Signal) -> u8 {
    match signal {
        Signal::Logs => 1,
        Signal::Metrics => 2,
        Signal::Traces => 4,
    }
}

/// The signals a record produces.
fn produces(item: &Item, signal: Signal) -> bool {
    matches!(
        (item, signal),
        (Item::Log(_), Signal::Logs)
            | (Item::Invocation(_), Signal::Metrics | Signal::Traces)
            | (Item::Health(_), Signal::Metrics)
    ) || match (item, signal) {
        (Item::Otlp(r), Signal::Logs) => !r.resource_logs.is_empty(),
        (Item::Otlp(r), Signal::Metrics) => !r.resource_metrics.is_empty(),
        (Item::Otlp(r), Signal::Traces) => !r.resource_spans.is_empty(),
        _ => false,
    }
}

impl OtlpSink {
    /// A sink exporting to the endpoints of `cfg` under `resource`; `instance` fills
    /// `faas.instance` once known.
    pub fn new(cfg: &OtlpConfig, resource: Resource, instance: Arc<OnceLock<String>>) -> Result<OtlpSink, String> {
        let mut targets: Vec<Target> = Vec::new();
        let mut clients: Vec<Client> = Vec::new();
        for signal in Signal::ALL {
            let c = cfg.signal(signal);
            let endpoint = Endpoint::parse(&c.endpoint)
                .map_err(|e| format!("the OTLP {} endpoint {:?} {e}", signal.as_str(), redact_url(&c.endpoint)))?;
            let shared =
                targets.iter().find(|t| t.endpoint.same_origin(&endpoint) && cfg.signal(t.signal).tls == c.tls);
            let client = match shared {
                Some(t) => t.client,
                None => {
                    clients.push(Client::new(&endpoint).with_tls(c.tls.clone()));
                    clients.len() - 1
                }
            };
            let grpc = match c.protocol {
                Protocol::Grpc => {
                    Some(grpc::GrpcClient::new(&endpoint).map(|g| g.with_tls(c.tls.clone())).map_err(|e| {
                        format!("the OTLP {} endpoint {:?} {e}", signal.as_str(), redact_url(&c.endpoint))
                    })?)
                }
                _ => None,
            };
            targets.push(Target {
                signal,
                protocol: c.protocol,
                gzip: c.gzip,
                timeout: c.timeout,
                what: format!("POST {}", redact_url(&c.endpoint)),
                endpoint,
                headers: transport::header_map(&c.headers),
                client,
                grpc,
            });
        }
        Ok(OtlpSink {
            timeout: targets.iter().map(|t| t.timeout).sum(),
            base: resource.clone(),
            resource,
            instance,
            identified: (false, false),
            targets,
            clients,
            metrics: Box::new(MetricsState::new(cfg.temporality)),
        })
    }

    /// Completes the resource once `platform.initStart` or the registration are known
    /// (both come after the sink is built); recomputed from the configured one, so the
    /// more precise instance id wins whenever it arrives.
    fn identify(&mut self) {
        let registration = tandem_sdk::Extension::registration();
        let now = (self.instance.get().is_some(), registration.is_some());
        if now == self.identified {
            return;
        }
        self.identified = now;
        let mut r = self.base.clone();
        r.identify(&resource::Identity {
            instance_id: self.instance.get().map(String::as_str),
            extension_id: registration.map(|(id, _)| id),
            account_id: registration.and_then(|(_, info)| info.account_id.as_deref()),
        });
        self.resource = r;
    }

    /// An attempt's bound: the signals' request timeouts (`OTEL_EXPORTER_OTLP_TIMEOUT`) added up.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// The body of `signal` for the picked records, and the metrics state to keep once
    /// it is accepted; `None` when there is nothing to send (never an empty export).
    /// What the receiver took in goes in the same request, its resources and scopes
    /// unchanged beside tandem's own.
    fn body(&self, signal: Signal, batch: &[Entry], pick: &[usize]) -> Option<(Vec<u8>, Option<MetricsState>)> {
        let items = || pick.iter().map(|&i| &*batch[i].item);
        let invocations = || {
            items().filter_map(|i| match i {
                Item::Invocation(inv) => Some(&**inv),
                _ => None,
            })
        };
        let received = || {
            items().filter_map(|i| match i {
                Item::Otlp(r) => Some(&**r),
                _ => None,
            })
        };
        let protocol = self.targets.iter().find(|t| t.signal == signal).map_or(Protocol::default(), |t| t.protocol);
        let pb = protocol != Protocol::HttpJson;
        match signal {
            Signal::Logs => {
                let logs = || {
                    items().filter_map(|i| match i {
                        Item::Log(l) => Some(l),
                        _ => None,
                    })
                };
                let theirs = received().flat_map(|r| &r.resource_logs);
                let body = if pb {
                    // The hot path: written straight from the records.
                    let mut body =
                        if logs().next().is_some() { logs::encode_logs(&self.resource, logs()) } else { Vec::new() };
                    encode::append_resources(&mut body, theirs);
                    body
                } else {
                    let mut req = if logs().next().is_some() {
                        logs::logs_request(&self.resource, logs())
                    } else {
                        ExportLogsServiceRequest::default()
                    };
                    req.resource_logs.extend(theirs.cloned());
                    encode::encode_json(&req)
                };
                Some((body, None))
            }
            Signal::Metrics => {
                let health: Vec<_> = items()
                    .filter_map(|i| match i {
                        Item::Health(h) => Some(&**h),
                        _ => None,
                    })
                    .collect();
                let (own, next) = match self.metrics.export(&self.resource, invocations(), &health) {
                    Some((req, next)) => (Some(req), Some(next)),
                    None => (None, None),
                };
                let body = self
                    .merged(protocol, own, received().flat_map(|r| &r.resource_metrics), |m| &mut m.resource_metrics)?;
                Some((body, next))
            }
            Signal::Traces => {
                let req = traces::traces_request(&self.resource, invocations());
                let any = req.resource_spans.iter().any(|r| r.scope_spans.iter().any(|s| !s.spans.is_empty()));
                let own = any.then_some(req);
                let body =
                    self.merged(protocol, own, received().flat_map(|r| &r.resource_spans), |m| &mut m.resource_spans)?;
                Some((body, None))
            }
        }
    }

    /// Records one signal's outcome in the picked entries: accepted (and the metrics
    /// state kept), rejected for good (told once, counted), or to retry (the first
    /// retry reason is the attempt's).
    fn settle(
        &mut self,
        outcome: Attempt,
        signal: Signal,
        pick: &[usize],
        batch: &mut [Entry],
        metrics_after: Option<MetricsState>,
        retry: &mut Option<Attempt>,
    ) {
        let b = bit(signal);
        match outcome {
            Attempt::Ok => {
                pick.iter().for_each(|&i| batch[i].progress |= b);
                if let Some(next) = metrics_after {
                    *self.metrics = next;
                }
            }
            Attempt::Permanent(reason) => {
                crate::diag::once(
                    crate::diag::LogLevel::Warn,
                    &format!("otlp:{}", signal.as_str()),
                    format_args!(
                        "otlp sink: {reason}; the {} are dropped and counted (permanent_error), not retried",
                        signal.as_str()
                    ),
                );
                for &i in pick {
                    batch[i].progress |= b;
                    batch[i].rejected = true;
                }
            }
            r @ Attempt::Retry { .. } => {
                retry.get_or_insert(r);
            }
        }
    }

    /// Tandem's own request (if any) with the received resources appended, in the
    /// sink's protocol; `None` when both are empty.
    fn merged<'a, M, R>(
        &self,
        protocol: Protocol,
        own: Option<M>,
        theirs: impl Iterator<Item = &'a R> + Clone,
        list: impl FnOnce(&mut M) -> &mut Vec<R>,
    ) -> Option<Vec<u8>>
    where
        M: prost::Message + serde::Serialize + Default,
        R: prost::Message + Clone + 'a,
    {
        if own.is_none() && theirs.clone().next().is_none() {
            return None;
        }
        Some(if protocol == Protocol::HttpJson {
            let mut req = own.unwrap_or_default();
            list(&mut req).extend(theirs.cloned());
            encode::encode_json(&req)
        } else {
            let mut body = own.map(|m| m.encode_to_vec()).unwrap_or_default();
            encode::append_resources(&mut body, theirs);
            body
        })
    }
}

impl Deliver for OtlpSink {
    fn build(config: &Config, instance: &Arc<OnceLock<String>>) -> Result<Self, String> {
        OtlpSink::new(&config.otlp, config.resource.clone(), instance.clone())
    }

    fn attempt_timeout(&self) -> Duration {
        self.timeout
    }

    async fn attempt(&mut self, batch: &mut [Entry]) -> Attempt {
        self.identify();
        let mut retry: Option<Attempt> = None;
        for t in 0..self.targets.len() {
            let signal = self.targets[t].signal;
            let b = bit(signal);
            let pick: Vec<usize> =
                (0..batch.len()).filter(|&i| batch[i].progress & b == 0 && produces(&batch[i].item, signal)).collect();
            if pick.is_empty() {
                continue;
            }
            let Some((raw, metrics_after)) = self.body(signal, batch, &pick) else {
                // Nothing of this signal to say (e.g. an invocation without spans).
                pick.iter().for_each(|&i| batch[i].progress |= b);
                continue;
            };
            let (gzip, protocol, timeout) = (self.targets[t].gzip, self.targets[t].protocol, self.targets[t].timeout);
            let body = if gzip {
                match ndjson::gzip(&raw) {
                    Ok(z) => Bytes::from(z),
                    Err(e) => return Attempt::retry(format!("cannot gzip the body: {e}")),
                }
            } else {
                Bytes::from(raw)
            };
            let target = &mut self.targets[t];
            if let Some(client) = target.grpc.as_mut() {
                let outcome = tokio::time::timeout(timeout, client.export(signal, &target.headers, &body, gzip)).await;
                let outcome = outcome.unwrap_or_else(|_| {
                    Attempt::retry(format!("gRPC {}: no answer within {} ms", signal.as_str(), timeout.as_millis()))
                });
                self.settle(outcome, signal, &pick, batch, metrics_after, &mut retry);
                continue;
            }
            let target = &self.targets[t];
            let outcome = match transport::post(&target.endpoint, protocol.content_type(), gzip, &target.headers, body)
            {
                Err(e) => Attempt::Permanent(e),
                Ok(req) => match tokio::time::timeout(timeout, self.clients[target.client].send(req)).await {
                    Ok(Ok(answer)) => judge(&target.what, &answer),
                    Ok(Err(e)) => Attempt::retry(e),
                    Err(_) => Attempt::retry(format!("{}: no answer within {} ms", target.what, timeout.as_millis())),
                },
            };
            self.settle(outcome, signal, &pick, batch, metrics_after, &mut retry);
        }
        retry.unwrap_or(Attempt::Ok)
    }
}

#[cfg(test)]
mod tests;
