//! `cargo xtask new-extension NAME [--logs|--telemetry] [--dir PATH] [--bin-name BIN]
//! [--render-var KEY=VALUE]...`: generates an extension project on tandem-sdk from
//! `templates/extension`, as `cargo lambda new NAME --extension --template
//! templates/extension` does, without cargo-lambda.
//!
//! It owns a renderer for the part of Liquid (cargo-lambda's template language) that the
//! template keeps to: `{{ var }}`, `{% if var %}`, `{% else %}`, `{% endif %}`, and the
//! `-` of `{{-`, `-}}`, `{%-`, `-%}` that removes the spaces and newlines next to a tag.
//! Anything else is refused rather than rendered differently, and the variables are
//! cargo-lambda's, so that both renderers write the same files (`cargo xtask
//! template-check` compares them).

use crate::util::{self, Failure, Result};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Which telemetry API the starter subscribes to.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Flavour {
    Logs,
    Telemetry,
}

impl Flavour {
    /// cargo-lambda's flag (and this command's) for the flavour, without its dashes.
    pub fn flag(self) -> &'static str {
        match self {
            Flavour::Logs => "logs",
            Flavour::Telemetry => "telemetry",
        }
    }
}

/// A template variable's value, as Liquid sees it.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum Value {
    Nil,
    Bool(bool),
    Str(String),
}

impl Value {
    /// Liquid's truth: everything but nil and false (an empty string is true).
    fn truthy(&self) -> bool {
        !matches!(self, Value::Nil | Value::Bool(false))
    }
}

pub type Vars = BTreeMap<String, Value>;

/// The variables `cargo lambda new NAME --extension [--logs|--telemetry] [--bin-name BIN]
/// --render-var K=V…` gives a template (`--render-var` values are strings, and win).
pub fn variables(name: &str, flavour: Flavour, bin_name: Option<&str>, render_vars: &[(String, String)]) -> Vars {
    let mut vars = Vars::new();
    vars.insert("project_name".into(), Value::Str(name.into()));
    vars.insert("binary_name".into(), bin_name.map_or(Value::Nil, |b| Value::Str(b.into())));
    vars.insert("logs".into(), Value::Bool(flavour == Flavour::Logs));
    vars.insert("telemetry".into(), Value::Bool(flavour == Flavour::Telemetry));
    // cargo-lambda adds the events processor when neither --logs nor --telemetry is given.
    vars.insert("events".into(), Value::Bool(false));
    for (k, v) in render_vars {
        vars.insert(k.clone(), Value::Str(v.clone()));
    }
    vars
}

/// Where the template is: its configuration at the top, its files under `template/`.
pub fn template_dir() -> PathBuf {
    util::workspace_root().join("templates").join("extension")
}

struct Args {
    name: String,
    flavour: Flavour,
    dir: Option<PathBuf>,
    bin_name: Option<String>,
    render_vars: Vec<(String, String)>,
}

fn parse(args: &[String]) -> Result<Args> {
    let mut name = None;
    let mut flavour = None;
    let mut dir = None;
    let mut bin_name = None;
    let mut render_vars = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut value = |flag: &str| it.next().cloned().ok_or_else(|| Failure::usage(format!("{flag} takes a value")));
        match a.as_str() {
            "--logs" | "--telemetry" => {
                let f = if a == "--logs" { Flavour::Logs } else { Flavour::Telemetry };
                if flavour.is_some_and(|old| old != f) {
                    return Err(Failure::usage("--logs and --telemetry exclude each other"));
                }
                flavour = Some(f);
            }
            "--dir" => dir = Some(PathBuf::from(value("--dir")?)),
            "--bin-name" => bin_name = Some(value("--bin-name")?),
            "--render-var" => {
                let kv = value("--render-var")?;
                let (k, v) = kv
                    .split_once('=')
                    .ok_or_else(|| Failure::usage(format!("--render-var takes KEY=VALUE (got `{kv}`)")))?;
                render_vars.push((k.to_string(), v.to_string()));
            }
            other if other.starts_with('-') => {
                return Err(Failure::usage(format!("unknown new-extension argument `{other}`")))
            }
            other if name.is_none() => name = Some(other.to_string()),
            other => return Err(Failure::usage(format!("new-extension takes one NAME (got a second: `{other}`)"))),
        }
    }
    let name = name.ok_or_else(|| Failure::usage("new-extension needs a NAME"))?;
    validate_name(&name)?;
    if let Some(bin) = &bin_name {
        validate_name(bin)?;
    }
    Ok(Args { name, flavour: flavour.unwrap_or(Flavour::Telemetry), dir, bin_name, render_vars })
}

