//! guard::policy: what the function may do: the executables it may start (glob
//! patterns) and the peers it may connect to (CIDR blocks with ports). Owns their
//! syntax, their matching, and the text `learn` mode writes (a `[guard]` table that,
//! used as the `TANDEM_CONFIG` file, allows everything that was seen). Pure.
//!
//! Exec patterns match a process's executable path or its command line (arguments
//! joined by spaces); `*` matches any run of characters (`/` included), `?` one.
//! Network entries are `ADDR[/PREFIX][:PORTS]` for IPv4 and `[ADDR[/PREFIX]]:PORTS` or
//! `ADDR[/PREFIX]` for IPv6, where PORTS is `*`, `N` or `N-M` (no port: any).

use std::collections::BTreeSet;
use std::fmt;
use std::net::IpAddr;

/// One allowed block of peers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NetRule {
    /// The network's address (host bits cleared).
    pub addr: IpAddr,
    /// Its prefix length (32 or 128 for one address).
    pub prefix: u8,
    /// Allowed ports, inclusive.
    pub ports: (u16, u16),
}

impl NetRule {
    /// One address, every port.
    pub fn host(addr: IpAddr) -> NetRule {
        let prefix = if addr.is_ipv4() { 32 } else { 128 };
        NetRule { addr, prefix, ports: (0, u16::MAX) }
    }

    /// Parses one entry (see the module documentation).
    pub fn parse(s: &str) -> Result<NetRule, String> {
        let s = s.trim();
        let bad =
            |why: &str| format!("{s:?} is not a network rule ({why}; e.g. 10.0.0.0/8:443, 127.0.0.1, [::1]:8080)");
        let (net, ports) = if let Some(rest) = s.strip_prefix('[') {
            let (net, after) = rest.split_once(']').ok_or_else(|| bad("unclosed ["))?;
            match after {
                "" => (net, None),
                p => (net, Some(p.strip_prefix(':').ok_or_else(|| bad("expected :PORTS after ]"))?)),
            }
        } else if s.matches(':').count() > 1 {
            (s, None)
        } else {
            match s.split_once(':') {
                Some((n, p)) => (n, Some(p)),
                None => (s, None),
            }
        };
        let (addr, prefix) = match net.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (net, None),
        };
        let addr: IpAddr = addr.parse().map_err(|_| bad("bad address"))?;
        let addr = super::procfs::canonical(addr);
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) => p.parse::<u8>().ok().filter(|p| *p <= max).ok_or_else(|| bad("bad prefix length"))?,
        };
        let ports = match ports.map(str::trim) {
            None | Some("*") => (0, u16::MAX),
            Some(p) => {
                let port = |x: &str| x.trim().parse::<u16>().map_err(|_| bad("bad port"));
                match p.split_once('-') {
                    Some((lo, hi)) => {
                        let (lo, hi) = (port(lo)?, port(hi)?);
                        if lo > hi {
                            return Err(bad("empty port range"));
                        }
                        (lo, hi)
                    }
                    None => {
                        let n = port(p)?;
                        (n, n)
                    }
                }
            }
        };
        Ok(NetRule { addr: mask(addr, prefix), prefix, ports })
    }

    /// Whether the rule allows `ip` (canonical) on `port`.
    pub fn allows(&self, ip: IpAddr, port: u16) -> bool {
        (self.ports.0..=self.ports.1).contains(&port)
            && ip.is_ipv4() == self.addr.is_ipv4()
            && mask(ip, self.prefix) == self.addr
    }
}

impl fmt::Display for NetRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let full = if self.addr.is_ipv4() { 32 } else { 128 };
        let net = if self.prefix == full { self.addr.to_string() } else { format!("{}/{}", self.addr, self.prefix) };
        let ports = match self.ports {
            (0, u16::MAX) => None,
            (a, b) if a == b => Some(a.to_string()),
            (a, b) => Some(format!("{a}-{b}")),
        };
        match (self.addr.is_ipv4(), ports) {
            (_, None) => write!(f, "{net}"),
            (true, Some(p)) => write!(f, "{net}:{p}"),
            (false, Some(p)) => write!(f, "[{net}]:{p}"),
        }
    }
}

fn mask(ip: IpAddr, prefix: u8) -> IpAddr {
    match ip {
        IpAddr::V4(v4) => {
            let bits = u32::from(v4);
            let m = if prefix == 0 { 0 } else { u32::MAX << (32 - u32::from(prefix)) };
            IpAddr::V4((bits & m).into())
        }
        IpAddr::V6(v6) => {
            let bits = u128::from(v6);
            let m = if prefix == 0 { 0 } else { u128::MAX << (128 - u32::from(prefix)) };
            IpAddr::V6((bits & m).into())
        }
    }
}

