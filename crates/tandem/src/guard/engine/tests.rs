//! The engine on recorded /proc text: a sandbox under the emulator (pid 900) with the
//! guard (902), the Python runtime (901) and what the function started.

use super::*;
use crate::guard::policy::{ExecPattern, NetRule};
use crate::guard::procfs::{parse_cmdline, parse_exe, parse_net, parse_stat, socket_inode, Proto};

/// `/proc/PID/stat` for `pid` with `comm`, parent `ppid`, started at `start` ticks.
fn stat(pid: u32, comm: &str, ppid: u32, start: u64) -> String {
    format!("{pid} ({comm}) S {ppid} {pid} {ppid} 0 -1 4194560 100 0 0 0 3 1 0 0 20 0 1 0 {start} 3035545 466 18446744073709551615 1 1 0 0 0 0 0 0 2 0 0 0 17 1 0 0 0 0 0\n")
}

struct Proc {
    pid: u32,
    ppid: u32,
    comm: &'static str,
    start: u64,
    exe: &'static str,
    cmdline: &'static [u8],
    fds: &'static [&'static str],
}

const HOST_SHELL: Proc = Proc {
    pid: 500,
    ppid: 1,
    comm: "bash",
    start: 10,
    exe: "/usr/bin/bash",
    cmdline: b"bash\0",
    fds: &["socket:[100]"],
};
const EMULATOR: Proc = Proc {
    pid: 900,
    ppid: 500,
    comm: "guard-5e0d1",
    start: 900,
    exe: "/work/target/debug/deps/guard",
    cmdline: b"guard\0",
    fds: &["socket:[200]"],
};
const RUNTIME: Proc = Proc {
    pid: 901,
    ppid: 900,
    comm: "python3",
    start: 1000,
    exe: "/usr/bin/python3.12",
    cmdline: b"python3\0-m\0awslambdaric\0handlers.handle\0",
    fds: &["/dev/null", "pipe:[3000]", "socket:[301]", "socket:[303]", "anon_inode:[eventpoll]"],
};
const TANDEM: Proc = Proc {
    pid: 902,
    ppid: 900,
    comm: "tandem",
    start: 990,
    exe: "/opt/extensions/tandem",
    cmdline: b"/opt/extensions/tandem\0",
    fds: &["socket:[400]"],
};
const SHELL: Proc = Proc {
    pid: 910,
    ppid: 901,
    comm: "sh",
    start: 1210,
    exe: "/usr/bin/dash",
    cmdline: b"/bin/sh\0-c\0sleep 5\0",
    fds: &["socket:[302]"],
};
const SLEEP: Proc =
    Proc { pid: 911, ppid: 910, comm: "sleep", start: 1211, exe: "/usr/bin/sleep", cmdline: b"sleep\x005\0", fds: &[] };
/// A fork of the runtime that has not exec'd yet.
const FORK: Proc = Proc {
    pid: 912,
    ppid: 901,
    comm: "python3",
    start: 1212,
    exe: "/usr/bin/python3.12",
    cmdline: b"python3\0-m\0awslambdaric\0handlers.handle\0",
    fds: &["socket:[301]"],
};

// Recorded /proc/net/tcp: the runtime's Runtime API connection (301 to 127.0.0.1:9001),
// its connections to 127.0.0.2:8080 (303; 302 shared with the shell) and to
// 127.0.0.1:8081 (allowed), tandem's own (400 to 127.0.0.2:4318), the emulator's
// listener and the host's connection (100 to 203.0.113.9:443).
const TCP: &str = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n\
   0: 0100007F:2329 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 200 1 0000000000000000 100 0 0 10 0\n\
   1: 0100007F:C001 0100007F:2329 01 00000000:00000000 00:00000000 00000000  1000        0 301 1 0000000000000000 20 4 30 10 -1\n\
   2: 0100007F:C002 0200007F:1F90 01 00000000:00000000 00:00000000 00000000  1000        0 302 1 0000000000000000 20 4 30 10 -1\n\
   3: 0100007F:C003 0100007F:1F91 01 00000000:00000000 00:00000000 00000000  1000        0 303 1 0000000000000000 20 4 30 10 -1\n\
   4: 0100007F:C004 0200007F:10E1 01 00000000:00000000 00:00000000 00000000  1000        0 400 1 0000000000000000 20 4 30 10 -1\n\
   5: 0A00A8C0:C005 097100CB:01BB 01 00000000:00000000 00:00000000 00000000  1000        0 100 1 0000000000000000 20 4 30 10 -1\n";

