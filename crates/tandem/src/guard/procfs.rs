//! guard::procfs: parsers for the text the kernel writes under `/proc`: a process's
//! `stat`, `status`, `cmdline`, the `exe` and `fd/N` link texts, and the socket tables
//! `/proc/net/{tcp,tcp6,udp,udp6}`. Pure: every function takes the text read by the
//! I/O edge (`guard::scan`) and never touches the file system. Formats: proc(5).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// What `/proc/PID/stat` says that the guard uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stat {
    /// The process id.
    pub pid: u32,
    /// `comm` (the executable's name, at most 15 bytes, may hold spaces and parens).
    pub comm: String,
    /// The state letter (`R`, `S`, `Z`, …).
    pub state: char,
    /// The parent's pid.
    pub ppid: u32,
    /// Start time in clock ticks since boot (field 22): with the pid, the identity of
    /// a process (a pid is reused, the pair is not).
    pub start_ticks: u64,
}

/// Parses `/proc/PID/stat`. `comm` is found by the last `)`, since it may contain
/// spaces and parentheses itself.
pub fn parse_stat(text: &str) -> Option<Stat> {
    let open = text.find('(')?;
    let close = text.rfind(')')?;
    if close < open {
        return None;
    }
    let pid = text[..open].trim().parse().ok()?;
    let comm = text[open + 1..close].to_owned();
    // Fields from 3 (state) on; field n is rest[n - 3].
    let rest: Vec<&str> = text[close + 1..].split_ascii_whitespace().collect();
    let state = rest.first()?.chars().next()?;
    let ppid = rest.get(1)?.parse().ok()?;
    let start_ticks = rest.get(19)?.parse().ok()?;
    Some(Stat { pid, comm, state, ppid, start_ticks })
}

/// The real uid from `/proc/PID/status` (`Uid:` real, effective, saved, fs).
pub fn parse_status_uid(text: &str) -> Option<u32> {
    let line = text.lines().find(|l| l.starts_with("Uid:"))?;
    line["Uid:".len()..].split_ascii_whitespace().next()?.parse().ok()
}

/// `/proc/PID/cmdline`: NUL-separated arguments (a trailing NUL ends the last). Empty
/// for a kernel thread or a zombie. Invalid UTF-8 is replaced, not refused.
pub fn parse_cmdline(bytes: &[u8]) -> Vec<String> {
    let bytes = bytes.strip_suffix(&[0]).unwrap_or(bytes);
    if bytes.is_empty() {
        return Vec::new();
    }
    bytes.split(|b| *b == 0).map(|a| String::from_utf8_lossy(a).into_owned()).collect()
}

/// The `/proc/PID/exe` link text: the executable's path, and whether the file was
/// deleted after it started (the kernel appends ` (deleted)`): a binary that removed
/// itself is what a dropper does.
pub fn parse_exe(link: &str) -> (String, bool) {
    match link.strip_suffix(" (deleted)") {
        Some(path) => (path.to_owned(), true),
        None => (link.to_owned(), false),
    }
}

/// The socket inode of a `/proc/PID/fd/N` link text (`socket:[12345]`); `None` for
/// anything else (files, pipes, `anon_inode:…`).
pub fn socket_inode(link: &str) -> Option<u64> {
    link.strip_prefix("socket:[")?.strip_suffix(']')?.parse().ok()
}

/// Transport of a socket table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Proto {
    /// `/proc/net/tcp`, `/proc/net/tcp6`.
    Tcp,
    /// `/proc/net/udp`, `/proc/net/udp6`.
    Udp,
}

impl Proto {
    /// `tcp` or `udp`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
        }
    }
}

/// TCP states (include/net/tcp_states.h), as `/proc/net/tcp` prints them in hex.
pub mod tcp_state {
    /// `ESTABLISHED` (also a connected UDP socket).
    pub const ESTABLISHED: u8 = 0x01;
    /// `SYN_SENT`: connecting.
    pub const SYN_SENT: u8 = 0x02;
    /// `TIME_WAIT`: closed, kept by the kernel (no inode, no owner).
    pub const TIME_WAIT: u8 = 0x06;
    /// `CLOSE`: an unconnected UDP socket, or a closed TCP one.
    pub const CLOSE: u8 = 0x07;
    /// `LISTEN`.
    pub const LISTEN: u8 = 0x0A;
}

