//! guard::config: the guard's settings (`TANDEM_GUARD`, `TANDEM_GUARD_INTERVAL_MS`,
//! `TANDEM_GUARD_ALLOW_EXEC`, `TANDEM_GUARD_ALLOW_NET`, `TANDEM_GUARD_KILL_RUNTIME`,
//! `TANDEM_GUARD_POLICY_OUT`, `TANDEM_GUARD_WATCH_FILES`; in the `TANDEM_CONFIG` file
//! `tandem_guard = "detect"` and a `[guard]` table: `interval_ms`, `allow_exec`,
//! `allow_net`, `kill_runtime`, `policy_out`, `watch_files`), their defaults and their
//! problems. Pure, read through the configuration's [`Loader`], but for
//! [`GuardConfig::check_files`] (do the watched files' directories exist?), which the
//! process's own load calls.

use super::policy::{ExecPattern, NetRule, Policy, WatchPattern};
use crate::config::load::Loader;
use crate::config::Problem;
use std::fmt::Write as _;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// What the guard does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Not started (the default): no thread, no scan, nothing read.
    Off,
    /// Reports findings.
    Detect,
    /// Reports findings and kills the offending process.
    Enforce,
    /// Reports nothing; writes the policy that would have allowed everything seen.
    Learn,
}

impl Mode {
    /// `off`, `detect`, `enforce`, `learn`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Mode::Off => "off",
            Mode::Detect => "detect",
            Mode::Enforce => "enforce",
            Mode::Learn => "learn",
        }
    }
}

/// The scan interval when `TANDEM_GUARD_INTERVAL_MS` is not set, chosen so that the
/// guard costs a 128 MB function (about 1/14 of a vCPU) under 1 % of its time. Measured
/// (`tandem-harness bench --only guard`, README "Guard") in a Lambda-sized namespace
/// (its own pid and network namespaces, 1 to 10 processes in scope): 0.34 to 0.46 ms of
/// CPU per scan on average, the socket tables read every tenth scan; at 1 s that is
/// 0.6 % of 1/14 of a vCPU (at 500 ms it was 1.2 %). A process of 100 ms is still seen
/// about one time in five (mostly by the scan at INVOKE, the same at 500 ms); lower it
/// for more at a cost proportional to 1/interval.
pub const DEFAULT_INTERVAL_MS: u64 = 1_000;

/// Where `learn` writes its policy when `TANDEM_GUARD_POLICY_OUT` is not set.
pub const DEFAULT_POLICY_OUT: &str = "/tmp/tandem/guard-policy.toml";

/// The guard's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GuardConfig {
    /// `TANDEM_GUARD`.
    pub mode: Mode,
    /// `TANDEM_GUARD_INTERVAL_MS`: the period of the scans while the environment runs.
    pub interval: Duration,
    /// `TANDEM_GUARD_ALLOW_EXEC`, `TANDEM_GUARD_ALLOW_NET`, and the Runtime API address.
    pub policy: Policy,
    /// `TANDEM_GUARD_KILL_RUNTIME`: `enforce` may kill the runtime (and other
    /// platform-started processes) when they hold a forbidden connection.
    pub kill_runtime: bool,
    /// `TANDEM_GUARD_POLICY_OUT`: where `learn` writes.
    pub policy_out: PathBuf,
}

impl Default for GuardConfig {
    fn default() -> Self {
        GuardConfig {
            mode: Mode::Off,
            interval: Duration::from_millis(DEFAULT_INTERVAL_MS),
            policy: Policy::default(),
            kill_runtime: false,
            policy_out: PathBuf::from(DEFAULT_POLICY_OUT),
        }
    }
}

