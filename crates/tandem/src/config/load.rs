//! config::load: reading the settings: environment variables over the `TANDEM_CONFIG`
//! TOML file, through the key/value helpers every setting uses ([`Loader`]: numbers,
//! sizes, durations, booleans, prices, paths, header lists, URLs), each reporting a bad
//! value as one [`Problem`] and falling back. Reads the environment only through a
//! caller-given getter and the file through a caller-given reader. Pure.
//!
//! # The file
//!
//! TOML. A key is the variable's name, lower case, without the `TANDEM_` prefix; a table
//! name is a prefix joined with `_`. So `TANDEM_HTTP_URL` is `http_url = "…"` at the top
//! level or `url = "…"` under `[http]`. `[otel]` holds the `OTEL_*` variables
//! (`[otel] exporter_otlp_endpoint = "…"`, `service_name = "…"`), and a full variable
//! name (`OTEL_SERVICE_NAME = "…"`) is accepted anywhere at the top level. Lists may be
//! arrays (`sinks = ["stdout", "otlp"]`), `k=v` lists may be tables
//! (`[http.headers] authorization = "Bearer …"`), rules an array of tables
//! (`[[rules]] kind = "mask"`, …). `[flush]` also takes `strategy` (`TANDEM_FLUSH`) and
//! `max_delay_ms` (`TANDEM_MAX_DELAY_MS`). Environment variables override the file. An
//! empty variable counts as unset.

use crate::sink::otlp::resource::parse_key_values;
use crate::sink::transport::url::{check_url, is_header_name, redact_url};
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub(crate) const KIB: u64 = 1024;
pub(crate) const MIB: u64 = 1024 * 1024;
pub(crate) const GIB: u64 = 1024 * 1024 * 1024;

/// One thing wrong with the configuration and what was done about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The setting (`TANDEM_FLUSH`, or `TANDEM_FLUSH (from /path/file.toml)`).
    pub key: String,
    /// What is wrong and what is used instead.
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.key, self.message)
    }
}

/// Where a value came from.
enum Origin {
    Env,
    File,
}

/// Reads settings: the environment first, then the `TANDEM_CONFIG` file; collects the
/// problems found on the way.
pub(crate) struct Loader<'a> {
    env: &'a dyn Fn(&str) -> Option<String>,
    file: BTreeMap<String, String>,
    file_path: Option<String>,
    problems: Vec<Problem>,
    /// Every name asked for: with `SETTINGS`, what counts as a known variable.
    asked: std::cell::RefCell<std::collections::BTreeSet<String>>,
}

impl<'a> Loader<'a> {
    /// A loader reading variables through `env`, with no file yet.
    pub(crate) fn new(env: &'a dyn Fn(&str) -> Option<String>) -> Loader<'a> {
        Loader { env, file: BTreeMap::new(), file_path: None, problems: Vec::new(), asked: Default::default() }
    }

    /// Whether a `TANDEM_CONFIG` file was read.
    pub(crate) fn read_file(&self) -> bool {
        self.file_path.is_some()
    }

    /// The problems found.
    pub(crate) fn into_problems(self) -> Vec<Problem> {
        self.problems
    }

    fn raw(&self, key: &str) -> Option<(String, Origin)> {
        if !self.asked.borrow().contains(key) {
            self.asked.borrow_mut().insert(key.to_owned());
        }
        if let Some(v) = (self.env)(key).filter(|v| !v.trim().is_empty()) {
            return Some((v, Origin::Env));
        }
        self.file.get(key).filter(|v| !v.trim().is_empty()).map(|v| (v.clone(), Origin::File))
    }

    pub(crate) fn get(&self, key: &str) -> Option<String> {
        self.raw(key).map(|(v, _)| v)
    }

    fn label(&self, key: &str) -> String {
        match (self.raw(key), &self.file_path) {
            (Some((_, Origin::File)), Some(path)) => format!("{key} (from {path})"),
            _ => key.to_owned(),
        }
    }

    /// Records a problem once: a general setting read for several purposes (the OTLP
    /// signals) is said once.
    pub(crate) fn problem(&mut self, key: &str, message: impl Into<String>) {
        let p = Problem { key: self.label(key), message: message.into() };
        if !self.problems.contains(&p) {
            self.problems.push(p);
        }
    }

    pub(crate) fn number(&mut self, key: &str, default: u64, min: u64, max: u64, what: &str) -> u64 {
        let Some(v) = self.get(key) else {
            return default;
        };
        match v.trim().replace('_', "").parse::<u64>() {
            Ok(n) if (min..=max).contains(&n) => n,
            _ => {
                self.problem(key, format!("{v:?} is not {what} between {min} and {max}; using {default}"));
                default
            }
        }
    }

    pub(crate) fn millis(&mut self, key: &str, default: u64, min: u64, max: u64) -> Duration {
        Duration::from_millis(self.number(key, default, min, max, "a whole number of milliseconds"))
    }

    pub(crate) fn bytes(&mut self, key: &str, default: u64, min: u64, max: u64) -> u64 {
        let Some(v) = self.get(key) else {
            return default;
        };
        match parse_bytes(&v) {
            Some(n) if (min..=max).contains(&n) => n,
            _ => {
                self.problem(
                    key,
                    format!(
                        "{v:?} is not a size between {} and {} (bytes, or with KiB/MiB/GiB, KB/MB/GB); using {}",
                        human_bytes(min),
                        human_bytes(max),
                        human_bytes(default)
                    ),
                );
                default
            }
        }
    }

    pub(crate) fn boolean(&mut self, key: &str, default: bool) -> bool {
        let Some(v) = self.get(key) else {
            return default;
        };
        match v.trim().to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" | "on" => true,
            "false" | "0" | "no" | "off" => false,
            _ => {
                self.problem(key, format!("{v:?} is not a boolean (true/false); using {default}"));
                default
            }
        }
    }