/// One row of a socket table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Socket {
    /// TCP or UDP.
    pub proto: Proto,
    /// Local address and port.
    pub local: (IpAddr, u16),
    /// Remote address and port (unspecified and 0 when not connected).
    pub remote: (IpAddr, u16),
    /// The state (see [`tcp_state`]).
    pub state: u8,
    /// The socket's inode: the key to its owner's `/proc/PID/fd` link.
    pub inode: u64,
}

impl Socket {
    /// Whether it has a peer the guard must judge: a TCP socket established or on its
    /// way in or out of it (not listening, not closed, not in TIME_WAIT), or a connected
    /// UDP socket. An unconnected UDP socket (`sendto` anywhere) has no peer to see.
    pub fn is_connection(&self) -> bool {
        let has_peer = !self.remote.0.is_unspecified() || self.remote.1 != 0;
        match self.proto {
            Proto::Tcp => {
                has_peer && !matches!(self.state, tcp_state::LISTEN | tcp_state::CLOSE | tcp_state::TIME_WAIT)
            }
            Proto::Udp => has_peer && self.state == tcp_state::ESTABLISHED,
        }
    }
}

/// Parses a socket table (`/proc/net/tcp`, `tcp6`, `udp`, `udp6`): the header line is
/// skipped, and so is any row that does not parse (the kernel's format is stable, but
/// one odd row must not hide the others).
pub fn parse_net(text: &str, proto: Proto) -> Vec<Socket> {
    text.lines().skip(1).filter_map(|l| parse_net_row(l, proto)).collect()
}

fn parse_net_row(line: &str, proto: Proto) -> Option<Socket> {
    // sl local rem st tx:rx tr:when retrnsmt uid timeout inode ...
    let f: Vec<&str> = line.split_ascii_whitespace().collect();
    let local = parse_endpoint(f.get(1)?)?;
    let remote = parse_endpoint(f.get(2)?)?;
    let state = u8::from_str_radix(f.get(3)?, 16).ok()?;
    let inode = f.get(9)?.parse().ok()?;
    Some(Socket { proto, local, remote, state, inode })
}

/// `0100007F:1F90` or the 32-hex-digit IPv6 form. The kernel prints the address as
/// 32-bit words in the machine's byte order (`%08X` of each `__be32` read natively),
/// hence `to_ne_bytes`; the port is printed in host order.
fn parse_endpoint(s: &str) -> Option<(IpAddr, u16)> {
    let (addr, port) = s.split_once(':')?;
    let port = u16::from_str_radix(port, 16).ok()?;
    let word = |i: usize| -> Option<[u8; 4]> {
        let w = addr.get(i * 8..i * 8 + 8)?;
        Some(u32::from_str_radix(w, 16).ok()?.to_ne_bytes())
    };
    let ip = match addr.len() {
        8 => IpAddr::V4(Ipv4Addr::from(word(0)?)),
        32 => {
            let mut b = [0u8; 16];
            for i in 0..4 {
                b[i * 4..i * 4 + 4].copy_from_slice(&word(i)?);
            }
            IpAddr::V6(Ipv6Addr::from(b))
        }
        _ => return None,
    };
    Some((canonical(ip), port))
}

/// An IPv4-mapped IPv6 address (`::ffff:127.0.0.1`, what a dual-stack socket shows
/// for an IPv4 peer) as the IPv4 address it is, so one allow-list entry covers both.
pub fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        v4 => v4,
    }
}

/// `/proc/uptime`'s first field (seconds since boot, with hundredths) in clock ticks
/// of [`TICKS_PER_SECOND`]: the clock `stat`'s start time counts in.
pub fn parse_uptime_ticks(text: &str) -> Option<u64> {
    let secs = text.split_ascii_whitespace().next()?;
    let (whole, frac) = secs.split_once('.').unwrap_or((secs, "0"));
    let whole: u64 = whole.parse().ok()?;
    let hundredths: u64 = format!("{frac:0<2}").get(..2)?.parse().ok()?;
    Some(whole * TICKS_PER_SECOND + hundredths * TICKS_PER_SECOND / 100)
}