/// cargo-lambda's rule for package and binary names: a letter, then at least one
/// letter, digit, `_` or `-`.
fn validate_name(name: &str) -> Result<()> {
    let mut chars = name.chars();
    let first_ok = chars.next().is_some_and(|c| c.is_ascii_alphabetic());
    let rest: Vec<char> = chars.collect();
    if first_ok && !rest.is_empty() && rest.iter().all(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '-') {
        Ok(())
    } else {
        Err(Failure::usage(format!(
            "`{name}` is not a valid name: a letter, then letters, digits, `_` or `-` (two characters at least)"
        )))
    }
}

pub fn run(args: &[String]) -> Result<()> {
    let args = parse(args)?;
    let out = args.dir.clone().unwrap_or_else(|| PathBuf::from(&args.name));
    // A checkout of this repository is where tandem-sdk comes from unless told otherwise.
    let mut render_vars = vec![("tandem_path".to_string(), util::workspace_root().display().to_string())];
    render_vars.extend(args.render_vars.iter().cloned());
    let vars = variables(&args.name, args.flavour, args.bin_name.as_deref(), &render_vars);
    let files = generate(&template_dir(), &out, &vars)?;
    println!("new-extension: {} ({} API starter) in {}:", args.name, args.flavour.flag(), out.display());
    for f in &files {
        println!("  {}", f.display());
    }
    println!(
        "next: cd {} && cargo test && cargo lambda build --extension --release (see its README.md)",
        out.display()
    );
    Ok(())
}

/// Renders every file of `template/template/` into `out` (which must not exist, or be
/// empty); returns the files written, relative to `out`, in order.
pub fn generate(template: &Path, out: &Path, vars: &Vars) -> Result<Vec<PathBuf>> {
    check_config(template)?;
    let files_dir = template.join("template");
    let files = files(&files_dir)?;
    if out.exists() && std::fs::read_dir(out).map(|mut d| d.next().is_some()).unwrap_or(true) {
        return Err(Failure::new(format!("{} already exists and is not empty", out.display())));
    }
    let mut written = Vec::new();
    for rel in files {
        let src = files_dir.join(&rel);
        let text = std::fs::read_to_string(&src)
            .map_err(|e| Failure::new(format!("cannot read {} as text: {e}", src.display())))?;
        let rendered = render(&text, vars).map_err(|e| Failure::new(format!("{}: {e}", src.display())))?;
        let rel_str = rel.to_string_lossy();
        let rel = if rel_str.contains("{{") {
            PathBuf::from(render(&rel_str, vars).map_err(|e| Failure::new(format!("{rel_str}: {e}")))?)
        } else {
            rel
        };
        let dest = out.join(&rel);
        if let Some(parent) = dest.parent() {
            std::fs::create_dir_all(parent)
                .map_err(|e| Failure::new(format!("cannot create {}: {e}", parent.display())))?;
        }
        std::fs::write(&dest, rendered).map_err(|e| Failure::new(format!("cannot write {}: {e}", dest.display())))?;
        written.push(rel);
    }
    Ok(written)
}