    pub(crate) fn price(&mut self, key: &str, default: f64) -> f64 {
        let Some(v) = self.get(key) else {
            return default;
        };
        match v.trim().parse::<f64>() {
            Ok(p) if p.is_finite() && (0.0..=1.0).contains(&p) => p,
            _ => {
                self.problem(key, format!("{v:?} is not a price in USD between 0 and 1; using {default}"));
                default
            }
        }
    }

    pub(crate) fn absolute_path(&mut self, key: &str, default: &str) -> PathBuf {
        let Some(v) = self.get(key) else {
            return PathBuf::from(default);
        };
        let p = PathBuf::from(v.trim());
        if p.is_absolute() {
            p
        } else {
            self.problem(key, format!("{v:?} is not an absolute path; using {default}"));
            PathBuf::from(default)
        }
    }

    /// `k=v` header list; malformed entries and invalid names are reported (without
    /// their values) and skipped.
    pub(crate) fn headers(&mut self, key: &str) -> Vec<(String, String)> {
        let Some(v) = self.get(key) else {
            return Vec::new();
        };
        let (pairs, problems) = parse_key_values(&v);
        for p in problems {
            self.problem(key, p);
        }
        let mut out: Vec<(String, String)> = Vec::with_capacity(pairs.len());
        for (name, value) in pairs {
            if !is_header_name(&name) {
                self.problem(key, format!("header name {name:?} is not a valid HTTP header name; skipped"));
            } else if value.bytes().any(|c| c == b'\r' || c == b'\n' || c == 0) {
                self.problem(key, format!("header {name:?} has a line break in its value; skipped"));
            } else {
                out.retain(|(n, _)| !n.eq_ignore_ascii_case(&name));
                out.push((name, value));
            }
        }
        out
    }

    /// An http(s) URL, or `None` after reporting.
    pub(crate) fn url(&mut self, key: &str, consequence: &str) -> Option<String> {
        let v = self.get(key)?;
        let v = v.trim().to_owned();
        match check_url(&v) {
            Ok(()) => Some(v),
            Err(why) => {
                self.problem(key, format!("{:?} {why}; {consequence}", redact_url(&v)));
                None
            }
        }
    }
}

impl Loader<'_> {
    /// Reports each of `names` (the environment's variable names) that looks like a
    /// tandem or OTLP exporter setting (`TANDEM_*`, `OTEL_EXPORTER_OTLP_*`) but is none
    /// that was read or that `known` lists, with the closest known name: a typo must
    /// not pass for a setting silently.
    pub(crate) fn unknown_variables(&mut self, names: &[String], known: &[&str]) {
        let asked = self.asked.borrow().clone();
        let known: Vec<&str> = known.iter().copied().chain(asked.iter().map(String::as_str)).collect();
        for name in names {
            let ours = name.starts_with("TANDEM_") || name.starts_with("OTEL_EXPORTER_OTLP_");
            if !ours || known.contains(&name.as_str()) || (self.env)(name).is_none() {
                continue;
            }
            let closest = known
                .iter()
                .map(|k| (edit_distance(name, k), *k))
                .filter(|(d, _)| *d <= 3)
                .min()
                .map_or(String::new(), |(_, k)| format!(" (did you mean {k}?)"));
            self.problems
                .push(Problem { key: name.clone(), message: format!("not a setting tandem knows{closest}; ignored") });
        }
    }
}