/// `USER_HZ`: the unit of `/proc/PID/stat`'s times. 100 on every architecture Lambda
/// runs (x86_64, arm64); `sysconf(_SC_CLK_TCK)` would need a libc call for a constant.
pub const TICKS_PER_SECOND: u64 = 100;

#[cfg(test)]
mod tests {
    use super::*;

    // Recorded on Linux 6.8 (x86_64): a Python runtime, a shell whose comm has a
    // space and parentheses, and a zombie.
    const STAT_PYTHON: &str = "4242 (python3) S 4200 4242 4200 0 -1 4194560 2875 0 0 0 31 5 0 0 20 0 1 0 \
        912345 30355456 4660 18446744073709551615 94216794112000 94216796925485 140730290407680 0 0 0 0 \
        16781312 2 1 0 0 0 0 0 94216797697264 94216798163856 94216826392576 140730290413402 \
        140730290413449 140730290413449 140730290413542 0\n";
    const STAT_ODD: &str = "77 (my (evil) sh) R 76 77 76 0 -1 4194304 100 0 0 0 0 0 0 0 20 0 1 0 1234 1000 10 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 3 0 0 0 0 0\n";
    const STAT_ZOMBIE: &str = "99 (sleep) Z 4242 99 4200 0 -1 4227084 0 0 0 0 0 0 0 0 20 0 1 0 912400 0 0 18446744073709551615 0 0 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0\n";

    #[test]
    fn stat_fields() {
        let s = parse_stat(STAT_PYTHON).expect("parses");
        assert_eq!((s.pid, s.comm.as_str(), s.state, s.ppid, s.start_ticks), (4242, "python3", 'S', 4200, 912345));
        let s = parse_stat(STAT_ODD).expect("parses");
        assert_eq!((s.pid, s.comm.as_str(), s.ppid, s.start_ticks), (77, "my (evil) sh", 76, 1234));
        assert_eq!(parse_stat(STAT_ZOMBIE).map(|s| s.state), Some('Z'));
        assert_eq!(parse_stat("12 (x) S 1 2 3"), None, "truncated");
        assert_eq!(parse_stat(""), None);
        assert_eq!(parse_stat("x (y) S z"), None);
    }

    #[test]
    fn status_uid_is_the_real_one() {
        let text = "Name:\tpython3\nUmask:\t0022\nState:\tS (sleeping)\nTgid:\t4242\nPid:\t4242\nPPid:\t4200\n\
                    Uid:\t993\t0\t0\t0\nGid:\t990\t990\t990\t990\n";
        assert_eq!(parse_status_uid(text), Some(993));
        assert_eq!(parse_status_uid("Name:\tx\n"), None);
    }

    #[test]
    fn cmdline_arguments() {
        assert_eq!(parse_cmdline(b"/bin/sh\0-c\0sleep 5\0"), vec!["/bin/sh", "-c", "sleep 5"]);
        assert_eq!(parse_cmdline(b"python3\0-m\0awslambdaric"), vec!["python3", "-m", "awslambdaric"]);
        assert!(parse_cmdline(b"").is_empty());
        assert_eq!(parse_cmdline(b"a\xff\0"), vec!["a\u{fffd}"]);
        // An empty argument survives.
        assert_eq!(parse_cmdline(b"x\0\0y\0"), vec!["x", "", "y"]);
    }

    #[test]
    fn exe_and_fd_links() {
        assert_eq!(parse_exe("/usr/bin/python3.12"), ("/usr/bin/python3.12".into(), false));
        assert_eq!(parse_exe("/tmp/x (deleted)"), ("/tmp/x".into(), true));
        assert_eq!(socket_inode("socket:[31337]"), Some(31337));
        assert_eq!(socket_inode("pipe:[31337]"), None);
        assert_eq!(socket_inode("/dev/null"), None);
        assert_eq!(socket_inode("anon_inode:[eventpoll]"), None);
        assert_eq!(socket_inode("socket:[x]"), None);
    }