/// What the I/O edge would read: every stat, the details `engine.unknown` asks for,
/// fds of the processes in scope, the socket table.
fn read(engine: &Engine, procs: &[&Proc]) -> (Scope, Reading) {
    let stats: Vec<Stat> = procs.iter().filter_map(|p| parse_stat(&stat(p.pid, p.comm, p.ppid, p.start))).collect();
    let scope = engine.scope(&stats);
    let mut reading = Reading { stats, ..Reading::default() };
    for pid in engine.unknown(&scope, &reading.stats) {
        let Some(p) = procs.iter().find(|p| p.pid == pid) else { continue };
        let d = Details { exe: Some(parse_exe(p.exe)), cmdline: parse_cmdline(p.cmdline), uid: Some(1000) };
        reading.details.insert(pid, d);
    }
    for (pid, _) in scope.iter() {
        let Some(p) = procs.iter().find(|p| p.pid == pid) else { continue };
        reading.sockets_of.insert(pid, p.fds.iter().filter_map(|l| socket_inode(l)).collect());
    }
    reading.sockets = parse_net(TCP, Proto::Tcp);
    (scope, reading)
}

fn policy() -> Policy {
    Policy { runtime_api: Some(("127.0.0.1".parse().expect("ip"), 9001)), ..Policy::default() }
}

fn engine(mode: Mode) -> Engine {
    Engine::new(mode, policy(), false, 900, 902)
}

const ALL: &[&Proc] = &[&HOST_SHELL, &EMULATOR, &RUNTIME, &TANDEM, &SHELL, &SLEEP];

#[test]
fn detect_reports_each_thing_once_with_its_request() {
    let mut e = engine(Mode::Detect);
    // INIT: only the runtime; its Runtime API connection and allowed peers are fine.
    let (scope, r) = read(&e, &[&HOST_SHELL, &EMULATOR, &RUNTIME, &TANDEM]);
    assert!(e.judge(&scope, &r).is_empty());
    e.on_invoke("req-1", 1200);
    let (scope, r) = read(&e, ALL);
    assert_eq!(e.unknown(&scope, &r.stats), vec![910, 911], "only the new processes are read again");
    let f = e.judge(&scope, &r);
    let rules: Vec<(&str, u32)> =
        f.iter().map(|f| (f.rule, f.evidence["process.pid"].as_u64().map_or(0, |p| p as u32))).collect();
    assert_eq!(rules, vec![(rule::EXEC, 910), (rule::EXEC, 911), (rule::NET, 910)], "{f:#?}");
    assert!(f.iter().all(|f| f.request_id.as_deref() == Some("req-1")));
    assert_eq!(f[0].evidence["process.command_line"], "/bin/sh -c sleep 5");
    assert_eq!(f[0].evidence["process.executable.path"], "/usr/bin/dash");
    assert_eq!(f[0].evidence["process.ancestry"], serde_json::json!(["901 python3 -m awslambdaric handlers.handle"]));
    assert_eq!(f[1].evidence["process.ancestry"].as_array().map(Vec::len), Some(2));
    assert_eq!(f[2].evidence["network.peer.address"], "127.0.0.2");
    assert_eq!(f[2].evidence["network.peer.port"], 8080);
    assert!(f.iter().all(|f| f.kill.is_none()), "detect kills nothing");
    // Nothing new: nothing told again.
    let (scope, r) = read(&e, ALL);
    assert!(e.judge(&scope, &r).is_empty());
}

#[test]
fn never_the_host_tandem_or_the_runtime() {
    let mut e = engine(Mode::Enforce);
    e.on_invoke("req-1", 1100);
    let (scope, r) = read(&e, &[&HOST_SHELL, &EMULATOR, &RUNTIME, &TANDEM]);
    assert!(scope.get(500).is_none() && scope.get(900).is_none() && scope.get(902).is_none());
    assert!(e.judge(&scope, &r).is_empty(), "the host's and tandem's sockets are not the sandbox's");
}

#[test]
fn attributed_by_start_time_after_a_freeze() {
    let mut e = engine(Mode::Detect);
    e.on_invoke("req-1", 1200);
    e.on_invoke("req-2", 5000);
    // The shell started at 1210 (during req-1) is first seen during req-2.
    let (scope, r) = read(&e, &[&EMULATOR, &RUNTIME, &TANDEM, &SLEEP, &SHELL]);
    let f = e.judge(&scope, &r);
    assert_eq!(f[0].request_id.as_deref(), Some("req-1"));
    assert_eq!(f.last().map(|f| f.request_id.as_deref()), Some(Some("req-2")), "a connection: when seen");
    // A process started just before tandem saw the INVOKE (the runtime got it first).
    let mut e = engine(Mode::Detect);
    e.on_invoke("req-1", 100);
    e.on_invoke("req-2", 1215);
    let (scope, r) = read(&e, &[&EMULATOR, &RUNTIME, &TANDEM, &SHELL]);
    assert_eq!(e.judge(&scope, &r)[0].request_id.as_deref(), Some("req-2"));
}

