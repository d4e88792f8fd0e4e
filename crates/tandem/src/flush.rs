//! Flush policy: decides when the buffer drains to the sinks, and whether that may delay
//! the extension's next `/event/next` call.
//!
//! Owns the strategies ([`Strategy`], `TANDEM_FLUSH`) and the decision state (recent
//! invoke arrivals, last flush, timer schedule). A pure function of (strategy,
//! invocation history, now, pending size, deadline) → [`Decision`]: it never reads a
//! clock, never sleeps, never flushes anything itself. The lifecycle loop asks it at
//! INVOKE ([`FlushPolicy::on_invoke`]), at runtimeDone ([`FlushPolicy::on_runtime_done`]),
//! when its timer fires ([`FlushPolicy::on_timer`]) and at SHUTDOWN
//! ([`FlushPolicy::on_shutdown`]), and reports finished flushes
//! ([`FlushPolicy::on_flushed`]). Times are milliseconds since the epoch, the clock of
//! `deadlineMs`.
//!
//! Why it matters on Lambda: after the runtime and every extension call `next`, the
//! environment is frozen, timers included, until the next invoke (or for good: an idle
//! environment is shut down with ~2 s of notice). Work left in the buffer therefore waits
//! for the next thaw. Flushing before `next` ("blocking") delivers promptly but adds to
//! the billed post-runtime duration of every invocation; flushing in the background while
//! an invocation runs is free but only happens when invocations keep coming.
//!
//! # Adaptive (the default)
//!
//! - **Rare** invocations (the start, or any of the last [`AdaptiveOptions::window`]
//!   inter-arrival gaps longer than [`AdaptiveOptions::frequent_gap_ms`], 10 s by
//!   default): behave like `end`: flush blocking at runtimeDone within the budget, plus
//!   a background flush at INVOKE of what arrived since (the previous invocation's
//!   `platform.report` is only delivered during the next one).
//! - **Frequent** invocations (every one of the last `window` gaps ≤ `frequent_gap_ms`):
//!   behave like `continuous` with [`AdaptiveOptions::interval_ms`] (1 s): flush in the
//!   background at INVOKE and on the timer, never delaying `next`. The next thaw is at
//!   most ~`frequent_gap_ms` away, so data waits at most about that long. Guards: at
//!   runtimeDone, flush blocking anyway when the pending data passed the high-water mark
//!   ([`AdaptiveOptions::high_water_records`]/[`AdaptiveOptions::high_water_bytes`]) or
//!   its oldest record is older than [`AdaptiveOptions::max_age_ms`]: bounds both the
//!   delay when traffic stops and what is left for the short shutdown.
//!
//! 10 s: below it the freeze between invocations is short enough that waiting for the
//! next thaw is an acceptable delivery delay and a blocking flush per invocation would
//! be a real cost (it bills every invocation); above it, data of the last invocation
//! could wait minutes (idle environments are kept 5 to 15 minutes before shutdown).
//! Requiring the whole window (3 gaps) to be short and leaving on the first long gap
//! favours delivery over cost when traffic is bursty.

use std::fmt;
use std::time::Duration;

/// When to flush (`TANDEM_FLUSH`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Strategy {
    /// `adaptive`: see the module documentation.
    #[default]
    Adaptive,
    /// `end`: after each invocation's runtimeDone, before `next`, within the budget.
    End,
    /// `periodic,<ms>`: at INVOKE, in the background, when `ms` passed since the last
    /// flush. Nothing is flushed while invocations stop (until SHUTDOWN).
    Periodic(Duration),
    /// `continuous,<ms>`: in the background every `ms` (and at INVOKE when a tick was
    /// missed while frozen); never delays `next`.
    Continuous(Duration),
}

