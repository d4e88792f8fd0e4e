//! pipeline: the intake. Turns each telemetry event into pipeline records, once.
//!
//! Owns the per-event routing: platform events feed the invocation
//! [`Correlator`] (its completed invocations become [`Item::Invocation`]s;
//! `platform.initStart`'s instance id names the OTLP resource's `faas.instance`;
//! `platform.logsDropped` is counted), and function and extension lines become
//! [`Item::Log`]s (parsed by [`logs::into_log_record`], stamped with their trace by
//! [`Correlator::annotate_log`], filtered and masked by the [`Rules`]). It keeps the
//! extension's own output out: its diagnostic lines (the SDK prefix), the EMF documents
//! the stdout sink printed and the last-resort lines of a shutdown never come back in.
//!
//! Sans-I/O and single-pass: one parse per event, no per-record logging, no clock (the
//! caller passes the time used for events whose time does not parse). Regexes are
//! compiled at the first log line, not at start.

use crate::invocation::{Correlator, CorrelatorOptions};
use crate::logs;
use crate::model::{Item, Source};
use crate::rules::{Rule, Rules, DEFAULT_MAX_LINE_BYTES};
use crate::sink::stdout::encode::is_emf_document;
use tandem_wire::telemetry::{LogRecord as WireLog, Record};
use tandem_wire::Event;

/// The key of the JSON lines a shutdown writes to stdout for records it could not
/// deliver (`{"tandem_undelivered":...}`): recognised and dropped if they come back.
pub const UNDELIVERED_KEY: &str = "tandem_undelivered";

/// What one batch produced besides its items.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Intake {
    /// Records accepted (logs before the rules, and invocations).
    pub records_in: u64,
    /// Log records an exclude/include rule dropped.
    pub dropped_by_rule: u64,
    /// Records Lambda reported dropped (`platform.logsDropped`).
    pub lambda_dropped: u64,
    /// The extension's own lines, kept out.
    pub own_lines: u64,
    /// `platform.initStart`'s instance id, when this batch carried one.
    pub instance_id: Option<String>,
    /// One line per problem found while compiling the rules (first log line only).
    pub problems: Vec<String>,
    /// `platform.runtimeDone` events of this batch: (request id, time in ms since the epoch).
    pub runtime_done: Vec<(String, u64)>,
}

/// The intake state. See the module documentation.
#[derive(Debug)]
pub struct Pipeline {
    correlator: Correlator,
    rule_list: Vec<Rule>,
    /// How much of a line the rules look at (`TANDEM_RULES_MAX_LINE_BYTES`).
    max_line_bytes: usize,
    rules: Option<Rules>,
}

impl Pipeline {
    /// An intake correlating with `opts` and applying `rules`.
    pub fn new(opts: CorrelatorOptions, rules: Vec<Rule>) -> Pipeline {
        Pipeline {
            correlator: Correlator::new(opts),
            rule_list: rules,
            max_line_bytes: DEFAULT_MAX_LINE_BYTES,
            rules: None,
        }
    }

    /// The rules look at the first `bytes` of a line (`TANDEM_RULES_MAX_LINE_BYTES`).
    pub fn with_max_line_bytes(mut self, bytes: usize) -> Pipeline {
        self.max_line_bytes = bytes;
        self
    }

    /// Ingests a batch in order, appending the records it produced to `out`.
    /// `own_prefix` starts the extension's own diagnostic lines; `now_ms` stands in for
    /// an event time that does not parse.
    pub fn ingest(&mut self, events: Vec<Event>, own_prefix: &str, now_ms: u64, out: &mut Vec<Item>) -> Intake {
        let mut intake = Intake::default();
        for event in events {
            let time = event.epoch_millis().unwrap_or(now_ms);
            match &event.record {
                Record::ExtensionLog(_) => {}
                Record::RuntimeDone(r) => {
                    intake.runtime_done.push((r.request_id.clone(), time));
                    self.invocations(time, &event.record, &mut intake, out);
                }
                _ => self.invocations(time, &event.record, &mut intake, out),
            }
            match event.record {
                Record::Function(line) => self.log(time, Source::Function, line, &mut intake, out),
                Record::ExtensionLog(line) => {
                    if is_own_output(&line, own_prefix) {
                        intake.own_lines += 1;
                    } else {
                        self.log(time, Source::Extension, line, &mut intake, out);
                    }
                }
                Record::InitStart(s) => {
                    if let Some(id) = s.instance_id.filter(|i| !i.is_empty()) {
                        intake.instance_id = Some(id);
                    }
                }
                Record::LogsDropped(d) => intake.lambda_dropped += d.dropped_records,
                _ => {}
            }
        }
        intake
    }