/// A glob over an executable path or a command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecPattern(String);

impl ExecPattern {
    /// A pattern (`/usr/bin/*`, `*/node`, `/bin/sh -c *`).
    pub fn new(pattern: &str) -> Result<ExecPattern, String> {
        let p = pattern.trim();
        if p.is_empty() {
            return Err("an empty exec pattern".into());
        }
        Ok(ExecPattern(p.to_owned()))
    }

    /// The pattern's text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether the pattern matches `text` as a whole.
    pub fn matches(&self, text: &str) -> bool {
        glob(self.0.as_bytes(), text.as_bytes())
    }
}

/// A file whose writes are findings: an absolute path, its last component possibly a
/// glob (`/var/task/*.py`); the directory itself is literal, since it is what inotify
/// watches (it must exist when the guard starts: the tree is never walked).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WatchPattern {
    dir: String,
    name: String,
}

impl WatchPattern {
    /// Parses one entry (`/etc/hosts`, `/var/task/*.py`).
    pub fn new(entry: &str) -> Result<WatchPattern, String> {
        let e = entry.trim();
        let bad = |why: &str| format!("{e:?} is not a watched file ({why}; e.g. /var/task/app.py, /var/task/*.py)");
        if !e.starts_with('/') {
            return Err(bad("not an absolute path"));
        }
        let Some((dir, name)) = e.rsplit_once('/') else { return Err(bad("not an absolute path")) };
        if name.is_empty() || name == "." || name == ".." {
            return Err(bad("no file name"));
        }
        if dir.contains(['*', '?']) {
            return Err(bad("a glob is allowed in the file name only"));
        }
        let dir = if dir.is_empty() { "/" } else { dir };
        Ok(WatchPattern { dir: dir.to_owned(), name: name.to_owned() })
    }

    /// The directory to watch.
    pub fn dir(&self) -> &str {
        &self.dir
    }

    /// Whether the name is a glob (else it names one file).
    pub fn is_glob(&self) -> bool {
        self.name.contains(['*', '?'])
    }

    /// Whether `path` (as inotify reports it: the watched directory joined with a
    /// name) is one of the files.
    pub fn matches(&self, path: &str) -> bool {
        let Some((dir, name)) = path.rsplit_once('/') else { return false };
        let dir = if dir.is_empty() { "/" } else { dir };
        dir == self.dir && glob(self.name.as_bytes(), name.as_bytes())
    }
}

impl fmt::Display for WatchPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sep = if self.dir.ends_with('/') { "" } else { "/" };
        write!(f, "{}{sep}{}", self.dir, self.name)
    }
}

/// Iterative glob (`*`, `?`) with one backtrack point: linear in practice, never
/// exponential whatever the pattern (a user's pattern must not cost a scan).
fn glob(p: &[u8], t: &[u8]) -> bool {
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        match p.get(pi) {
            Some(b'*') => {
                star = Some((pi, ti));
                pi += 1;
            }
            Some(&c) if c == b'?' || c == t[ti] => {
                pi += 1;
                ti += 1;
            }
            _ => match star {
                Some((sp, st)) => {
                    pi = sp + 1;
                    ti = st + 1;
                    star = Some((sp, st + 1));
                }
                None => return false,
            },
        }
    }
    p[pi..].iter().all(|&c| c == b'*')
}

/// The policy a scan is judged by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    /// Executables the function may start (besides the runtime itself).
    pub exec: Vec<ExecPattern>,
    /// Peers it may connect to.
    pub net: Vec<NetRule>,
    /// The Runtime API's address (`AWS_LAMBDA_RUNTIME_API`): always allowed.
    pub runtime_api: Option<(IpAddr, u16)>,
    /// Files whose writes are findings (`TANDEM_GUARD_WATCH_FILES`).
    pub watch: Vec<WatchPattern>,
}

/// The network allow-list when none is configured: loopback's one address in each
/// family (not the rest of 127.0.0.0/8: a tunnel or a proxy may listen there).
pub const DEFAULT_NET: &[&str] = &["127.0.0.1", "::1"];

impl Default for Policy {
    fn default() -> Self {
        Policy {
            exec: Vec::new(),
            net: DEFAULT_NET.iter().filter_map(|s| NetRule::parse(s).ok()).collect(),
            runtime_api: None,
            watch: Vec::new(),
        }
    }
}