impl Strategy {
    /// Parses `adaptive`, `end`, `periodic,<ms>`, `continuous,<ms>` (case and spaces
    /// ignored). The error says what was expected.
    pub fn parse(s: &str) -> Result<Strategy, String> {
        let t = s.trim().to_ascii_lowercase();
        let (name, arg) = match t.split_once(',') {
            Some((n, a)) => (n.trim(), Some(a.trim())),
            None => (t.as_str(), None),
        };
        let interval = |kind: &str| -> Result<Duration, String> {
            let Some(a) = arg.filter(|a| !a.is_empty()) else {
                return Err(format!("{kind} needs an interval in milliseconds: \"{kind},<ms>\""));
            };
            match a.parse::<u64>() {
                Ok(ms) if (1..=3_600_000).contains(&ms) => Ok(Duration::from_millis(ms)),
                _ => Err(format!("{kind} interval {a:?} is not a number of milliseconds between 1 and 3600000")),
            }
        };
        match (name, arg) {
            ("adaptive", None) => Ok(Strategy::Adaptive),
            ("end", None) => Ok(Strategy::End),
            ("adaptive" | "end", Some(_)) => Err(format!("{name} takes no interval")),
            ("periodic", _) => interval("periodic").map(Strategy::Periodic),
            ("continuous", _) => interval("continuous").map(Strategy::Continuous),
            _ => Err(format!("{:?} is not a flush strategy (adaptive, end, periodic,<ms>, continuous,<ms>)", s.trim())),
        }
    }
}

impl fmt::Display for Strategy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Strategy::Adaptive => f.write_str("adaptive"),
            Strategy::End => f.write_str("end"),
            Strategy::Periodic(d) => write!(f, "periodic,{}", d.as_millis()),
            Strategy::Continuous(d) => write!(f, "continuous,{}", d.as_millis()),
        }
    }
}

/// What waits in the buffer (memory and spool).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Pending {
    /// Records waiting.
    pub records: usize,
    /// Their approximate size, bytes.
    pub bytes: usize,
    /// When the oldest waiting record was buffered (ms since the epoch).
    pub oldest_ms: Option<u64>,
}

impl Pending {
    /// Whether nothing waits.
    pub fn is_empty(&self) -> bool {
        self.records == 0
    }
}

/// What to do now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    /// Start a flush of everything pending.
    pub flush: bool,
    /// The flush must end (or its budget run out) before the extension calls `next`.
    pub blocking: bool,
    /// How long the flush may take; what is not delivered by then stays buffered.
    pub budget: Duration,
    /// The timer the policy wants: `Some(d)` = (re)arm it to fire in `d`, `None` = no
    /// timer (cancel any).
    pub next_timer: Option<Duration>,
}

impl Decision {
    /// Nothing to do, no timer.
    pub const IDLE: Decision = Decision { flush: false, blocking: false, budget: Duration::ZERO, next_timer: None };
}

/// Tuning of [`Strategy::Adaptive`]; the defaults are the documented ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AdaptiveOptions {
    /// Gaps between invokes at or below this count as frequent.
    pub frequent_gap_ms: u64,
    /// How many recent gaps must all be frequent.
    pub window: usize,
    /// Background flush interval while frequent.
    pub interval_ms: u64,
    /// Flush blocking at runtimeDone anyway past this many records waiting,
    pub high_water_records: usize,
    /// ... or these bytes waiting,
    pub high_water_bytes: usize,
    /// ... or a record older than this.
    pub max_age_ms: u64,
}

impl Default for AdaptiveOptions {
    fn default() -> Self {
        AdaptiveOptions {
            frequent_gap_ms: 10_000,
            window: 3,
            interval_ms: 1_000,
            high_water_records: 5_000,
            high_water_bytes: 1024 * 1024,
            max_age_ms: 10_000,
        }
    }
}

/// How the adaptive strategy currently behaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Flush at the end of each invocation (blocking).
    End,
    /// Flush in the background.
    Background,
}

/// Time kept free before an invocation's deadline: a blocking flush must never turn an
/// invocation into a timeout (post-runtime time counts against the function timeout).
pub const INVOKE_DEADLINE_MARGIN: Duration = Duration::from_millis(50);
/// Time kept free before the SHUTDOWN deadline, to finish and exit before SIGKILL.
pub const SHUTDOWN_DEADLINE_MARGIN: Duration = Duration::from_millis(200);
/// Budget of a background flush (bounded by the invocation's deadline when known).
pub const BACKGROUND_BUDGET: Duration = Duration::from_secs(2);

const HISTORY: usize = 8;

/// The flush policy and its state. See the module documentation.
#[derive(Debug, Clone)]
pub struct FlushPolicy {
    strategy: Strategy,
    budget: Duration,
    adaptive: AdaptiveOptions,
    /// Last invoke arrival times, oldest first.
    arrivals: [u64; HISTORY],
    arrivals_len: usize,
    last_flush_ms: Option<u64>,
    next_tick_ms: Option<u64>,
    deadline_ms: Option<u64>,
}