    /// The events the intake acknowledged that are in no record yet (the invocations
    /// waiting for their report), see [`crate::invocation::Correlator::held`].
    pub fn held(&self) -> impl Iterator<Item = (u64, &Record)> {
        self.correlator.held()
    }

    /// Rebuilds what a previous process held; returns records it completes (none
    /// unless the held events were inconsistent).
    pub fn restore(&mut self, events: &[(u64, Record)]) -> Vec<Item> {
        self.correlator.restore(events).into_iter().map(Item::from).collect()
    }

    /// Ends the intake (at SHUTDOWN): invocations still waiting for their report, as
    /// partial records.
    pub fn finish(&mut self) -> Vec<Item> {
        self.correlator.drain().into_iter().map(Item::from).collect()
    }

    fn invocations(&mut self, time: u64, record: &Record, intake: &mut Intake, out: &mut Vec<Item>) {
        for inv in self.correlator.observe_at(time, record) {
            intake.records_in += 1;
            out.push(Item::from(inv));
        }
    }

    /// Compiles the rules now (once) and returns one line per rule that is skipped. The
    /// extension calls it at init when rules are configured, so that a bad pattern is
    /// reported at start; without rules nothing is compiled, ever.
    pub fn compile_rules(&mut self) -> Vec<String> {
        if self.rules.is_some() {
            return Vec::new();
        }
        let (rules, problems) = Rules::compile_bounded(&self.rule_list, self.max_line_bytes);
        self.rules = Some(rules);
        problems.into_iter().map(|p| format!("TANDEM_RULES: {p}")).collect()
    }

    fn log(&mut self, time: u64, source: Source, line: WireLog, intake: &mut Intake, out: &mut Vec<Item>) {
        let mut rec = logs::into_log_record(time, source, line, self.correlator.in_flight());
        self.correlator.annotate_log(&mut rec);
        intake.records_in += 1;
        if self.rules.is_none() {
            let problems = self.compile_rules();
            intake.problems.extend(problems);
        }
        let Some(rules) = &self.rules else { return };
        if rules.apply(&mut rec) {
            out.push(Item::Log(rec));
        } else {
            intake.dropped_by_rule += 1;
        }
    }
}

