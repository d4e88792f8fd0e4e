//! Processing rules for log records: `exclude`, `include` and `mask`, applied in the
//! configured order.
//!
//! Owns the rule configuration form ([`Rule`]), its compilation (a bad pattern is
//! reported and skipped, never fatal) and its application. Never does I/O; regexes are
//! built once by [`Rules::compile`] (with `regex-lite`), never per record, and an empty
//! rule list costs one branch per record.
//!
//! Semantics, per rule in order:
//! - `exclude`: drop the record when the pattern matches the message;
//! - `include`: drop the record when the pattern does NOT match the message;
//! - `mask`: replace every match in the message, and in every string value of the
//!   attributes (so that a secret in a JSON field is masked too), with `replacement`
//!   (default `****`; `$1`/`${name}` refer to capture groups, `$$` is a literal `$`).

use crate::model::LogRecord;
use regex_lite::Regex;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::borrow::Cow;

/// Replacement used by a `mask` rule that names none.
pub const DEFAULT_MASK: &str = "****";

/// What a rule does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RuleKind {
    /// Drop the record when the pattern matches its message.
    Exclude,
    /// Drop the record when the pattern does not match its message.
    Include,
    /// Replace every match (message and string attributes) with the replacement.
    Mask,
}

impl RuleKind {
    /// `exclude`, `include` or `mask`.
    pub const fn as_str(self) -> &'static str {
        match self {
            RuleKind::Exclude => "exclude",
            RuleKind::Include => "include",
            RuleKind::Mask => "mask",
        }
    }
}

/// One rule as configured, e.g. `{"kind":"mask","name":"cards","pattern":"\\b\\d{16}\\b"}`.
/// `type` is accepted for `kind`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Rule {
    #[serde(alias = "type")]
    /// What it does.
    pub kind: RuleKind,
    /// For messages; defaults to `#<position>` (1-based) when empty.
    #[serde(default)]
    pub name: String,
    /// The regex (`regex-lite` syntax), compiled by [`Rules::compile`].
    pub pattern: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    /// For `mask`: what replaces a match (default [`DEFAULT_MASK`]).
    pub replacement: Option<String>,
}

impl Rule {
    /// Parses a JSON list of rules (the `TANDEM_RULES` form). Each element is parsed on
    /// its own: a malformed one is reported (one line) and skipped, the others are kept.
    /// A value that is not a JSON list at all is one problem and no rules.
    pub fn parse_list(json: &str) -> (Vec<Rule>, Vec<String>) {
        match serde_json::from_str::<Vec<Value>>(json) {
            Ok(items) => Rule::from_values(items),
            Err(e) => (Vec::new(), vec![format!("not a JSON list of rules: {e}; no rules applied")]),
        }
    }

    /// Converts already-parsed values (from JSON or the TOML file), one by one.
    pub fn from_values(items: Vec<Value>) -> (Vec<Rule>, Vec<String>) {
        let mut rules = Vec::with_capacity(items.len());
        let mut problems = Vec::new();
        for (i, item) in items.into_iter().enumerate() {
            let label = item
                .get("name")
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
                .map_or_else(|| format!("#{}", i + 1), str::to_owned);
            match serde_json::from_value::<Rule>(item) {
                Ok(mut r) => {
                    if r.name.is_empty() {
                        r.name = label;
                    }
                    rules.push(r);
                }
                Err(e) => problems.push(format!(
                    "rule \"{label}\": {e} (expected {{\"kind\":\"exclude|include|mask\",\"name\":..,\"pattern\":..,\"replacement\":..}}); skipped"
                )),
            }
        }
        (rules, problems)
    }
}

#[derive(Debug, Clone)]
enum Compiled {
    Exclude(Regex),
    Include(Regex),
    Mask(Regex, String),
}

/// Compiled rules, ready to apply.
#[derive(Debug, Clone, Default)]
pub struct Rules {
    rules: Vec<Compiled>,
}

impl Rules {
    /// No rules: [`Rules::apply`] keeps everything and changes nothing.
    pub fn none() -> Rules {
        Rules::default()
    }