    // Recorded: a listener, an established connection to 127.0.0.2:8080, a SYN_SENT
    // to 203.0.113.9:443, a TIME_WAIT, and a malformed row.
    const TCP: &str = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n\
   0: 0100007F:2329 00000000:0000 0A 00000000:00000000 00:00000000 00000000   993        0 51234 1 0000000000000000 100 0 0 10 0\n\
   1: 0100007F:A1B2 0200007F:1F90 01 00000000:00000000 00:00000000 00000000   993        0 51240 1 0000000000000000 20 4 30 10 -1\n\
   2: 0A00A8C0:C350 097100CB:01BB 02 00000001:00000000 01:00000064 00000002   993        0 51241 2 0000000000000000 200 0 0 10 -1\n\
   3: 0100007F:A1B3 0200007F:1F90 06 00000000:00000000 03:00001770 00000000     0        0 0 3 0000000000000000\n\
   4: garbage\n";

    #[test]
    fn tcp_table() {
        let s = parse_net(TCP, Proto::Tcp);
        assert_eq!(s.len(), 4);
        assert_eq!(s[0].local, ("127.0.0.1".parse().expect("ip"), 9001));
        assert_eq!(s[0].state, tcp_state::LISTEN);
        assert!(!s[0].is_connection(), "a listener has no peer");
        assert_eq!(s[1].remote, ("127.0.0.2".parse().expect("ip"), 8080));
        assert_eq!(s[1].inode, 51240);
        assert!(s[1].is_connection());
        assert_eq!(s[2].local.0, "192.168.0.10".parse::<IpAddr>().expect("ip"));
        assert_eq!(s[2].remote, ("203.0.113.9".parse().expect("ip"), 443));
        assert!(s[2].is_connection(), "connecting counts");
        assert!(!s[3].is_connection(), "TIME_WAIT has no owner");
    }

    const TCP6: &str = "  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n\
   0: 00000000000000000000000001000000:D431 00000000000000000000000001000000:1F90 01 00000000:00000000 00:00000000 00000000   993        0 61000 1 0000000000000000 20 4 0 10 -1\n\
   1: 0000000000000000FFFF00000100007F:D432 0000000000000000FFFF00000200007F:0050 01 00000000:00000000 00:00000000 00000000   993        0 61001 1 0000000000000000 20 4 0 10 -1\n\
   2: B80D0120000000000000000001000000:D433 B80D0120000000000000000002000000:01BB 02 00000000:00000000 00:00000000 00000000   993        0 61002 1 0000000000000000 20 4 0 10 -1\n";

    #[test]
    fn tcp6_table_with_mapped_addresses() {
        let s = parse_net(TCP6, Proto::Tcp);
        assert_eq!(s.len(), 3);
        assert_eq!(s[0].remote, ("::1".parse().expect("ip"), 8080));
        // A dual-stack socket's IPv4 peer is shown as the IPv4 address.
        assert_eq!(s[1].remote, ("127.0.0.2".parse().expect("ip"), 80));
        assert_eq!(s[2].remote, ("2001:db8::2".parse().expect("ip"), 443));
    }

    const UDP: &str = "   sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops\n\
  120: 00000000:0044 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 7001 2 0000000000000000 0\n\
  300: 0100007F:9C40 3500A8C0:0035 01 00000000:00000000 00:00000000 00000000   993        0 7002 2 0000000000000000 0\n";

    #[test]
    fn udp_table() {
        let s = parse_net(UDP, Proto::Udp);
        assert_eq!(s.len(), 2);
        assert!(!s[0].is_connection(), "an unconnected UDP socket has no peer");
        assert!(s[1].is_connection());
        assert_eq!(s[1].remote, ("192.168.0.53".parse().expect("ip"), 53));
        assert!(parse_net("", Proto::Udp).is_empty());
    }

    #[test]
    fn uptime() {
        assert_eq!(parse_uptime_ticks("9123.45 17000.10\n"), Some(912345));
        assert_eq!(parse_uptime_ticks("12.5 1.0"), Some(1250));
        assert_eq!(parse_uptime_ticks("7 1"), Some(700));
        assert_eq!(parse_uptime_ticks("x"), None);
    }
}