impl FlushPolicy {
    /// `budget`: how long a blocking end-of-invocation flush may delay `next`
    /// (`TANDEM_FLUSH_BUDGET_MS`).
    pub fn new(strategy: Strategy, budget: Duration) -> FlushPolicy {
        FlushPolicy {
            strategy,
            budget,
            adaptive: AdaptiveOptions::default(),
            arrivals: [0; HISTORY],
            arrivals_len: 0,
            last_flush_ms: None,
            next_tick_ms: None,
            deadline_ms: None,
        }
    }

    /// The policy with other [`Strategy::Adaptive`] tuning (the window is clamped to the history kept).
    pub fn with_adaptive(mut self, opts: AdaptiveOptions) -> FlushPolicy {
        self.adaptive = AdaptiveOptions { window: opts.window.clamp(1, HISTORY - 1), ..opts };
        self
    }

    /// The strategy configured.
    pub fn strategy(&self) -> Strategy {
        self.strategy
    }

    /// How the policy behaves now: always `End` for `end`, `Background` for `periodic`
    /// and `continuous`, and per the recent invoke gaps for `adaptive`.
    pub fn mode(&self) -> Mode {
        match self.strategy {
            Strategy::End => Mode::End,
            Strategy::Periodic(_) | Strategy::Continuous(_) => Mode::Background,
            Strategy::Adaptive => {
                let w = self.adaptive.window;
                if self.arrivals_len < w + 1 {
                    return Mode::End;
                }
                let recent = &self.arrivals[self.arrivals_len - (w + 1)..self.arrivals_len];
                let frequent = recent.windows(2).all(|p| p[1].saturating_sub(p[0]) <= self.adaptive.frequent_gap_ms);
                if frequent {
                    Mode::Background
                } else {
                    Mode::End
                }
            }
        }
    }

    /// An INVOKE event arrived (`deadline_ms`: its `deadlineMs`).
    pub fn on_invoke(&mut self, now_ms: u64, deadline_ms: Option<u64>, pending: Pending) -> Decision {
        self.record_arrival(now_ms);
        self.deadline_ms = deadline_ms;
        match (self.strategy, self.mode()) {
            (Strategy::End, _) => Decision::IDLE,
            (Strategy::Periodic(p), _) => {
                let flush = !pending.is_empty() && self.elapsed_since_flush(now_ms) >= p.as_millis() as u64;
                self.background(now_ms, flush, None)
            }
            (Strategy::Continuous(p), _) => self.tick_on_invoke(now_ms, p.as_millis() as u64, pending),
            (Strategy::Adaptive, Mode::Background) => self.tick_on_invoke(now_ms, self.adaptive.interval_ms, pending),
            (Strategy::Adaptive, Mode::End) => {
                self.next_tick_ms = None;
                self.background(now_ms, !pending.is_empty(), None)
            }
        }
    }

    /// The runtime finished the invocation (`platform.runtimeDone`); the extension is
    /// about to call `next`.
    pub fn on_runtime_done(&mut self, now_ms: u64, pending: Pending) -> Decision {
        let timer = self.timer(now_ms);
        match (self.strategy, self.mode()) {
            (Strategy::End, _) | (Strategy::Adaptive, Mode::End) => Decision {
                flush: !pending.is_empty(),
                blocking: !pending.is_empty(),
                budget: self.blocking_budget(now_ms),
                next_timer: timer,
            },
            (Strategy::Adaptive, Mode::Background) if self.over_high_water(now_ms, pending) => {
                Decision { flush: true, blocking: true, budget: self.blocking_budget(now_ms), next_timer: timer }
            }
            _ => Decision { next_timer: timer, ..Decision::IDLE },
        }
    }

    /// The timer the policy asked for fired.
    pub fn on_timer(&mut self, now_ms: u64, pending: Pending) -> Decision {
        let interval = match (self.strategy, self.mode()) {
            (Strategy::Continuous(p), _) => p.as_millis() as u64,
            (Strategy::Adaptive, Mode::Background) => self.adaptive.interval_ms,
            _ => {
                self.next_tick_ms = None;
                return Decision::IDLE;
            }
        };
        self.next_tick_ms = Some(now_ms + interval);
        let mut d = self.background(now_ms, !pending.is_empty(), Some(Duration::from_millis(interval)));
        d.budget = d.budget.min(Duration::from_millis(interval.max(1)));
        d
    }

