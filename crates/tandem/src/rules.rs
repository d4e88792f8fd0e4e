//! Processing rules for log records: `exclude`, `include` and `mask`, applied in the
//! configured order.
//!
//! Owns the rule configuration form ([`Rule`]), its compilation (a bad pattern is
//! reported and skipped, never fatal) and its application. Never does I/O; regexes are
//! built once by [`Rules::compile`], never per record, and an empty rule list costs one
//! branch per record.
//!
//! Matching takes time linear in the text, whatever the pattern: the `regex` crate
//! (finite automata, no backtracking; its lazy DFA keeps a pattern such as
//! `(?:p{1,30}){1,30}q` fast where a backtracking or Pike VM engine takes seconds per
//! MiB), and it only ever sees the first [`Rules::max_line_bytes`] of a string
//! (`TANDEM_RULES_MAX_LINE_BYTES`, default [`DEFAULT_MAX_LINE_BYTES`]), so the time one
//! line can cost is bounded too. The syntax is `regex`'s, with Unicode-aware `\w`, `\d`,
//! `\s`, `\b` and `(?i)`, and without the other Unicode classes (`\p{..}`).
//!
//! Semantics, per rule in order:
//! - `exclude`: drop the record when the pattern matches the message;
//! - `include`: drop the record when the pattern does NOT match the message;
//! - `mask`: replace every match in the message, and in every string value of the
//!   attributes (so that a secret in a JSON field is masked too), with `replacement`
//!   (default `****`; `$1`/`${name}` refer to capture groups, `$$` is a literal `$`).
//!
//! Beyond the bound, `exclude`/`include` decide on the first `max_line_bytes`; when a
//! `mask` rule is configured, the unscanned rest of a string is removed (and said so in
//! the string), so that no secret passes unmasked for being far into a long line.

use crate::model::LogRecord;
use regex::Regex;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::borrow::Cow;

/// Replacement used by a `mask` rule that names none.
pub const DEFAULT_MASK: &str = "****";

/// How much of a string the rules look at when `TANDEM_RULES_MAX_LINE_BYTES` is not
/// set: CloudWatch Logs' largest event (256 KiB), so that any line CloudWatch would
/// keep whole is checked whole.
pub const DEFAULT_MAX_LINE_BYTES: usize = 256 * 1024;

/// Compiled programs above this size are refused (a pattern such as `\w{1000}{1000}`
/// would otherwise take the memory of the function).
const MAX_PROGRAM_BYTES: usize = 1 << 20;

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
    /// The regex (`regex` crate syntax), compiled by [`Rules::compile`].
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
#[derive(Debug, Clone)]
pub struct Rules {
    rules: Vec<Compiled>,
    max_line_bytes: usize,
    masks: bool,
}

impl Default for Rules {
    fn default() -> Self {
        Rules { rules: Vec::new(), max_line_bytes: DEFAULT_MAX_LINE_BYTES, masks: false }
    }
}

impl Rule {
    /// Why this rule's pattern does not compile, if it does not (the rule is then
    /// skipped by [`Rules::compile`]).
    pub fn pattern_error(&self) -> Option<String> {
        regex(&self.pattern).err()
    }
}

fn regex(pattern: &str) -> Result<Regex, String> {
    regex::RegexBuilder::new(pattern).size_limit(MAX_PROGRAM_BYTES).build().map_err(|e| one_line(&e.to_string()))
}

impl Rules {
    /// No rules: [`Rules::apply`] keeps everything and changes nothing.
    pub fn none() -> Rules {
        Rules::default()
    }

    /// Compiles `list` in order, each rule looking at the first
    /// [`DEFAULT_MAX_LINE_BYTES`] of a string. A rule whose pattern does not compile is
    /// reported as one line (`rule "<name>": invalid pattern "<pattern>": <why>;
    /// skipped`) and left out; the others still apply.
    pub fn compile(list: &[Rule]) -> (Rules, Vec<String>) {
        Rules::compile_bounded(list, DEFAULT_MAX_LINE_BYTES)
    }