impl GuardConfig {
    /// Reads the guard's settings; `runtime_api` is `AWS_LAMBDA_RUNTIME_API`'s value.
    pub(crate) fn load(l: &mut Loader<'_>) -> GuardConfig {
        let mode = match l.get("TANDEM_GUARD").map(|v| v.trim().to_ascii_lowercase()) {
            None => Mode::Off,
            Some(v) => match v.as_str() {
                "off" | "false" | "0" => Mode::Off,
                "detect" | "on" | "true" => Mode::Detect,
                "enforce" => Mode::Enforce,
                "learn" => Mode::Learn,
                _ => {
                    l.problem(
                        "TANDEM_GUARD",
                        format!("{v:?} is not a guard mode (off, detect, enforce, learn); using off"),
                    );
                    Mode::Off
                }
            },
        };
        let mut c = GuardConfig {
            mode,
            interval: l.millis("TANDEM_GUARD_INTERVAL_MS", DEFAULT_INTERVAL_MS, 10, 60_000),
            ..GuardConfig::default()
        };
        if let Some(v) = l.get("TANDEM_GUARD_ALLOW_EXEC") {
            c.policy.exec =
                v.split(',').filter(|p| !p.trim().is_empty()).filter_map(|p| ExecPattern::new(p).ok()).collect();
        }
        if let Some(v) = l.get("TANDEM_GUARD_ALLOW_NET") {
            let mut rules = Vec::new();
            for entry in v.split(',').filter(|p| !p.trim().is_empty()) {
                match NetRule::parse(entry) {
                    Ok(r) => rules.push(r),
                    Err(why) => l.problem("TANDEM_GUARD_ALLOW_NET", format!("{why}; skipped")),
                }
            }
            c.policy.net = rules;
        }
        if let Some(v) = l.get("TANDEM_GUARD_WATCH_FILES") {
            for entry in v.split(',').filter(|p| !p.trim().is_empty()) {
                match WatchPattern::new(entry) {
                    Ok(w) => c.policy.watch.push(w),
                    Err(why) => l.problem("TANDEM_GUARD_WATCH_FILES", format!("{why}; skipped")),
                }
            }
        }
        c.policy.runtime_api = l.get("AWS_LAMBDA_RUNTIME_API").and_then(|v| runtime_api(&v));
        c.kill_runtime = l.boolean("TANDEM_GUARD_KILL_RUNTIME", false);
        c.policy_out = l.absolute_path("TANDEM_GUARD_POLICY_OUT", DEFAULT_POLICY_OUT);
        if c.mode == Mode::Off {
            return c;
        }
        if c.kill_runtime && c.mode != Mode::Enforce {
            l.problem("TANDEM_GUARD_KILL_RUNTIME", format!("set, but TANDEM_GUARD is {}; ignored", c.mode.as_str()));
        }
        c
    }

    /// Drops the watched files whose directory does not exist (inotify watches the
    /// directory; the tree is never walked to wait for one) or that name a directory,
    /// and says so. Nothing to check when the guard is off.
    pub fn check_files(&mut self) -> Vec<Problem> {
        if self.mode == Mode::Off {
            return Vec::new();
        }
        let mut problems = Vec::new();
        self.policy.watch.retain(|w| {
            let why = if !is_dir(Path::new(w.dir())) {
                format!("{w}: {} is not an existing directory; not watched", w.dir())
            } else if !w.is_glob() && is_dir(Path::new(&w.to_string())) {
                format!("{w} is a directory, not a file; not watched")
            } else {
                return true;
            };
            problems.push(Problem { key: "TANDEM_GUARD_WATCH_FILES".into(), message: why });
            false
        });
        problems
    }

    /// The `check-config` line (none when off).
    pub fn describe(&self, out: &mut String) {
        if self.mode == Mode::Off {
            return;
        }
        let exec: Vec<&str> = self.policy.exec.iter().map(ExecPattern::as_str).collect();
        let net: Vec<String> = self.policy.net.iter().map(ToString::to_string).collect();
        let _ = write!(
            out,
            "  guard: {}, every {} ms; exec allowed: {}; net allowed: {}",
            self.mode.as_str(),
            self.interval.as_millis(),
            if exec.is_empty() { "none".into() } else { exec.join(", ") },
            if net.is_empty() { "none".into() } else { net.join(", ") },
        );
        if let Some((ip, port)) = self.policy.runtime_api {
            let _ = write!(out, " (and the Runtime API {})", SocketAddr::new(ip, port));
        }
        if !self.policy.watch.is_empty() {
            let files: Vec<String> = self.policy.watch.iter().map(ToString::to_string).collect();
            let _ = write!(out, "; writes watched: {}", files.join(", "));
        }
        match self.mode {
            Mode::Enforce => {
                let _ =
                    write!(out, "; kills offenders{}", if self.kill_runtime { ", the runtime included" } else { "" });
            }
            Mode::Learn => {
                let _ = write!(out, "; policy written to {}", self.policy_out.display());
            }
            _ => {}
        }
        out.push('\n');
    }
}