/// The renderer renders every file, which cargo-lambda does only with
/// `render_all_files = true` in the template's `CargoLambda.toml`.
fn check_config(template: &Path) -> Result<()> {
    let path = template.join("CargoLambda.toml");
    let text =
        std::fs::read_to_string(&path).map_err(|e| Failure::new(format!("cannot read {}: {e}", path.display())))?;
    let renders_all = text.lines().any(|l| {
        let l = l.split('#').next().unwrap_or_default();
        l.split_once('=').is_some_and(|(k, v)| k.trim() == "render_all_files" && v.trim() == "true")
    });
    if renders_all {
        Ok(())
    } else {
        Err(Failure::new(format!(
            "{} must set `render_all_files = true`: this renderer renders every file, as cargo-lambda then does",
            path.display()
        )))
    }
}

/// The files under `root`, relative and sorted (`.git` left out, as cargo-lambda does).
pub fn files(root: &Path) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    list_files(root, Path::new(""), &mut out)?;
    Ok(out)
}

fn list_files(root: &Path, rel: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    let dir = root.join(rel);
    let entries = std::fs::read_dir(&dir).map_err(|e| Failure::new(format!("cannot list {}: {e}", dir.display())))?;
    let mut names: Vec<_> = entries.filter_map(|e| e.ok().map(|e| e.file_name())).collect();
    names.sort();
    for name in names {
        let path = rel.join(&name);
        if root.join(&path).is_dir() {
            if name != ".git" {
                list_files(root, &path, out)?;
            }
        } else {
            out.push(path);
        }
    }
    Ok(())
}