/// Whether an extension line is this extension's own output.
fn is_own_output(line: &WireLog, own_prefix: &str) -> bool {
    let WireLog::Text(text) = line else {
        return false;
    };
    let t = text.trim_start();
    (!own_prefix.is_empty() && t.starts_with(own_prefix))
        || is_emf_document(t)
        || t.strip_prefix("{\"").is_some_and(|rest| rest.starts_with(UNDELIVERED_KEY))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::RuleKind;
    use serde_json::json;

    const T0: u64 = 1_700_000_000_000;

    fn ev(offset_ms: u64, kind: &str, record: serde_json::Value) -> Event {
        let time = tandem_wire::time::format_epoch_millis(T0 + offset_ms);
        serde_json::from_value(json!({"time": time, "type": kind, "record": record})).unwrap()
    }

    fn messages(items: &[Item]) -> Vec<String> {
        items
            .iter()
            .filter_map(|i| match i {
                Item::Log(l) => Some(l.message.clone()),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn logs_and_invocations_come_out_in_order_with_their_request() {
        let mut p = Pipeline::new(CorrelatorOptions::default(), Vec::new());
        let mut out = Vec::new();
        let intake = p.ingest(
            vec![
                ev(0, "platform.initStart", json!({"initializationType":"on-demand","phase":"init","instanceId":"i-1"})),
                ev(1, "platform.start", json!({"requestId":"r-1"})),
                ev(2, "function", json!("hello")),
                ev(3, "platform.runtimeDone", json!({"requestId":"r-1","status":"success","metrics":{"durationMs":2.0}})),
                ev(9, "platform.report", json!({"requestId":"r-1","status":"success","metrics":{"durationMs":3.0,"billedDurationMs":3,"memorySizeMB":128,"maxMemoryUsedMB":20}})),
            ],
            "[tandem] ",
            T0,
            &mut out,
        );
        assert_eq!(intake.records_in, 2);
        assert_eq!(intake.instance_id.as_deref(), Some("i-1"));
        assert_eq!(out.len(), 2);
        match &out[0] {
            Item::Log(l) => {
                assert_eq!(l.message, "hello");
                assert_eq!(l.request_id.as_deref(), Some("r-1"));
                assert_eq!(l.time_ms, T0 + 2);
            }
            other => panic!("{other:?}"),
        }
        match &out[1] {
            Item::Invocation(i) => {
                assert_eq!(i.request_id, "r-1");
                assert_eq!(i.runtime_duration_ms, Some(2.0));
                assert!(i.complete);
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(intake.runtime_done, vec![("r-1".to_owned(), T0 + 3)]);
    }

    #[test]
    fn own_output_never_feeds_back() {
        let mut p = Pipeline::new(CorrelatorOptions::default(), Vec::new());
        let mut out = Vec::new();
        let intake = p.ingest(
            vec![
                ev(0, "extension", json!("[tandem] config problem")),
                ev(1, "extension", json!("{\"_aws\":{\"Timestamp\":1},\"Duration\":1}")),
                ev(2, "extension", json!("{\"tandem_undelivered\":{\"sink\":\"http\"}}")),
                ev(3, "extension", json!("[other-ext] hello")),
                ev(4, "function", json!("{\"_aws\":{}} a function may print EMF")),
            ],
            "[tandem] ",
            T0,
            &mut out,
        );
        assert_eq!(intake.own_lines, 3);
        assert_eq!(messages(&out), ["[other-ext] hello", "{\"_aws\":{}} a function may print EMF"]);
    }

    #[test]
    fn the_rules_look_at_the_configured_prefix_of_a_line() {
        let mask =
            || vec![Rule { kind: RuleKind::Mask, name: "digits".into(), pattern: r"\d+".into(), replacement: None }];
        let line = format!("{} 1234", "x".repeat(2000));
        let run = |p: &mut Pipeline| {
            let mut out = Vec::new();
            p.ingest(vec![ev(0, "function", json!(line.clone()))], "[tandem] ", T0, &mut out);
            messages(&out).concat()
        };
        // The default bound covers the whole line: the digits are masked.
        let whole = run(&mut Pipeline::new(CorrelatorOptions::default(), mask()));
        assert!(!whole.contains("1234") && whole.starts_with("xxx"), "{whole}");
        // A 1 KiB bound stops before them: what was not scanned is removed, never shipped.
        let bounded = run(&mut Pipeline::new(CorrelatorOptions::default(), mask()).with_max_line_bytes(1024));
        assert!(!bounded.contains("1234"), "{bounded}");
        assert!(bounded.len() < whole.len(), "the unscanned rest is cut: {} vs {}", bounded.len(), whole.len());
    }

    #[test]
    fn rules_apply_and_bad_ones_are_reported_once() {
        let rules = vec![
            Rule { kind: RuleKind::Exclude, name: "health".into(), pattern: "GET /health".into(), replacement: None },
            Rule { kind: RuleKind::Mask, name: "cards".into(), pattern: r"\d{16}".into(), replacement: None },
            Rule { kind: RuleKind::Exclude, name: "broken".into(), pattern: "(".into(), replacement: None },
        ];
        let mut p = Pipeline::new(CorrelatorOptions::default(), rules);
        let mut out = Vec::new();
        let first = p.ingest(
            vec![ev(0, "function", json!("GET /health 200")), ev(1, "function", json!("card 4111111111111111 ok"))],
            "[tandem] ",
            T0,
            &mut out,
        );
        assert_eq!(first.dropped_by_rule, 1);
        assert_eq!(first.records_in, 2);
        assert_eq!(first.problems.len(), 1);
        assert!(first.problems[0].starts_with("TANDEM_RULES: rule \"broken\""), "{}", first.problems[0]);
        assert_eq!(messages(&out), ["card **** ok"]);
        let again = p.ingest(vec![ev(2, "function", json!("x"))], "[tandem] ", T0, &mut out);
        assert!(again.problems.is_empty());
    }

    #[test]
    fn lambda_drops_are_counted_and_shutdown_returns_partials() {
        let mut p = Pipeline::new(CorrelatorOptions::default(), Vec::new());
        let mut out = Vec::new();
        let intake = p.ingest(
            vec![
                ev(0, "platform.logsDropped", json!({"droppedBytes":100,"droppedRecords":7,"reason":"slow"})),
                ev(1, "platform.start", json!({"requestId":"r-9"})),
                ev(2, "function", json!("last words")),
            ],
            "[tandem] ",
            T0,
            &mut out,
        );
        assert_eq!(intake.lambda_dropped, 7);
        let partial = p.finish();
        assert_eq!(partial.len(), 1);
        match &partial[0] {
            Item::Invocation(i) => assert!(!i.complete && i.request_id == "r-9"),
            other => panic!("{other:?}"),
        }
    }
}