    /// SHUTDOWN arrived: flush everything, blocking, until shortly before its deadline.
    pub fn on_shutdown(&mut self, now_ms: u64, deadline_ms: u64) -> Decision {
        self.next_tick_ms = None;
        let left = Duration::from_millis(deadline_ms.saturating_sub(now_ms));
        Decision {
            flush: true,
            blocking: true,
            budget: left.saturating_sub(SHUTDOWN_DEADLINE_MARGIN.min(left / 4)),
            next_timer: None,
        }
    }

    /// A flush finished at `now_ms` (whatever its outcome).
    pub fn on_flushed(&mut self, now_ms: u64) {
        self.last_flush_ms = Some(now_ms);
    }

    fn record_arrival(&mut self, now_ms: u64) {
        if self.arrivals_len == HISTORY {
            self.arrivals.copy_within(1.., 0);
            self.arrivals_len -= 1;
        }
        self.arrivals[self.arrivals_len] = now_ms;
        self.arrivals_len += 1;
    }

    fn elapsed_since_flush(&self, now_ms: u64) -> u64 {
        self.last_flush_ms.map_or(u64::MAX, |t| now_ms.saturating_sub(t))
    }

    /// Continuous-style INVOKE: catch up on a tick missed while frozen, keep the timer.
    fn tick_on_invoke(&mut self, now_ms: u64, interval: u64, pending: Pending) -> Decision {
        let due = self.next_tick_ms.is_none_or(|t| now_ms >= t) || self.elapsed_since_flush(now_ms) >= interval;
        let flush = !pending.is_empty() && due;
        if flush || self.next_tick_ms.is_none_or(|t| now_ms >= t) {
            self.next_tick_ms = Some(now_ms + interval);
        }
        self.background(now_ms, flush, self.timer(now_ms))
    }

    fn background(&self, now_ms: u64, flush: bool, next_timer: Option<Duration>) -> Decision {
        Decision {
            flush,
            blocking: false,
            budget: if flush { self.bounded_by_deadline(now_ms, BACKGROUND_BUDGET) } else { Duration::ZERO },
            next_timer,
        }
    }

    fn blocking_budget(&self, now_ms: u64) -> Duration {
        self.bounded_by_deadline(now_ms, self.budget)
    }

    fn bounded_by_deadline(&self, now_ms: u64, budget: Duration) -> Duration {
        match self.deadline_ms {
            Some(d) => {
                let left = Duration::from_millis(d.saturating_sub(now_ms));
                budget.min(left.saturating_sub(INVOKE_DEADLINE_MARGIN))
            }
            None => budget,
        }
    }

    fn timer(&self, now_ms: u64) -> Option<Duration> {
        self.next_tick_ms.map(|t| Duration::from_millis(t.saturating_sub(now_ms)))
    }

