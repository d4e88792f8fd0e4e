//! config::describe: what `tandem check-config` prints: every setting in use, one
//! line per concern, each sink's line written by its own config. Header values, URL
//! credentials and query strings are redacted. Pure.

use super::load::human_bytes;
use super::{Config, SinkKind};
use crate::sink::stdout::config as stdout;
use std::fmt::Write as _;
use std::time::Duration;

impl Config {
    /// A human-readable summary for `tandem check-config`. Header values, URL
    /// credentials and query strings are redacted.
    pub fn describe(&self) -> String {
        let mut s = String::new();
        let ms = |d: Duration| d.as_millis();
        // Writing to a String cannot fail.
        let _ = writeln!(s, "tandem configuration");
        let _ = writeln!(
            s,
            "  config file: {}",
            self.config_file.as_ref().map_or("none".into(), |p| p.display().to_string())
        );
        let _ = writeln!(s, "  sinks: {}", self.sinks.iter().map(|k| k.as_str()).collect::<Vec<_>>().join(", "));
        for sink in &self.sinks {
            match sink {
                SinkKind::Stdout => stdout::describe(&self.emf, &mut s),
                SinkKind::File => self.file.describe(&mut s),
                SinkKind::Http => self.http.describe(&mut s),
                SinkKind::Otlp => self.otlp.describe(&mut s),
            }
        }
        self.receiver.describe(&mut s);
        let _ = writeln!(s, "  flush: {}, budget {} ms", self.flush, ms(self.flush_budget));
        if self.flush == crate::flush::Strategy::Adaptive {
            let _ = writeln!(s, "  max delay: {} ms", ms(self.max_delay));
        }
        let _ = writeln!(
            s,
            "  buffer: {} records / {} in memory, then spool {} up to {}",
            self.buffer.max_records,
            human_bytes(self.buffer.max_bytes),
            self.spool.dir.display(),
            if self.spool.max_bytes == 0 { "(disabled)".into() } else { human_bytes(self.spool.max_bytes) }
        );
        let _ = writeln!(
            s,
            "  batch: {} records / {} / {} ms",
            self.batch.max_records,
            human_bytes(self.batch.max_bytes),
            ms(self.batch.max_age)
        );
        let _ = writeln!(
            s,
            "  retry: {} attempts, backoff {}..{} ms",
            self.retry.max_attempts,
            ms(self.retry.base_backoff),
            ms(self.retry.max_backoff)
        );
        let _ =
            writeln!(s, "  telemetry: {}", self.log_types.iter().map(|t| t.as_str()).collect::<Vec<_>>().join(", "));
        // Only the rules that compile are active; the others are said to be skipped.
        let (active, skipped): (Vec<_>, Vec<_>) = self.rules.iter().partition(|r| r.pattern_error().is_none());
        let names = |rules: &[&crate::rules::Rule]| {
            rules.iter().map(|r| format!("{} {:?}", r.kind.as_str(), r.name)).collect::<Vec<_>>().join(", ")
        };
        let _ = writeln!(
            s,
            "  rules: {}{}{}",
            if active.is_empty() { "none".into() } else { names(&active) },
            if active.is_empty() {
                String::new()
            } else {
                format!(", on the first {} of a line", human_bytes(self.rules_max_line_bytes as u64))
            },
            if skipped.is_empty() { String::new() } else { format!(" (skipped, invalid: {})", names(&skipped)) }
        );
        let _ = writeln!(
            s,
            "  pricing: {}, {} USD/GB-s + {} USD/request{}",
            self.arch.as_str(),
            self.pricing.gb_second_usd,
            self.pricing.request_usd,
            self.memory_size_mb.map_or(String::new(), |m| format!(", memory {m} MB"))
        );
        let attrs: Vec<String> = self
            .resource
            .attributes()
            .iter()
            .map(|kv| {
                let v = kv.value.as_ref().and_then(|v| v.value.as_ref()).map_or(String::new(), |v| match v {
                    opentelemetry_proto::tonic::common::v1::any_value::Value::StringValue(s) => s.clone(),
                    opentelemetry_proto::tonic::common::v1::any_value::Value::IntValue(i) => i.to_string(),
                    other => format!("{other:?}"),
                });
                format!("{}={v}", kv.key)
            })
            .collect();
        let _ = writeln!(s, "  resource: {}", attrs.join(", "));
        let _ = writeln!(s, "  log level: {}", self.log_level.as_str());
        self.guard.describe(&mut s);
        s
    }
}
