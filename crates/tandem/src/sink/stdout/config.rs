//! sink::stdout::config: the `stdout` sink's EMF settings (`TANDEM_EMF_NAMESPACE`,
//! `TANDEM_EMF_HEALTH_NAMESPACE`, `TANDEM_EMF_DIMENSIONS`, the function name), their
//! checks against CloudWatch's rules, their loading and their `check-config` line.
//! The settings type is the encoder's [`EmfOptions`]. Pure.

use super::encode::{check_dimension_name, check_dimension_value, EmfOptions, MAX_DIMENSIONS_PER_SET};
use crate::config::load::Loader;
use crate::sink::otlp::resource::parse_key_values;
use std::fmt::Write as _;

/// Loads the EMF settings.
pub(crate) fn load(l: &mut Loader<'_>) -> EmfOptions {
    let mut emf =
        EmfOptions { function_name: l.get("AWS_LAMBDA_FUNCTION_NAME").unwrap_or_default(), ..EmfOptions::default() };
    for (key, slot) in
        [("TANDEM_EMF_NAMESPACE", &mut emf.namespace), ("TANDEM_EMF_HEALTH_NAMESPACE", &mut emf.health_namespace)]
    {
        if let Some(v) = l.get(key) {
            let v = v.trim().to_owned();
            match valid_namespace(&v) {
                Ok(()) => *slot = v,
                Err(why) => l.problem(key, format!("{v:?} {why}; using {slot:?}")),
            }
        }
    }
    if let Some(v) = l.get("TANDEM_EMF_DIMENSIONS") {
        let (pairs, problems) = parse_key_values(&v);
        for p in problems {
            l.problem("TANDEM_EMF_DIMENSIONS", p);
        }
        for (name, value) in pairs {
            if let Err(why) = check_dimension_name(&name) {
                l.problem("TANDEM_EMF_DIMENSIONS", format!("{why}; dimension {name:?} skipped"));
            } else if let Err(why) = check_dimension_value(&value) {
                l.problem("TANDEM_EMF_DIMENSIONS", format!("dimension {name:?} needs {why}; skipped"));
            } else if emf.dimensions.iter().any(|(n, _)| *n == name) {
                l.problem("TANDEM_EMF_DIMENSIONS", format!("dimension {name:?} given twice; the first is kept"));
            } else if emf.dimensions.len() + 1 >= MAX_DIMENSIONS_PER_SET {
                l.problem(
                    "TANDEM_EMF_DIMENSIONS",
                    format!("more than {} dimensions; {name:?} skipped", MAX_DIMENSIONS_PER_SET - 1),
                );
            } else {
                emf.dimensions.push((name, value));
            }
        }
    }
    emf
}

/// The `check-config` line of the `stdout` sink.
pub(crate) fn describe(emf: &EmfOptions, s: &mut String) {
    let dims: Vec<String> = emf.dimensions.iter().map(|(k, v)| format!("{k}={v}")).collect();
    // Writing to a String cannot fail.
    let _ = writeln!(
        s,
        "  stdout: CloudWatch EMF, namespace {:?}, health namespace {:?}, function {:?}, extra dimensions: {}",
        emf.namespace,
        emf.health_namespace,
        emf.function_name,
        if dims.is_empty() { "none".into() } else { dims.join(", ") }
    );
}

fn valid_namespace(ns: &str) -> Result<(), &'static str> {
    if ns.is_empty() || ns.len() > 255 {
        return Err("must be 1 to 255 characters");
    }
    if !ns.bytes().all(|c| c.is_ascii_alphanumeric() || b"._-/#: ".contains(&c)) {
        return Err("may only hold letters, digits and . _ - / # : space");
    }
    if ns.starts_with("AWS/") {
        return Err("must not start with AWS/ (reserved for AWS)");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::config::Config;

    #[test]
    fn a_dimension_value_cloudwatch_would_reject_is_reported_and_dropped() {
        let dims = "Team=caf%C3%A9,Tab=a%09b,Blank=%20%20,Env=prod";
        let (cfg, problems) = Config::load_with(
            |k| (k == "TANDEM_EMF_DIMENSIONS").then(|| dims.to_owned()),
            |_| Err(std::io::Error::from(std::io::ErrorKind::NotFound)),
        );
        assert_eq!(cfg.emf.dimensions, vec![("Env".to_owned(), "prod".to_owned())]);
        for name in ["Team", "Tab", "Blank"] {
            assert!(
                problems.iter().any(|p| p.key == "TANDEM_EMF_DIMENSIONS" && p.message.contains(&format!("{name:?}"))),
                "{name}: {problems:?}"
            );
        }
        assert!(!problems.iter().any(|p| p.message.contains("café")), "values are never quoted");
    }
}