    /// Like [`Rules::compile`], the rules looking at the first `max_line_bytes` of a
    /// string (`TANDEM_RULES_MAX_LINE_BYTES`; at least 1).
    pub fn compile_bounded(list: &[Rule], max_line_bytes: usize) -> (Rules, Vec<String>) {
        let mut rules = Vec::with_capacity(list.len());
        let mut problems = Vec::new();
        for (i, rule) in list.iter().enumerate() {
            let name: Cow<'_, str> =
                if rule.name.is_empty() { Cow::Owned(format!("#{}", i + 1)) } else { Cow::Borrowed(&rule.name) };
            let re = match regex(&rule.pattern) {
                Ok(re) => re,
                Err(e) => {
                    problems.push(format!("rule \"{name}\": invalid pattern {:?}: {e}; skipped", rule.pattern));
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
        let masks = rules.iter().any(|r| matches!(r, Compiled::Mask(..)));
        (Rules { rules, max_line_bytes: max_line_bytes.max(1), masks }, problems)
    }

    /// How much of a string the rules look at.
    pub fn max_line_bytes(&self) -> usize {
        self.max_line_bytes
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
        let max = self.max_line_bytes;
        if self.masks {
            // What no mask will scan is not kept (see the module comment).
            cut_unscanned(&mut rec.message, max);
            for v in rec.attributes.values_mut() {
                each_string(v, &mut |s| cut_unscanned(s, max));
            }
        }
        for rule in &self.rules {
            match rule {
                Compiled::Exclude(re) => {
                    if re.is_match(prefix(&rec.message, max)) {
                        return false;
                    }
                }
                Compiled::Include(re) => {
                    if !re.is_match(prefix(&rec.message, max)) {
                        return false;
                    }
                }
                Compiled::Mask(re, with) => {
                    mask_string(re, with, &mut rec.message);
                    for v in rec.attributes.values_mut() {
                        each_string(v, &mut |s| mask_string(re, with, s));
                    }
                }
            }
        }
        true
    }
}

/// The longest prefix of `s` of at most `max` bytes that ends on a character boundary.
fn prefix(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// Keeps the first `max` bytes of `s` and says how much was removed after them.
fn cut_unscanned(s: &mut String, max: usize) {
    let kept = prefix(s, max).len();
    if kept < s.len() {
        let removed = s.len() - kept;
        s.truncate(kept);
        s.push_str(&format!(
            "…[{removed} bytes past TANDEM_RULES_MAX_LINE_BYTES removed: not scanned by the mask rules]"
        ));
    }
}

fn mask_string(re: &Regex, with: &str, s: &mut String) {
    if let Cow::Owned(masked) = re.replace_all(s, with) {
        *s = masked;
    }
}

fn each_string(v: &mut Value, f: &mut impl FnMut(&mut String)) {
    match v {
        Value::String(s) => f(s),
        Value::Array(a) => a.iter_mut().for_each(|v| each_string(v, f)),
        Value::Object(m) => m.values_mut().for_each(|v| each_string(v, f)),
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
    fn a_backtracking_pattern_on_a_mib_line_takes_linear_time() {
        // 30 x 30 nested repetitions: seconds per MiB for a backtracking or Pike VM
        // engine (regex-lite took 2.6 s for 64 KiB), a lazy DFA walks the line once.
        let nasty = r"(?:p{1,30}){1,30}q";
        let (rules, problems) = Rules::compile_bounded(
            &[rule(RuleKind::Exclude, "nasty", nasty, None), rule(RuleKind::Include, "all", nasty, None)],
            usize::MAX,
        );
        assert!(problems.is_empty(), "{problems:?}");
        let line = "p".repeat(1 << 20);
        let started = std::time::Instant::now();
        let mut r = rec(&line);
        assert!(!rules.apply(&mut r), "not excluded, then not included");
        let mut r = rec(&format!("{line}q"));
        assert!(!rules.apply(&mut r), "excluded");
        // A deadline generous enough for a debug build on a busy machine; the old
        // engine needed minutes here.
        assert!(started.elapsed() < std::time::Duration::from_secs(20), "{:?}", started.elapsed());
    }

    #[test]
    fn rules_look_at_a_bounded_prefix_and_masks_keep_nothing_unscanned() {
        let (rules, _) = Rules::compile_bounded(&[rule(RuleKind::Exclude, "x", "needle", None)], 16);
        assert_eq!(rules.max_line_bytes(), 16);
        let mut far = rec("0123456789abcdef needle");
        assert!(rules.apply(&mut far), "beyond the bound: not seen, kept");
        assert_eq!(far.message, "0123456789abcdef needle", "filters change nothing");
        let mut near = rec("012345 needle");
        assert!(!rules.apply(&mut near));

        let (rules, _) = Rules::compile_bounded(&[rule(RuleKind::Mask, "k", r"key=\w+", None)], 16);
        let mut r = rec("key=abc é key=def key=ghi");
        r.attributes = json!({"a": "short", "b": "0123456789abcdeé key=secret"}).as_object().cloned().unwrap();
        assert!(rules.apply(&mut r));
        let removed =
            |n: usize| format!("…[{n} bytes past TANDEM_RULES_MAX_LINE_BYTES removed: not scanned by the mask rules]");
        assert_eq!(r.message, format!("**** é ****{}", removed(10)));
        assert_eq!(r.attributes["a"], "short");
        // Cut on a character boundary: é (bytes 15..17) is not split, it goes.
        assert_eq!(r.attributes["b"], format!("0123456789abcde{}", removed(13)));
        assert!(!r.message.contains("def") && !r.message.contains("ghi"));
    }

    #[test]
    fn pattern_errors_and_limits() {
        assert_eq!(rule(RuleKind::Exclude, "ok", r"(?i)\bpassword=\S+", None).pattern_error(), None);
        assert!(rule(RuleKind::Exclude, "bad", "(", None).pattern_error().is_some());
        let huge = rule(RuleKind::Exclude, "huge", r"\w{1000}{1000}", None).pattern_error();
        assert!(huge.is_some_and(|e| e.contains("size limit")), "a program too large to build is refused");
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