impl Policy {
    /// Whether a process with this executable and command line may run.
    pub fn allows_exec(&self, exe: &str, cmdline: &str) -> bool {
        self.exec.iter().any(|p| p.matches(exe) || (!cmdline.is_empty() && p.matches(cmdline)))
    }

    /// The watch pattern `path` matches, if any: a write to it is a finding.
    pub fn watched(&self, path: &str) -> Option<&WatchPattern> {
        self.watch.iter().find(|w| w.matches(path))
    }

    /// Whether a connection to `ip:port` is allowed.
    pub fn allows_net(&self, ip: IpAddr, port: u16) -> bool {
        let ip = super::procfs::canonical(ip);
        self.runtime_api == Some((ip, port)) || self.net.iter().any(|r| r.allows(ip, port))
    }
}

/// What `learn` mode has seen, kept sorted and without repeats so the text it writes
/// is stable from one run to the next.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Learned {
    /// Executables (paths) started, and executable files dropped.
    pub exec: BTreeSet<String>,
    /// Peers connected to, with their port.
    pub net: BTreeSet<(IpAddr, u16)>,
}

impl Learned {
    /// The policy text: a `[guard]` table for the `TANDEM_CONFIG` file. Used as that
    /// file (with `TANDEM_GUARD=detect`), it allows everything seen: one entry per
    /// executable path and per peer address and port. Review before use: it allows
    /// whatever happened while learning, a compromise included.
    pub fn policy_text(&self) -> String {
        let list = |items: Vec<String>| -> String {
            if items.is_empty() {
                return "[]".into();
            }
            let quoted: Vec<String> = items.iter().map(|s| format!("  {},", toml_string(s))).collect();
            format!("[\n{}\n]", quoted.join("\n"))
        };
        let exec: Vec<String> = self.exec.iter().cloned().collect();
        let net: Vec<String> = self
            .net
            .iter()
            .map(|&(ip, port)| NetRule { ports: (port, port), ..NetRule::host(ip) }.to_string())
            .collect();
        format!(
            "# tandem guard: the policy learned from what was seen (review it before use).\n\
             # Use as the TANDEM_CONFIG file, or copy the lists into TANDEM_GUARD_ALLOW_EXEC\n\
             # and TANDEM_GUARD_ALLOW_NET (comma-separated).\n\
             [guard]\nallow_exec = {}\nallow_net = {}\n",
            list(exec),
            list(net)
        )
    }
}