    /// Compiles `list` in order. A rule whose pattern does not compile is reported as one
    /// line (`rule "<name>": invalid pattern "<pattern>": <why>; skipped`) and left out;
    /// the others still apply.
    pub fn compile(list: &[Rule]) -> (Rules, Vec<String>) {
        let mut rules = Vec::with_capacity(list.len());
        let mut problems = Vec::new();
        for (i, rule) in list.iter().enumerate() {
            let name: Cow<'_, str> =
                if rule.name.is_empty() { Cow::Owned(format!("#{}", i + 1)) } else { Cow::Borrowed(&rule.name) };
            let re = match Regex::new(&rule.pattern) {
                Ok(re) => re,
                Err(e) => {
                    problems.push(format!(
                        "rule \"{name}\": invalid pattern {:?}: {}; skipped",
                        rule.pattern,
                        one_line(&e.to_string())
                    ));
                    continue;
                }
            };
            rules.push(match rule.kind {
                RuleKind::Exclude | RuleKind::Include if rule.replacement.is_some() => {
                    problems.push(format!("rule \"{name}\": a replacement only applies to mask rules; ignored"));
                    if rule.kind == RuleKind::Exclude {
                        Compiled::Exclude(re)
                    } else {
                        Compiled::Include(re)
                    }
                }
                RuleKind::Exclude => Compiled::Exclude(re),
                RuleKind::Include => Compiled::Include(re),
                RuleKind::Mask => {
                    Compiled::Mask(re, rule.replacement.clone().unwrap_or_else(|| DEFAULT_MASK.to_owned()))
                }
            });
        }
        (Rules { rules }, problems)
    }

    /// Whether there are no rules.
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// How many rules compiled.
    pub fn len(&self) -> usize {
        self.rules.len()
    }

    /// Applies the rules in order. Returns whether to keep the record; masks edit it in
    /// place (allocating only when something matched).
    #[inline]
    pub fn apply(&self, rec: &mut LogRecord) -> bool {
        if self.rules.is_empty() {
            return true;
        }
        self.apply_all(rec)
    }

    fn apply_all(&self, rec: &mut LogRecord) -> bool {
        for rule in &self.rules {
            match rule {
                Compiled::Exclude(re) => {
                    if re.is_match(&rec.message) {
                        return false;
                    }
                }
                Compiled::Include(re) => {
                    if !re.is_match(&rec.message) {
                        return false;
                    }
                }
                Compiled::Mask(re, with) => {
                    mask_string(re, with, &mut rec.message);
                    for v in rec.attributes.values_mut() {
                        mask_value(re, with, v);
                    }
                }
            }
        }
        true
    }
}

fn mask_string(re: &Regex, with: &str, s: &mut String) {
    if let Cow::Owned(masked) = re.replace_all(s, with) {
        *s = masked;
    }
}