#[derive(Debug, PartialEq)]
enum Token<'a> {
    Text(&'a str),
    Var(&'a str),
    If(&'a str),
    Else,
    EndIf,
}

enum Node<'a> {
    Text(&'a str),
    Var(&'a str),
    If { var: &'a str, then: Vec<Node<'a>>, otherwise: Vec<Node<'a>> },
}

const SUBSET: &str = "xtask renders `{{ var }}`, `{% if var %}`, `{% else %}` and `{% endif %}` only";

/// Renders `template` with `vars`, as Liquid would for the subset it accepts.
pub fn render(template: &str, vars: &Vars) -> std::result::Result<String, String> {
    let tokens = tokenize(template)?;
    let mut it = tokens.into_iter();
    let nodes = parse_nodes(&mut it, false)?.0;
    let mut out = String::with_capacity(template.len());
    emit(&nodes, vars, &mut out)?;
    Ok(out)
}

/// Liquid's whitespace control removes spaces and newlines, not tabs.
fn is_trimmed(c: char) -> bool {
    matches!(c, ' ' | '\n' | '\r')
}

fn tokenize(src: &str) -> std::result::Result<Vec<Token<'_>>, String> {
    let mut tokens = Vec::new();
    let mut rest = src;
    let mut trim_next = false;
    loop {
        let open = match (rest.find("{{"), rest.find("{%")) {
            (Some(a), Some(b)) => a.min(b),
            (Some(a), None) | (None, Some(a)) => a,
            (None, None) => rest.len(),
        };
        let mut text = &rest[..open];
        if trim_next {
            text = text.trim_start_matches(is_trimmed);
        }
        rest = &rest[open..];
        if rest.is_empty() {
            tokens.push(Token::Text(text));
            return Ok(tokens);
        }
        let is_tag = rest.starts_with("{%");
        let close = if is_tag { "%}" } else { "}}" };
        let end = rest.find(close).ok_or_else(|| format!("`{}` is not closed", &rest[..2]))?;
        let mut inner = &rest[2..end];
        if let Some(stripped) = inner.strip_prefix('-') {
            text = text.trim_end_matches(is_trimmed);
            inner = stripped;
        }
        trim_next = false;
        if let Some(stripped) = inner.strip_suffix('-') {
            trim_next = true;
            inner = stripped;
        }
        tokens.push(Token::Text(text));
        let words: Vec<&str> = inner.split([' ', '\n', '\r']).filter(|w| !w.is_empty()).collect();
        let token = match (is_tag, words.as_slice()) {
            (false, [var]) if is_identifier(var) => Token::Var(var),
            (true, ["if", var]) if is_identifier(var) => Token::If(var),
            (true, ["else"]) => Token::Else,
            (true, ["endif"]) => Token::EndIf,
            _ => return Err(format!("`{}` is outside the template's subset of Liquid: {SUBSET}", &rest[..end + 2])),
        };
        tokens.push(token);
        rest = &rest[end + 2..];
    }
}

/// Liquid's identifiers (a letter or `_`, then letters, digits, `_` or `-`), without
/// the words Liquid reads as literals.
fn is_identifier(word: &str) -> bool {
    let mut chars = word.chars();
    let shaped = chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    shaped && !matches!(word, "nil" | "null" | "true" | "false" | "empty" | "blank")
}

/// Parses until the end (top level) or the `{% else %}`/`{% endif %}` that closes the
/// current `if`; returns the nodes and the closing token.
fn parse_nodes<'a>(
    it: &mut std::vec::IntoIter<Token<'a>>,
    in_if: bool,
) -> std::result::Result<(Vec<Node<'a>>, Option<Token<'a>>), String> {
    let mut nodes = Vec::new();
    while let Some(token) = it.next() {
        match token {
            Token::Text(t) => nodes.push(Node::Text(t)),
            Token::Var(v) => nodes.push(Node::Var(v)),
            Token::If(var) => {
                let (then, closer) = parse_nodes(it, true)?;
                let otherwise = match closer {
                    Some(Token::Else) => match parse_nodes(it, true)? {
                        (nodes, Some(Token::EndIf)) => nodes,
                        _ => return Err(format!("`{{% if {var} %}}`…`{{% else %}}` has no `{{% endif %}}`")),
                    },
                    Some(Token::EndIf) => Vec::new(),
                    _ => return Err(format!("`{{% if {var} %}}` has no `{{% endif %}}`")),
                };
                nodes.push(Node::If { var, then, otherwise });
            }
            Token::Else | Token::EndIf if in_if => return Ok((nodes, Some(token))),
            Token::Else | Token::EndIf => return Err("`{% else %}` or `{% endif %}` without an `{% if %}`".into()),
        }
    }
    Ok((nodes, None))
}

fn emit(nodes: &[Node<'_>], vars: &Vars, out: &mut String) -> std::result::Result<(), String> {
    for node in nodes {
        match node {
            Node::Text(t) => out.push_str(t),
            Node::Var(v) => match vars.get(*v) {
                Some(Value::Str(s)) => out.push_str(s),
                Some(Value::Bool(b)) => out.push_str(if *b { "true" } else { "false" }),
                Some(Value::Nil) => {}
                None => return Err(format!("unknown variable `{v}` (Liquid refuses it too)")),
            },
            Node::If { var, then, otherwise } => {
                // Liquid treats an undefined variable as nil in a condition.
                let branch = if vars.get(*var).is_some_and(Value::truthy) { then } else { otherwise };
                emit(branch, vars, out)?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, Value)]) -> Vars {
        pairs.iter().map(|(k, v)| (k.to_string(), v.clone())).collect()
    }

    #[test]
    fn substitutes_variables_and_chooses_branches_as_liquid_does() {
        let v = vars(&[
            ("name", Value::Str("ext".into())),
            ("on", Value::Bool(true)),
            ("off", Value::Bool(false)),
            ("nothing", Value::Nil),
            ("empty_string", Value::Str(String::new())),
        ]);
        let t = "{{ name }}:{% if on %}A{% else %}B{% endif %}{% if off %}C{% else %}D{% endif %}\
                 {% if nothing %}E{% endif %}{% if undefined %}F{% else %}G{% endif %}{% if empty_string %}H{% endif %}[{{ nothing }}]{{on}}";
        assert_eq!(render(t, &v).as_deref(), Ok("ext:ADGH[]true"));
    }

    #[test]
    fn nested_conditions_render_the_inner_branch() {
        let v = vars(&[("git", Value::Nil), ("path", Value::Str("/t".into()))]);
        let t = "{% if git %}git{% else %}{% if path %}{{ path }}{% else %}../tandem{% endif %}/sdk{% endif %}";
        assert_eq!(render(t, &v).as_deref(), Ok("/t/sdk"));
        let v = vars(&[("git", Value::Nil)]);
        assert_eq!(render(t, &v).as_deref(), Ok("../tandem/sdk"));
    }

    #[test]
    fn a_hyphen_removes_spaces_and_newlines_next_to_the_tag_but_not_tabs() {
        let v = vars(&[("on", Value::Bool(true)), ("x", Value::Str("1".into()))]);
        assert_eq!(render("a \n {%- if on -%}\n  b\n{%- endif %}\nc", &v).as_deref(), Ok("ab\nc"));
        assert_eq!(render("a\t{{- x -}}\t b", &v).as_deref(), Ok("a\t1\t b"));
        assert_eq!(render("a \n{{- x -}} \n b", &v).as_deref(), Ok("a1b"));
    }

    #[test]
    fn what_is_outside_the_subset_or_malformed_is_refused() {
        let v = vars(&[("x", Value::Str("1".into()))]);
        for t in [
            "{{ x | upcase }}",
            "{% for i in x %}{% endfor %}",
            "{% if x == 1 %}{% endif %}",
            "{% if x %}",
            "{% endif %}",
            "{% else %}",
            "{{ x",
            "{{ missing }}",
            "{% assign y = x %}",
            "{% if true %}{% endif %}",
        ] {
            assert!(render(t, &v).is_err(), "{t} must be refused");
        }
    }

    #[test]
    fn variables_are_cargo_lambdas_and_render_vars_win() {
        let v =
            variables("ext", Flavour::Logs, None, &[("tandem_path".into(), "/t".into()), ("logs".into(), "x".into())]);
        assert_eq!(v["project_name"], Value::Str("ext".into()));
        assert_eq!(v["binary_name"], Value::Nil);
        assert_eq!(v["telemetry"], Value::Bool(false));
        assert_eq!(v["tandem_path"], Value::Str("/t".into()));
        assert_eq!(v["logs"], Value::Str("x".into()));
    }

    #[test]
    fn names_follow_cargo_lambdas_rule() {
        for ok in ["ab", "my-ext", "x_1"] {
            assert!(validate_name(ok).is_ok(), "{ok}");
        }
        for bad in ["a", "1ab", "-ab", "a b", "a.b", ""] {
            assert!(validate_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_template_renders_in_both_flavours_with_no_liquid_left() {
        let template = template_dir();
        let files = files(&template.join("template")).expect("the template's files");
        assert!(files.contains(&PathBuf::from("src/main.rs")), "{files:?}");
        for flavour in [Flavour::Logs, Flavour::Telemetry] {
            let v = variables("ext", flavour, Some("bin"), &[]);
            for f in &files {
                let text = std::fs::read_to_string(template.join("template").join(f)).expect("text");
                let out = render(&text, &v).unwrap_or_else(|e| panic!("{}: {e}", f.display()));
                assert!(!out.contains("{%") && !out.contains("{{"), "{} keeps Liquid", f.display());
            }
            let main = render(&std::fs::read_to_string(template.join("template/src/main.rs")).expect("main.rs"), &v)
                .expect("main.rs renders");
            let wanted = if flavour == Flavour::Logs { "logs_api()" } else { "TelemetryConfig::default()" };
            assert!(main.contains(wanted), "{flavour:?}: {main}");
        }
    }
}