/// A TOML basic string.
fn toml_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => out.push_str(&format!("\\u{:04X}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("an address")
    }

    #[test]
    fn net_rules_parse_and_match() {
        let r = NetRule::parse("10.0.0.0/8:443").expect("parses");
        assert!(r.allows(ip("10.1.2.3"), 443));
        assert!(!r.allows(ip("10.1.2.3"), 80));
        assert!(!r.allows(ip("11.0.0.1"), 443));
        let r = NetRule::parse("10.9.9.9/8").expect("parses");
        assert_eq!(r.to_string(), "10.0.0.0/8", "host bits cleared");
        assert!(r.allows(ip("10.200.0.1"), 1));
        let r = NetRule::parse("127.0.0.1").expect("parses");
        assert!(r.allows(ip("127.0.0.1"), 9001));
        assert!(!r.allows(ip("127.0.0.2"), 9001), "one address, not the /8");
        let r = NetRule::parse("[2001:db8::/32]:8000-8100").expect("parses");
        assert!(r.allows(ip("2001:db8:1::5"), 8050));
        assert!(!r.allows(ip("2001:db8:1::5"), 8101));
        assert!(!r.allows(ip("10.0.0.1"), 8050), "families never mix");
        assert_eq!(r.to_string(), "[2001:db8::/32]:8000-8100");
        let r = NetRule::parse("::1").expect("parses");
        assert!(r.allows(ip("::1"), 1));
        assert_eq!(NetRule::parse("[::1]:*").expect("parses").to_string(), "::1");
        assert_eq!(NetRule::parse(" 192.168.0.0/16:53 ").expect("parses").to_string(), "192.168.0.0/16:53");
        assert_eq!(NetRule::parse("0.0.0.0/0:443").expect("parses").to_string(), "0.0.0.0/0:443");
        // A mapped address is its IPv4 address.
        assert_eq!(NetRule::parse("::ffff:10.0.0.1").expect("parses").to_string(), "10.0.0.1");
        for bad in ["", "example.com", "10.0.0.0/33", "10.0.0.1:70000", "10.0.0.1:9-8", "[::1", "[::1]443", "1.2.3.4:x"]
        {
            assert!(NetRule::parse(bad).is_err(), "{bad:?} must be refused");
        }
    }

    #[test]
    fn globs() {
        let p = |s: &str| ExecPattern::new(s).expect("a pattern");
        assert!(p("/usr/bin/*").matches("/usr/bin/python3.12"));
        assert!(p("*/node").matches("/var/lang/bin/node"));
        assert!(!p("*/node").matches("/var/lang/bin/nodejs"));
        assert!(p("/bin/sh -c *").matches("/bin/sh -c sleep 5"));
        assert!(p("/usr/bin/sleep").matches("/usr/bin/sleep"));
        assert!(!p("/usr/bin/sleep").matches("/usr/bin/sleeper"));
        assert!(p("py?hon*").matches("python3"));
        assert!(p("*a*a*a*a*b").matches("aaaaaaaaaaaaaaaaaab"));
        assert!(!p("*a*a*a*a*b").matches("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"));
        assert!(ExecPattern::new("  ").is_err());
    }

    #[test]
    fn watch_patterns() {
        let w = |s: &str| WatchPattern::new(s).expect("a watch pattern");
        let conf = w(" /var/task/*.conf ");
        assert_eq!((conf.dir(), conf.is_glob(), conf.to_string().as_str()), ("/var/task", true, "/var/task/*.conf"));
        assert!(conf.matches("/var/task/app.conf"));
        assert!(!conf.matches("/var/task/app.conf.bak"));
        assert!(!conf.matches("/var/task/sub/app.conf"), "the directory is literal");
        assert!(!conf.matches("/var/tasks/app.conf"));
        let hosts = w("/etc/hosts");
        assert!(!hosts.is_glob());
        assert!(hosts.matches("/etc/hosts") && !hosts.matches("/etc/hosts2"));
        let root = w("/boot.cfg");
        assert_eq!((root.dir(), root.to_string().as_str()), ("/", "/boot.cfg"));
        assert!(root.matches("/boot.cfg"));
        for bad in ["", "etc/hosts", "/etc/", "/etc/..", "/var/*/app.py", "/tmp/?/x"] {
            assert!(WatchPattern::new(bad).is_err(), "{bad:?} must be refused");
        }
        let p = Policy { watch: vec![conf, hosts], ..Policy::default() };
        assert_eq!(p.watched("/etc/hosts").map(ToString::to_string).as_deref(), Some("/etc/hosts"));
        assert!(p.watched("/etc/passwd").is_none());
    }

    #[test]
    fn default_policy() {
        let mut policy = Policy::default();
        assert!(policy.allows_net(ip("127.0.0.1"), 4000));
        assert!(policy.allows_net(ip("::1"), 4000));
        assert!(policy.allows_net(ip("::ffff:127.0.0.1"), 4000));
        assert!(!policy.allows_net(ip("127.0.0.2"), 4000));
        assert!(!policy.allows_net(ip("169.254.100.1"), 9001));
        policy.runtime_api = Some((ip("169.254.100.1"), 9001));
        assert!(policy.allows_net(ip("169.254.100.1"), 9001));
        assert!(!policy.allows_net(ip("169.254.100.1"), 9002));
        assert!(!policy.allows_exec("/bin/sh", "/bin/sh -c id"));
        policy.exec.push(ExecPattern::new("/bin/sh -c *").expect("a pattern"));
        assert!(policy.allows_exec("/usr/bin/dash", "/bin/sh -c id"), "the command line may match");
    }

    #[test]
    fn learned_policy_text_round_trips() {
        let mut l = Learned::default();
        l.exec.insert("/usr/bin/dash".into());
        l.exec.insert("/tmp/we\"ird".into());
        l.net.insert((ip("127.0.0.2"), 8080));
        l.net.insert((ip("2001:db8::1"), 443));
        let text = l.policy_text();
        let table: serde_json::Map<String, serde_json::Value> = basic_toml::from_str(&text).expect("valid TOML");
        let guard = &table["guard"];
        assert_eq!(guard["allow_exec"], serde_json::json!(["/tmp/we\"ird", "/usr/bin/dash"]));
        assert_eq!(guard["allow_net"], serde_json::json!(["127.0.0.2:8080", "[2001:db8::1]:443"]));
        for rule in guard["allow_net"].as_array().expect("a list") {
            let r = NetRule::parse(rule.as_str().expect("text")).expect("what learn writes parses");
            assert!(l.net.iter().any(|&(ip, port)| r.allows(ip, port)));
        }
        assert!(Learned::default().policy_text().contains("allow_exec = []"));
    }
}