#[test]
fn enforce_kills_the_offender_never_the_runtime() {
    let mut e = engine(Mode::Enforce);
    e.on_invoke("req-1", 1200);
    // The runtime itself holds 302 → 127.0.0.2:8080.
    const RT: Proc = Proc { fds: &["socket:[301]", "socket:[302]"], ..RUNTIME };
    let (scope, r) = read(&e, &[&EMULATOR, &RT, &TANDEM]);
    let f = e.judge(&scope, &r);
    assert_eq!(f.len(), 1);
    assert_eq!(f[0].kill, None, "the runtime is never killed by default");
    assert!(f[0].summary.contains("the runtime or an extension"), "{}", f[0].summary);
    let mut e = Engine::new(Mode::Enforce, policy(), true, 900, 902);
    let (scope, r) = read(&e, &[&EMULATOR, &RT, &TANDEM]);
    assert_eq!(e.judge(&scope, &r)[0].kill, Some(901), "TANDEM_GUARD_KILL_RUNTIME=true");
    // Shared across the fork, the socket is the shell's: it is deeper.
    let mut e = engine(Mode::Enforce);
    let (scope, r) = read(&e, &[&EMULATOR, &RT, &TANDEM, &SHELL, &SLEEP]);
    let kills: Vec<Option<u32>> = e.judge(&scope, &r).iter().map(|f| f.kill).collect();
    assert_eq!(kills, vec![Some(910), Some(911), Some(910)]);
}

#[test]
fn a_fork_is_judged_once_it_execs() {
    let mut e = engine(Mode::Detect);
    let (scope, r) = read(&e, &[&EMULATOR, &RUNTIME, &TANDEM]);
    assert!(e.judge(&scope, &r).is_empty());
    let (scope, r) = read(&e, &[&EMULATOR, &RUNTIME, &TANDEM, &FORK]);
    assert!(e.judge(&scope, &r).is_empty(), "first sighting of a fork: wait");
    // It exec'd the shell (same pid, same start).
    const EXECD: Proc = Proc { exe: "/usr/bin/dash", cmdline: b"/bin/sh\0-c\0id\0", ..FORK };
    let (scope, r) = read(&e, &[&EMULATOR, &RUNTIME, &TANDEM, &EXECD]);
    let f = e.judge(&scope, &r);
    assert_eq!(f.len(), 1);
    assert_eq!(f[0].evidence["process.command_line"], "/bin/sh -c id");
    // A fork that never execs (a worker) is judged at its second sighting.
    let mut e = engine(Mode::Detect);
    for expected in [0, 1, 0, 0] {
        let (scope, r) = read(&e, &[&EMULATOR, &RUNTIME, &TANDEM, &FORK]);
        assert_eq!(e.judge(&scope, &r).len(), expected);
    }
}

#[test]
fn allow_lists() {
    let mut p = policy();
    p.exec =
        vec![ExecPattern::new("/usr/bin/sleep").expect("pattern"), ExecPattern::new("/bin/sh -c *").expect("pattern")];
    p.net.push(NetRule::parse("127.0.0.2:8080").expect("rule"));
    let mut e = Engine::new(Mode::Detect, p, false, 900, 902);
    let (scope, r) = read(&e, ALL);
    assert!(e.judge(&scope, &r).is_empty());
}

#[test]
fn files() {
    let mut e = engine(Mode::Detect);
    e.on_invoke("req-9", 1);
    assert_eq!(e.on_file("/tmp/notes.txt", false, false, 0o644), None);
    let f = e.on_file("/tmp/x/payload", true, false, 0o644).expect("an ELF is a finding");
    assert_eq!((f.rule, f.severity, f.request_id.as_deref()), (rule::FILE_ELF, Severity::High, Some("req-9")));
    assert_eq!(f.evidence["file.mode"], "0644");
    assert_eq!(e.on_file("/tmp/x/payload", true, true, 0o755), None, "one finding per path");
    let f = e.on_file("/tmp/run.sh", false, true, 0o755).expect("an executable is a finding");
    assert_eq!(f.rule, rule::FILE_EXEC);
    let mut p = policy();
    p.exec.push(ExecPattern::new("/tmp/tools/*").expect("pattern"));
    let mut e = Engine::new(Mode::Detect, p, false, 900, 902);
    assert_eq!(e.on_file("/tmp/tools/jq", true, true, 0o755), None);
}