    fn over_high_water(&self, now_ms: u64, p: Pending) -> bool {
        let a = &self.adaptive;
        p.records >= a.high_water_records
            || p.bytes >= a.high_water_bytes
            || p.oldest_ms.is_some_and(|t| now_ms.saturating_sub(t) >= a.max_age_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: u64 = 1_700_000_000_000;
    const BUDGET: Duration = Duration::from_millis(100);

    fn some(records: usize) -> Pending {
        Pending { records, bytes: records * 200, oldest_ms: None }
    }

    #[test]
    fn parses_strategies_with_clear_errors() {
        assert_eq!(Strategy::parse("adaptive"), Ok(Strategy::Adaptive));
        assert_eq!(Strategy::parse(" END "), Ok(Strategy::End));
        assert_eq!(Strategy::parse("periodic,60000"), Ok(Strategy::Periodic(Duration::from_secs(60))));
        assert_eq!(Strategy::parse("Continuous, 250"), Ok(Strategy::Continuous(Duration::from_millis(250))));
        assert_eq!(
            Strategy::parse("periodic").unwrap_err(),
            "periodic needs an interval in milliseconds: \"periodic,<ms>\""
        );
        assert_eq!(
            Strategy::parse("continuous,soon").unwrap_err(),
            "continuous interval \"soon\" is not a number of milliseconds between 1 and 3600000"
        );
        assert!(Strategy::parse("continuous,0").is_err());
        assert_eq!(Strategy::parse("end,5").unwrap_err(), "end takes no interval");
        assert_eq!(
            Strategy::parse("sometimes").unwrap_err(),
            "\"sometimes\" is not a flush strategy (adaptive, end, periodic,<ms>, continuous,<ms>)"
        );
        for s in [
            Strategy::Adaptive,
            Strategy::End,
            Strategy::Periodic(Duration::from_millis(5)),
            Strategy::Continuous(Duration::from_millis(7)),
        ] {
            assert_eq!(Strategy::parse(&s.to_string()), Ok(s));
        }
    }

    #[test]
    fn end_flushes_blocking_at_runtime_done_only() {
        let mut p = FlushPolicy::new(Strategy::End, BUDGET);
        assert_eq!(p.on_invoke(T, Some(T + 3000), some(5)), Decision::IDLE);
        let d = p.on_runtime_done(T + 50, some(5));
        assert!(d.flush && d.blocking);
        assert_eq!(d.budget, BUDGET);
        assert_eq!(d.next_timer, None);
        assert!(!p.on_runtime_done(T + 50, Pending::default()).flush, "nothing pending, nothing to do");
        assert_eq!(p.on_timer(T + 60, some(5)), Decision::IDLE);
        assert_eq!(p.mode(), Mode::End);
    }

    #[test]
    fn blocking_budget_never_crosses_the_invocation_deadline() {
        let mut p = FlushPolicy::new(Strategy::End, Duration::from_millis(500));
        p.on_invoke(T, Some(T + 1000), Pending::default());
        // 120 ms left before the deadline, 50 kept as margin.
        assert_eq!(p.on_runtime_done(T + 880, some(1)).budget, Duration::from_millis(70));
        assert_eq!(p.on_runtime_done(T + 990, some(1)).budget, Duration::ZERO);
        assert_eq!(p.on_runtime_done(T + 5000, some(1)).budget, Duration::ZERO);
    }

    #[test]
    fn periodic_flushes_in_background_at_invoke_when_due() {
        let mut p = FlushPolicy::new(Strategy::Periodic(Duration::from_secs(10)), BUDGET);
        let d = p.on_invoke(T, None, some(3));
        assert!(d.flush && !d.blocking, "never flushed yet: due");
        assert_eq!(d.budget, BACKGROUND_BUDGET);
        p.on_flushed(T + 100);
        assert!(!p.on_invoke(T + 5_000, None, some(3)).flush, "5 s since the last flush");
        assert!(!p.on_runtime_done(T + 5_050, some(3)).flush);
        assert!(p.on_invoke(T + 10_100, None, some(3)).flush);
        assert!(!p.on_invoke(T + 30_000, None, Pending::default()).flush, "nothing pending");
        assert_eq!(p.mode(), Mode::Background);
    }

    #[test]
    fn continuous_ticks_and_catches_up_after_a_freeze() {
        let mut p = FlushPolicy::new(Strategy::Continuous(Duration::from_millis(500)), BUDGET);
        let d = p.on_invoke(T, None, some(1));
        assert!(d.flush && !d.blocking);
        assert_eq!(d.next_timer, Some(Duration::from_millis(500)));
        p.on_flushed(T + 20);
        // Runtime done: never delays next, keeps the timer.
        let d = p.on_runtime_done(T + 200, some(10));
        assert!(!d.flush);
        assert_eq!(d.next_timer, Some(Duration::from_millis(300)));
        let d = p.on_timer(T + 500, some(10));
        assert!(d.flush && !d.blocking);
        assert_eq!(d.budget, Duration::from_millis(500));
        assert_eq!(d.next_timer, Some(Duration::from_millis(500)));
        p.on_flushed(T + 530);
        // Frozen for a minute: the tick at T+1000 never fired; INVOKE catches up.
        let d = p.on_invoke(T + 60_000, None, some(2));
        assert!(d.flush);
        assert_eq!(d.next_timer, Some(Duration::from_millis(500)));
        p.on_flushed(T + 60_010);
        // A second invoke right after does not flush again.
        assert!(!p.on_invoke(T + 60_100, None, some(2)).flush);
        let d = p.on_timer(T + 60_500, Pending::default());
        assert!(!d.flush);
        assert_eq!(d.next_timer, Some(Duration::from_millis(500)));
    }

    #[test]
    fn adaptive_rare_behaves_like_end() {
        let mut p = FlushPolicy::new(Strategy::Adaptive, BUDGET);
        // Cold start: end mode; what is pending at INVOKE goes in the background.
        let d = p.on_invoke(T, Some(T + 3000), some(2));
        assert!(d.flush && !d.blocking);
        assert_eq!(d.next_timer, None);
        let d = p.on_runtime_done(T + 100, some(4));
        assert!(d.flush && d.blocking);
        assert_eq!(d.budget, BUDGET);
        // Invokes a minute apart stay in end mode.
        for i in 1..6 {
            p.on_invoke(T + i * 60_000, None, Pending::default());
            assert_eq!(p.mode(), Mode::End);
        }
        assert_eq!(p.on_timer(T + 400_000, some(1)), Decision::IDLE);
    }

    #[test]
    fn adaptive_switches_to_background_when_invokes_are_frequent_and_back() {
        let mut p = FlushPolicy::new(Strategy::Adaptive, BUDGET);
        let mut t = T;
        for _ in 0..3 {
            p.on_invoke(t, None, Pending::default());
            assert_eq!(p.mode(), Mode::End);
            t += 2_000;
        }
        // Fourth invoke: three gaps of 2 s.
        let d = p.on_invoke(t, None, some(5));
        assert_eq!(p.mode(), Mode::Background);
        assert!(d.flush && !d.blocking);
        assert_eq!(d.next_timer, Some(Duration::from_millis(1_000)));
        p.on_flushed(t + 10);
        let d = p.on_runtime_done(t + 80, some(5));
        assert!(!d.flush, "frequent: never delays next");
        assert_eq!(d.next_timer, Some(Duration::from_millis(920)));
        let d = p.on_timer(t + 1_000, some(5));
        assert!(d.flush && !d.blocking);
        // One long gap: back to end mode at once, timer cancelled.
        t += 60_000;
        let d = p.on_invoke(t, None, some(1));
        assert_eq!(p.mode(), Mode::End);
        assert_eq!(d.next_timer, None);
        assert!(p.on_runtime_done(t + 50, some(1)).blocking);
    }

    #[test]
    fn adaptive_background_still_flushes_at_end_past_high_water() {
        let mut p = FlushPolicy::new(Strategy::Adaptive, BUDGET);
        for i in 0..4 {
            p.on_invoke(T + i * 1_000, Some(T + i * 1_000 + 3_000), Pending::default());
        }
        assert_eq!(p.mode(), Mode::Background);
        let now = T + 3_100;
        assert!(!p.on_runtime_done(now, some(100)).flush);
        let big = p.on_runtime_done(now, some(5_000));
        assert!(big.flush && big.blocking);
        let heavy = p.on_runtime_done(now, Pending { records: 10, bytes: 2 * 1024 * 1024, oldest_ms: None });
        assert!(heavy.blocking);
        let old = p.on_runtime_done(now, Pending { records: 1, bytes: 10, oldest_ms: Some(now - 10_000) });
        assert!(old.flush && old.blocking);
        assert_eq!(old.budget, BUDGET);
    }

    #[test]
    fn adaptive_options_are_tunable() {
        let mut p = FlushPolicy::new(Strategy::Adaptive, BUDGET).with_adaptive(AdaptiveOptions {
            frequent_gap_ms: 100,
            window: 1,
            ..AdaptiveOptions::default()
        });
        p.on_invoke(T, None, Pending::default());
        p.on_invoke(T + 100, None, Pending::default());
        assert_eq!(p.mode(), Mode::Background);
        p.on_invoke(T + 300, None, Pending::default());
        assert_eq!(p.mode(), Mode::End);
    }

    #[test]
    fn shutdown_flushes_everything_before_the_deadline() {
        for strategy in [Strategy::Adaptive, Strategy::End, Strategy::Continuous(Duration::from_millis(100))] {
            let mut p = FlushPolicy::new(strategy, BUDGET);
            let d = p.on_shutdown(T, T + 2_000);
            assert!(d.flush && d.blocking);
            assert_eq!(d.budget, Duration::from_millis(1_800));
            assert_eq!(d.next_timer, None);
        }
        let mut p = FlushPolicy::new(Strategy::End, BUDGET);
        assert_eq!(p.on_shutdown(T, T + 400).budget, Duration::from_millis(300));
        assert_eq!(p.on_shutdown(T + 500, T + 400).budget, Duration::ZERO);
    }
}