/// Runs `read` (a settings group's `load`) on a loader over `pairs`: the value and the
/// problems as lines, for the groups' unit tests.
#[cfg(test)]
pub(crate) fn load_pairs<T>(pairs: &[(&str, &str)], read: impl FnOnce(&mut Loader<'_>) -> T) -> (T, Vec<String>) {
    let get = |k: &str| pairs.iter().find(|(n, _)| *n == k).map(|(_, v)| (*v).to_owned());
    let mut l = Loader::new(&get);
    let value = read(&mut l);
    (value, l.into_problems().iter().map(ToString::to_string).collect())
}

/// Edits (insertions, deletions, substitutions, swaps of two neighbours) from `a` to `b`.
fn edit_distance(a: &str, b: &str) -> usize {
    let (a, b): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
    let mut d = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in d[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut best = (d[i - 1][j] + 1).min(d[i][j - 1] + 1).min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(d[i - 2][j - 2] + 1);
            }
            d[i][j] = best;
        }
    }
    d[a.len()][b.len()]
}

/// Parses `123`, `64KiB`, `4MiB`, `1GiB`, `10KB`, `5MB`, `1GB`, `4k`, `4m`, `1g`.
pub fn parse_bytes(s: &str) -> Option<u64> {
    let t = s.trim().replace('_', "");
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num.parse().ok()?;
    let mult = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kib" => KIB,
        "m" | "mib" => MIB,
        "g" | "gib" => GIB,
        "kb" => 1000,
        "mb" => 1_000_000,
        "gb" => 1_000_000_000,
        _ => return None,
    };
    n.checked_mul(mult)
}

/// `n` bytes, in the largest binary unit that divides it.
pub(crate) fn human_bytes(n: u64) -> String {
    match n {
        0 => "0".into(),
        n if n % GIB == 0 => format!("{}GiB", n / GIB),
        n if n % MIB == 0 => format!("{}MiB", n / MIB),
        n if n % KIB == 0 => format!("{}KiB", n / KIB),
        n => n.to_string(),
    }
}

/// Reads the `TANDEM_CONFIG` file at `path` into `l`; `known` lists the settings a key
/// may name. A file that cannot be read or parsed is reported and ignored.
pub(crate) fn load_file(
    l: &mut Loader<'_>,
    path: &Path,
    read_file: &dyn Fn(&Path) -> io::Result<String>,
    known: &[(&str, &str)],
) {
    let shown = path.display().to_string();
    let text = match read_file(path) {
        Ok(t) => t,
        Err(e) => {
            l.problem("TANDEM_CONFIG", format!("cannot read {shown}: {e}; file ignored"));
            return;
        }
    };
    if let Err(why) = check_nesting(&text, MAX_NESTING) {
        l.problem("TANDEM_CONFIG", format!("cannot parse {shown}: {why}; file ignored"));
        return;
    }
    let table: Map<String, Value> = match basic_toml::from_str(&text) {
        Ok(t) => t,
        Err(e) => {
            let why = e.to_string().split_whitespace().collect::<Vec<_>>().join(" ");
            l.problem("TANDEM_CONFIG", format!("cannot parse {shown}: {why}; file ignored"));
            return;
        }
    };
    let mut flat = BTreeMap::new();
    let mut unknown = Vec::new();
    for (k, v) in table {
        match v {
            Value::Object(section) if !is_list_setting(&setting_name(None, &k)) => {
                for (k2, v2) in section {
                    let name = setting_name(Some(&k), &k2);
                    insert_setting(known, &mut flat, &mut unknown, format!("[{k}] {k2}"), name, v2);
                }
            }
            v => {
                let name = setting_name(None, &k);
                insert_setting(known, &mut flat, &mut unknown, k, name, v);
            }
        }
    }
    for key in unknown {
        l.problems.push(Problem {
            key: "TANDEM_CONFIG".into(),
            message: format!("unknown setting {key:?} in {shown}; ignored"),
        });
    }
    l.file = flat;
    l.file_path = Some(shown);
}

/// Deepest nesting of arrays and inline tables a `TANDEM_CONFIG` file may have. The
/// TOML parser (and the conversion to values) recurse once per level, so an unbounded
/// depth (`rules = [[[[…` 20,000 deep in 40 KB) would overflow the stack and abort the
/// extension; the deepest real setting (`[[rules]]` with an attribute list) needs 3.
pub(crate) const MAX_NESTING: usize = 32;