#[test]
fn learn_writes_what_allows_everything_seen() {
    let mut e = engine(Mode::Learn);
    e.on_invoke("req-1", 1200);
    let (scope, r) = read(&e, ALL);
    assert!(e.judge(&scope, &r).is_empty(), "learn reports nothing");
    assert_eq!(e.on_file("/tmp/payload", true, true, 0o755), None);
    let text = e.take_learned().expect("something learned");
    assert_eq!(e.take_learned(), None, "nothing new");
    // Applied, the learned policy yields no finding on the same activity.
    let table: serde_json::Map<String, Value> = basic_toml::from_str(&text).expect("TOML");
    let list = |k: &str| -> Vec<String> {
        table["guard"][k]
            .as_array()
            .map(|a| a.iter().filter_map(|v| v.as_str().map(str::to_owned)).collect())
            .unwrap_or_default()
    };
    assert_eq!(list("allow_exec"), ["/tmp/payload", "/usr/bin/dash", "/usr/bin/sleep"]);
    assert_eq!(list("allow_net"), ["127.0.0.1:8081", "127.0.0.2:8080"]);
    let p = Policy {
        exec: list("allow_exec").iter().filter_map(|s| ExecPattern::new(s).ok()).collect(),
        net: list("allow_net").iter().filter_map(|s| NetRule::parse(s).ok()).collect(),
        ..policy()
    };
    let mut e = Engine::new(Mode::Detect, p, false, 900, 902);
    e.on_invoke("req-1", 1200);
    let (scope, r) = read(&e, ALL);
    assert!(e.judge(&scope, &r).is_empty());
    assert_eq!(e.on_file("/tmp/payload", true, true, 0o755), None);
}

#[test]
fn watched_writes_one_finding_per_burst() {
    use crate::guard::policy::WatchPattern;
    let watch = ["/var/task/*.conf", "/etc/hosts"].iter().map(|w| WatchPattern::new(w).expect("a pattern")).collect();
    let mut e = Engine::new(Mode::Detect, Policy { watch, ..policy() }, false, 900, 902);
    assert_eq!(e.on_write("/var/task/app.py", 1_000), None, "not watched");
    let f = e.on_write("/var/task/app.conf", 1_000).expect("a watched write during INIT");
    assert_eq!((f.kind, f.rule, f.request_id.as_deref()), (Kind::File, rule::FILE_WRITE, None));
    assert_eq!(f.evidence["file.path"], "/var/task/app.conf");
    assert_eq!(f.evidence["guard.watch_pattern"], "/var/task/*.conf");
    e.on_invoke("req-1", 100);
    // Writes 1.5 s apart for 6 s: one burst, however long it lasts.
    for t in [2_500, 4_000, 5_500, 7_000] {
        assert_eq!(e.on_write("/var/task/app.conf", t), None, "same burst at {t}");
    }
    let f = e.on_write("/etc/hosts", 7_000).expect("another file is its own burst");
    assert_eq!(f.request_id.as_deref(), Some("req-1"));
    let f = e.on_write("/var/task/app.conf", 9_000).expect("quiet for 2 s: a new burst");
    assert_eq!(f.request_id.as_deref(), Some("req-1"));
    // A flood of watched files written at once: memory stays bounded.
    let flood = vec![WatchPattern::new("/var/task/*").expect("a pattern")];
    let mut f = Engine::new(Mode::Detect, Policy { watch: flood, ..policy() }, false, 900, 902);
    for i in 0..(FILES_KEPT + 10) {
        assert!(f.on_write(&format!("/var/task/f{i}"), 50_000).is_some());
    }
    assert!(f.writes.len() <= FILES_KEPT, "{}", f.writes.len());
    let mut learn = Engine::new(Mode::Learn, e.policy.clone(), false, 900, 902);
    assert_eq!(learn.on_write("/etc/hosts", 1), None, "learn reports nothing");
    assert_eq!(learn.take_learned(), None, "nor learns from a watch");
}

#[test]
fn the_socket_tables_are_read_only_for_a_new_socket_or_every_few_scans() {
    let mut e = engine(Mode::Detect);
    e.on_invoke("req-1", 1200);
    let (scope, r) = read(&e, ALL);
    assert_eq!(e.judge(&scope, &r).len(), 3, "two processes and one connection");
    // The same sockets held: no need to read the tables again.
    let (scope, mut r) = read(&e, ALL);
    assert!(!e.needs_tables(&r.sockets_of));
    for _ in 0..TABLES_EVERY - 2 {
        r.sockets.clear();
        r.tables_skipped = true;
        assert!(e.judge(&scope, &r).is_empty());
        assert!(!e.needs_tables(&r.sockets_of));
    }
    // Every TABLES_EVERY scans they are read anyway.
    r.tables_skipped = true;
    assert!(e.judge(&scope, &r).is_empty());
    assert!(e.needs_tables(&r.sockets_of));
    // A skipped reading forgot nothing: the same connection read again is no new finding.
    let (scope, r) = read(&e, ALL);
    assert!(e.judge(&scope, &r).is_empty(), "no duplicate finding after skipped scans");
    // A socket never seen (a new inode) makes the next scan read them.
    let mut held = r.sockets_of.clone();
    held.entry(910).or_default().push(999);
    assert!(e.needs_tables(&held));
}