fn mask_value(re: &Regex, with: &str, v: &mut Value) {
    match v {
        Value::String(s) => mask_string(re, with, s),
        Value::Array(a) => a.iter_mut().for_each(|v| mask_value(re, with, v)),
        Value::Object(m) => m.values_mut().for_each(|v| mask_value(re, with, v)),
        _ => {}
    }
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Level, Source};
    use serde_json::json;

    fn rec(msg: &str) -> LogRecord {
        LogRecord {
            time_ms: 0,
            observed_ms: 0,
            source: Source::Function,
            level: Level::Info,
            request_id: None,
            message: msg.into(),
            attributes: serde_json::Map::new(),
            trace_id: None,
        }
    }

    fn rule(kind: RuleKind, name: &str, pattern: &str, replacement: Option<&str>) -> Rule {
        Rule { kind, name: name.into(), pattern: pattern.into(), replacement: replacement.map(str::to_owned) }
    }

    #[test]
    fn empty_rules_keep_everything_unchanged() {
        let rules = Rules::none();
        let mut r = rec("anything");
        assert!(rules.apply(&mut r));
        assert_eq!(r, rec("anything"));
        assert!(rules.is_empty());
    }

    #[test]
    fn exclude_include_and_mask_in_order() {
        let (rules, problems) = Rules::compile(&[
            rule(RuleKind::Exclude, "health", r"^GET /health", None),
            rule(RuleKind::Include, "only-app", r"app:", None),
            rule(RuleKind::Mask, "cards", r"\b\d{4}-?\d{4}-?\d{4}-?\d{4}\b", None),
            rule(RuleKind::Mask, "keys", r"key=(\w{3})\w+", Some("key=$1…")),
        ]);
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(rules.len(), 4);

        let mut r = rec("GET /health 200 app:");
        assert!(!rules.apply(&mut r), "excluded");
        let mut r = rec("unrelated line");
        assert!(!rules.apply(&mut r), "not included");
        let mut r = rec("app: paid with 4111-1111-1111-1111 and 4111111111111111 key=abcdef123");
        assert!(rules.apply(&mut r));
        assert_eq!(r.message, "app: paid with **** and **** key=abc…");
    }

    #[test]
    fn mask_reaches_attribute_strings() {
        let (rules, _) = Rules::compile(&[rule(RuleKind::Mask, "", r"secret-\w+", Some("[redacted]"))]);
        let mut r = rec("token secret-abc");
        r.attributes =
            json!({"a": "secret-x", "n": 5, "nested": {"list": ["ok", "secret-y"]}}).as_object().cloned().unwrap();
        assert!(rules.apply(&mut r));
        assert_eq!(r.message, "token [redacted]");
        assert_eq!(
            Value::Object(r.attributes),
            json!({"a": "[redacted]", "n": 5, "nested": {"list": ["ok", "[redacted]"]}})
        );
    }

    #[test]
    fn bad_pattern_is_one_line_and_skipped() {
        let (rules, problems) = Rules::compile(&[
            rule(RuleKind::Exclude, "broken", r"(unclosed", None),
            rule(RuleKind::Exclude, "", r"[z-a]", None),
            rule(RuleKind::Exclude, "noise", r"noise", None),
        ]);
        assert_eq!(rules.len(), 1);
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(problems[0].starts_with("rule \"broken\": invalid pattern \"(unclosed\": "), "{}", problems[0]);
        assert!(problems[0].ends_with("; skipped"));
        assert!(problems[1].starts_with("rule \"#2\": invalid pattern"), "{}", problems[1]);
        assert!(problems.iter().all(|p| !p.contains('\n')));
        let mut r = rec("noise");
        assert!(!rules.apply(&mut r), "the valid rule still applies");
        let mut r = rec("(unclosed");
        assert!(rules.apply(&mut r));
    }

    #[test]
    fn replacement_on_a_filter_rule_is_reported() {
        let (rules, problems) = Rules::compile(&[rule(RuleKind::Include, "inc", "x", Some("y"))]);
        assert_eq!(rules.len(), 1);
        assert_eq!(problems, vec!["rule \"inc\": a replacement only applies to mask rules; ignored".to_string()]);
    }

    #[test]
    fn parse_list_reports_each_bad_rule() {
        let (rules, problems) = Rule::parse_list(
            r#"[{"kind":"mask","name":"a","pattern":"\\d+"},
                {"type":"exclude","pattern":"x"},
                {"kind":"redact","name":"bad","pattern":"y"},
                {"kind":"include"}]"#,
        );
        assert_eq!(rules.len(), 2);
        assert_eq!(rules[0], rule(RuleKind::Mask, "a", r"\d+", None));
        assert_eq!(rules[1], rule(RuleKind::Exclude, "#2", "x", None));
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(problems[0].starts_with("rule \"bad\": unknown variant `redact`"), "{}", problems[0]);
        assert!(problems[1].starts_with("rule \"#4\": missing field `pattern`"), "{}", problems[1]);
        let (rules, problems) = Rule::parse_list("{}");
        assert!(rules.is_empty());
        assert!(problems[0].starts_with("not a JSON list of rules"));
    }
}