/// Checks, without recursion, that no array or inline table in `text` lies deeper than
/// `max`: a TOML scan that skips comments and the four kinds of strings and counts
/// `[`/`{` against `]`/`}` (table headers count too, at most 2). Errors say where.
pub(crate) fn check_nesting(text: &str, max: usize) -> Result<(), String> {
    let b = text.as_bytes();
    let (mut i, mut depth, mut line) = (0, 0usize, 1usize);
    // Index just past the end of a string opened at `i` by `quote` (1 or 3 bytes);
    // basic strings (`"`) have backslash escapes, literal ones (`'`) none.
    let skip_string = |mut i: usize, q: u8, triple: bool, line: &mut usize| -> usize {
        let close: &[u8] = if triple { &b[i..i + 3] } else { &b[i..i + 1] };
        i += close.len();
        while i < b.len() {
            match b[i] {
                b'\\' if q == b'"' => {
                    *line += usize::from(b.get(i + 1) == Some(&b'\n'));
                    i += 2;
                }
                b'\n' if !triple => return i,
                c if c == q && b[i..].starts_with(close) => {
                    i += close.len();
                    // A multi-line string may end with up to two more quotes (`""""`).
                    while triple && i < b.len() && b[i] == q {
                        i += 1;
                    }
                    return i;
                }
                c => {
                    *line += usize::from(c == b'\n');
                    i += 1;
                }
            }
        }
        i
    };
    while i < b.len() {
        match b[i] {
            b'#' => {
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
            }
            q @ (b'"' | b'\'') => {
                let triple = b[i..].starts_with(&[q, q, q]);
                i = skip_string(i, q, triple, &mut line);
            }
            b'[' | b'{' => {
                depth += 1;
                if depth > max {
                    return Err(format!("line {line}: arrays or inline tables nested deeper than {max} levels"));
                }
                i += 1;
            }
            b']' | b'}' => {
                depth = depth.saturating_sub(1);
                i += 1;
            }
            c => {
                line += usize::from(c == b'\n');
                i += 1;
            }
        }
    }
    Ok(())
}

/// Settings whose file value may be a table (a `k=v` list) rather than a section.
fn is_list_setting(name: &str) -> bool {
    matches!(
        name,
        "TANDEM_HTTP_HEADERS" | "TANDEM_EMF_DIMENSIONS" | "OTEL_EXPORTER_OTLP_HEADERS" | "OTEL_RESOURCE_ATTRIBUTES"
    ) || ((name.starts_with("OTEL_EXPORTER_OTLP_") || name.starts_with("TANDEM_OTLP_")) && name.ends_with("_HEADERS"))
}

/// Keys of a section that name a setting outside its prefix: `[flush]` gathers the
/// flush settings (a `[flush]` table and a top-level `flush = "…"` cannot both exist).
const SECTION_ALIASES: &[(&str, &str, &str)] =
    &[("FLUSH", "STRATEGY", "TANDEM_FLUSH"), ("FLUSH", "MAX_DELAY_MS", "TANDEM_MAX_DELAY_MS")];

fn setting_name(section: Option<&str>, key: &str) -> String {
    let upper = |s: &str| s.trim().to_ascii_uppercase().replace(['-', '.'], "_");
    if let Some(sec) = section {
        if let Some((_, _, name)) = SECTION_ALIASES.iter().find(|(s, k, _)| *s == upper(sec) && *k == upper(key)) {
            return (*name).to_owned();
        }
    }
    match section {
        None if upper(key).starts_with("TANDEM_") || upper(key).starts_with("OTEL_") => upper(key),
        None => format!("TANDEM_{}", upper(key)),
        Some(sec) if upper(sec) == "OTEL" => format!("OTEL_{}", upper(key)),
        Some(sec) => format!("TANDEM_{}_{}", upper(sec), upper(key)),
    }
}

fn insert_setting(
    known: &[(&str, &str)],
    flat: &mut BTreeMap<String, String>,
    unknown: &mut Vec<String>,
    shown: String,
    name: String,
    v: Value,
) {
    if !known.iter().any(|(k, _)| *k == name) || name == "TANDEM_CONFIG" {
        unknown.push(shown);
        return;
    }
    let text = match (name.as_str(), v) {
        ("TANDEM_RULES", v @ Value::Array(_)) => v.to_string(),
        (_, Value::String(s)) => s,
        (_, Value::Array(items)) => items.iter().map(scalar_text).collect::<Vec<_>>().join(","),
        (_, Value::Object(m)) => m
            .iter()
            .map(|(k, v)| format!("{}={}", list_escape(k), list_escape(&scalar_text(v))))
            .collect::<Vec<_>>()
            .join(","),
        (_, v) => scalar_text(&v),
    };
    flat.insert(name, text);
}

fn scalar_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Escapes what the `k=v,…` list syntax would misread.
fn list_escape(s: &str) -> String {
    s.replace('%', "%25").replace(',', "%2C")
}