fn is_dir(p: &Path) -> bool {
    std::fs::metadata(p).is_ok_and(|m| m.is_dir())
}

/// `AWS_LAMBDA_RUNTIME_API` (`127.0.0.1:9001`, `[::1]:9001`) as an address; a host
/// name is not resolved (no DNS at start): only the loopback default covers it then.
fn runtime_api(v: &str) -> Option<(IpAddr, u16)> {
    let a: SocketAddr = v.trim().parse().ok()?;
    Some((super::procfs::canonical(a.ip()), a.port()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(pairs: &[(&str, &str)]) -> (GuardConfig, Vec<String>) {
        let map: std::collections::HashMap<String, String> =
            pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        let get = move |k: &str| map.get(k).cloned();
        let mut l = Loader::new(&get);
        let c = GuardConfig::load(&mut l);
        (c, l.into_problems().iter().map(ToString::to_string).collect())
    }

    #[test]
    fn off_by_default() {
        let (c, problems) = load(&[]);
        assert_eq!(c, GuardConfig::default());
        assert!(problems.is_empty());
        let mut s = String::new();
        c.describe(&mut s);
        assert_eq!(s, "", "nothing to say when off");
    }

    #[test]
    fn settings_read() {
        let (c, problems) = load(&[
            ("TANDEM_GUARD", "Enforce"),
            ("TANDEM_GUARD_INTERVAL_MS", "250"),
            ("TANDEM_GUARD_ALLOW_EXEC", "/usr/bin/*, */node ,"),
            ("TANDEM_GUARD_ALLOW_NET", "10.0.0.0/8:443,bogus,[::1]:80"),
            ("TANDEM_GUARD_KILL_RUNTIME", "true"),
            ("AWS_LAMBDA_RUNTIME_API", "169.254.100.1:9001"),
            ("TANDEM_GUARD_WATCH_FILES", "/var/task/*.py, relative.txt,/etc/hosts"),
        ]);
        assert_eq!(c.mode, Mode::Enforce);
        assert_eq!(c.interval, Duration::from_millis(250));
        assert_eq!(c.policy.exec.iter().map(ExecPattern::as_str).collect::<Vec<_>>(), ["/usr/bin/*", "*/node"]);
        assert_eq!(c.policy.net.iter().map(ToString::to_string).collect::<Vec<_>>(), ["10.0.0.0/8:443", "[::1]:80"]);
        assert_eq!(c.policy.runtime_api, Some(("169.254.100.1".parse().expect("ip"), 9001)));
        assert!(c.kill_runtime);
        let watched: Vec<String> = c.policy.watch.iter().map(ToString::to_string).collect();
        assert_eq!(watched, ["/var/task/*.py", "/etc/hosts"]);
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(problems[0].starts_with("TANDEM_GUARD_ALLOW_NET: \"bogus\" is not a network rule"), "{}", problems[0]);
        assert!(problems[1]
            .starts_with("TANDEM_GUARD_WATCH_FILES: \"relative.txt\" is not a watched file (not an absolute"));
        let mut s = String::new();
        c.describe(&mut s);
        assert_eq!(
            s,
            "  guard: enforce, every 250 ms; exec allowed: /usr/bin/*, */node; net allowed: 10.0.0.0/8:443, [::1]:80 \
             (and the Runtime API 169.254.100.1:9001); writes watched: /var/task/*.py, /etc/hosts; kills offenders, \
             the runtime included\n"
        );
    }

    #[test]
    fn watched_directories_must_exist() {
        let dir = std::env::temp_dir().join(format!("tandem-guard-watch-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("sub")).expect("mkdir");
        let d = dir.display();
        let list = format!("{d}/*.conf,{d}/missing/*.conf,{d}/sub,{d}/app.conf");
        let (mut c, problems) = load(&[("TANDEM_GUARD", "detect"), ("TANDEM_GUARD_WATCH_FILES", &list)]);
        assert!(problems.is_empty(), "{problems:?}");
        let problems: Vec<String> = c.check_files().iter().map(ToString::to_string).collect();
        let watched: Vec<String> = c.policy.watch.iter().map(ToString::to_string).collect();
        assert_eq!(watched, [format!("{d}/*.conf"), format!("{d}/app.conf")], "a file not there yet is watched");
        assert_eq!(
            problems,
            [
                format!("TANDEM_GUARD_WATCH_FILES: {d}/missing/*.conf: {d}/missing is not an existing directory; not watched"),
                format!("TANDEM_GUARD_WATCH_FILES: {d}/sub is a directory, not a file; not watched"),
            ]
        );
        let (mut off, _) = load(&[("TANDEM_GUARD_WATCH_FILES", &list)]);
        assert!(off.check_files().is_empty(), "nothing checked when off");
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn from_the_config_file() {
        let toml =
            "tandem_guard = \"enforce\"\n[guard]\ninterval_ms = 200\nallow_exec = [\"/usr/bin/*\", \"/bin/sh -c *\"]\n\
                    allow_net = [\"10.0.0.0/8:443\", \"::1\"]\nkill_runtime = true\npolicy_out = \"/tmp/p.toml\"\n\
                    watch_files = [\"/etc/hosts\", \"/var/task/*.py\"]\n";
        let env = |k: &str| match k {
            "TANDEM_CONFIG" => Some("/etc/tandem.toml".to_owned()),
            "TANDEM_GUARD_INTERVAL_MS" => Some("300".to_owned()),
            _ => None,
        };
        let (c, problems) = crate::config::Config::load_with(env, |_| Ok(toml.to_owned()));
        assert!(problems.is_empty(), "{problems:?}");
        let g = c.guard;
        assert_eq!(g.mode, Mode::Enforce);
        assert_eq!(g.interval, Duration::from_millis(300), "the environment wins");
        assert_eq!(g.policy.exec.iter().map(ExecPattern::as_str).collect::<Vec<_>>(), ["/usr/bin/*", "/bin/sh -c *"]);
        assert_eq!(g.policy.net.iter().map(ToString::to_string).collect::<Vec<_>>(), ["10.0.0.0/8:443", "::1"]);
        assert!(g.kill_runtime);
        assert_eq!(g.policy_out, PathBuf::from("/tmp/p.toml"));
        let watched: Vec<String> = g.policy.watch.iter().map(ToString::to_string).collect();
        assert_eq!(watched, ["/etc/hosts", "/var/task/*.py"]);
    }

    #[test]
    fn bad_values_fall_back() {
        let (c, problems) = load(&[
            ("TANDEM_GUARD", "paranoid"),
            ("TANDEM_GUARD_INTERVAL_MS", "1"),
            ("TANDEM_GUARD_POLICY_OUT", "relative.toml"),
        ]);
        assert_eq!(c.mode, Mode::Off);
        assert_eq!(c.interval, Duration::from_millis(DEFAULT_INTERVAL_MS));
        assert_eq!(c.policy_out, PathBuf::from(DEFAULT_POLICY_OUT));
        assert_eq!(problems.len(), 3, "{problems:?}");
        assert!(problems[0].contains("not a guard mode"), "{}", problems[0]);
        let (c, problems) = load(&[("TANDEM_GUARD", "learn"), ("TANDEM_GUARD_KILL_RUNTIME", "yes")]);
        assert_eq!(c.mode, Mode::Learn);
        assert_eq!(problems, ["TANDEM_GUARD_KILL_RUNTIME: set, but TANDEM_GUARD is learn; ignored"]);
    }
}
