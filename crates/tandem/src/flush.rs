//! Flush policy: decides when the buffer drains to the sinks, and whether that may delay
//! the extension's next `/event/next` call.
//!
//! Owns the strategies ([`Strategy`], `TANDEM_FLUSH`), the delivery-delay bound
//! (`TANDEM_MAX_DELAY_MS`) and the decision state (recent invoke arrivals, last flush,
//! timer schedule). A pure function of (strategy, invocation history, now, pending size,
//! deadline) → [`Decision`]: it never reads a clock, never sleeps, never flushes anything
//! itself. The lifecycle loop asks it at INVOKE ([`FlushPolicy::on_invoke`]), at
//! runtimeDone ([`FlushPolicy::on_runtime_done`]), when its timer fires
//! ([`FlushPolicy::on_timer`]) and at SHUTDOWN ([`FlushPolicy::on_shutdown`]), and
//! reports finished flushes ([`FlushPolicy::on_flushed`]). Times are milliseconds since
//! the epoch, the clock of `deadlineMs`.
//!
//! Why it matters on Lambda: after the runtime and every extension call `next`, the
//! environment is frozen, timers included, until the next invoke (or for good: an idle
//! environment is shut down with ~2 s of notice). Work left in the buffer therefore waits
//! for the next thaw. Flushing before `next` ("blocking") delivers promptly but adds to
//! the billed post-runtime duration of the invocation: the wait for `platform.runtimeDone`
//! (the Telemetry API buffers at least 25 ms) plus the flush. Flushing in the background
//! while an invocation runs is free but only happens when invocations keep coming.
//!
//! # Adaptive (the default): a delivery-delay bound
//!
//! `TANDEM_MAX_DELAY_MS` ([`AdaptiveOptions::max_delay_ms`], default 60 s) is the longest
//! a record should wait for delivery. At each INVOKE the policy estimates the next thaw:
//! this arrival plus the longest of the last [`AdaptiveOptions::window`] (3) gaps between
//! arrivals (the longest, not the mean: a pause must not be averaged away, and one long
//! gap makes the next invocations deliver before `next` until three short ones follow).
//! It then chooses:
//!
//! - **Deliver at the next thaw** ([`Mode::Background`]) when the records this invocation
//!   is about to produce would be delivered by then within the bound: the extension
//!   calls `next` at once, and what is pending goes out in the background at the next
//!   INVOKE, on the [`AdaptiveOptions::interval_ms`] timer while thawed, or at SHUTDOWN.
//! - **Deliver before `next`** ([`Mode::End`]) when the next thaw is expected later than
//!   the bound from now: wait for runtimeDone and flush blocking within the budget, as
//!   `end` does.
//!
//! A background flush only runs while the environment is thawed, that is while the
//! function runs: for a function that takes a millisecond, one may need several thaws.
//! So at INVOKE, records already pending that the next thaw would deliver past the bound
//! are flushed at once, blocking `next` within the budget but overlapping the function's
//! run instead of waiting for runtimeDone (a catch-up, [`Decision::blocking`] at INVOKE).
//!
//! At runtimeDone in `End` mode the test is made again with what is then pending
//! (nothing pending, nothing to flush), and in any mode the high-water marks
//! ([`AdaptiveOptions::high_water_records`]/[`AdaptiveOptions::high_water_bytes`]) flush
//! blocking: they bound what is left for the short shutdown.
//!
//! **Cold start.** The first invocation of an environment has no gap to estimate from;
//! the policy assumes the next thaw comes within the bound, so it does not wait for
//! runtimeDone; only data already older than the bound (a catch-up at INVOKE) or past a
//! high-water mark is flushed before `next`. A cold start is
//! when latency matters most (the caller already waited for init) and, for a function
//! with traffic, the usual case: Lambda starts environments because requests keep
//! coming, so the next thaw is near and a blocking flush would be paid by every new
//! environment of every scale-out for nothing. Waiting is safe: acknowledged records are
//! held (memory, spool, and the write-ahead against a kill) until a sink accepts them.
//! The price is for a function invoked less often than the bound: its first
//! invocation's records wait for the second invocation, or for the SHUTDOWN of an idle
//! environment (minutes). From the second invocation on, the one known gap decides.
//!
//! **Why 60 s.** What users of monitoring expect: CloudWatch metrics have one-minute
//! standard resolution and alarms evaluate per minute; dashboards (CloudWatch, Datadog,
//! Grafana) refresh at a minute or slower; Datadog's Lambda extension flushes at the end
//! of each invocation for sporadic traffic so that its data is not delayed, and its
//! maintainers weighed a minute of delay against that cost. Data delivered within a
//! minute lands in the period it belongs to or the next, before an alarm can miss it.
//! A shorter bound makes more invocations pay the ~26 ms; `0` blocks whenever something
//! is pending (like `end`, cold start included).
//!
//! What the bound cannot cover: an invocation's `platform.report` (and so its invocation
//! record) reaches the extension only after `next`, during the next thaw, whatever the
//! policy does.

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

/// Default of `TANDEM_MAX_DELAY_MS`: see the module documentation.
pub const DEFAULT_MAX_DELAY: Duration = Duration::from_secs(60);

/// Tuning of [`Strategy::Adaptive`]; the defaults are the documented ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AdaptiveOptions {
    /// The longest a record should wait for delivery (`TANDEM_MAX_DELAY_MS`).
    pub max_delay_ms: u64,
    /// How many recent gaps between invokes estimate the next one (the longest counts).
    pub window: usize,
    /// Background flush interval while thawed.
    pub interval_ms: u64,
    /// Flush blocking at runtimeDone anyway past this many records waiting,
    pub high_water_records: usize,
    /// ... or these bytes waiting.
    pub high_water_bytes: usize,
}

impl Default for AdaptiveOptions {
    fn default() -> Self {
        AdaptiveOptions {
            max_delay_ms: DEFAULT_MAX_DELAY.as_millis() as u64,
            window: 3,
            interval_ms: 1_000,
            high_water_records: 5_000,
            high_water_bytes: 1024 * 1024,
        }
    }
}

/// How the policy behaves for the current invocation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Wait for runtimeDone and flush before `next` (blocking).
    End,
    /// Call `next` at once; flush in the background.
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
    /// Adaptive: the mode chosen at the last INVOKE.
    current: Mode,
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
            current: Mode::Background,
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

    /// The policy with another delivery-delay bound (`TANDEM_MAX_DELAY_MS`).
    pub fn with_max_delay(self, max_delay: Duration) -> FlushPolicy {
        let opts = AdaptiveOptions { max_delay_ms: max_delay.as_millis() as u64, ..self.adaptive };
        self.with_adaptive(opts)
    }

    /// The strategy configured.
    pub fn strategy(&self) -> Strategy {
        self.strategy
    }

    /// How the policy behaves now: always `End` for `end`, `Background` for `periodic`
    /// and `continuous`, and as chosen at the last INVOKE for `adaptive`.
    pub fn mode(&self) -> Mode {
        match self.strategy {
            Strategy::End => Mode::End,
            Strategy::Periodic(_) | Strategy::Continuous(_) => Mode::Background,
            Strategy::Adaptive => self.current,
        }
    }

    /// When the next thaw is expected: the last arrival plus the longest recent gap, or
    /// `None` without a gap yet (a cold start).
    pub fn expected_next_thaw_ms(&self) -> Option<u64> {
        let n = self.arrivals_len;
        if n < 2 {
            return None;
        }
        let from = n - (self.adaptive.window + 1).min(n);
        let recent = &self.arrivals[from..n];
        let gap = recent.windows(2).map(|p| p[1].saturating_sub(p[0])).max().unwrap_or(0);
        Some(self.arrivals[n - 1].saturating_add(gap))
    }

    /// Adaptive: whether a record buffered at `oldest_ms` would wait longer than the
    /// bound if left for the next thaw.
    fn late(&self, now_ms: u64, oldest_ms: u64) -> bool {
        let thaw = self.expected_next_thaw_ms().map_or(now_ms, |t| t.max(now_ms));
        thaw.saturating_sub(oldest_ms) > self.adaptive.max_delay_ms
            || now_ms.saturating_sub(oldest_ms) >= self.adaptive.max_delay_ms
    }

    /// An INVOKE event arrived (`deadline_ms`: its `deadlineMs`). A blocking decision here
    /// (adaptive's catch-up) is a flush to finish before `next` without waiting for
    /// runtimeDone.
    pub fn on_invoke(&mut self, now_ms: u64, deadline_ms: Option<u64>, pending: Pending) -> Decision {
        self.record_arrival(now_ms);
        self.deadline_ms = deadline_ms;
        match self.strategy {
            Strategy::End => Decision::IDLE,
            Strategy::Periodic(p) => {
                let flush = !pending.is_empty() && self.elapsed_since_flush(now_ms) >= p.as_millis() as u64;
                self.background(now_ms, flush, None)
            }
            Strategy::Continuous(p) => self.tick_on_invoke(now_ms, p.as_millis() as u64, pending),
            Strategy::Adaptive => {
                let d = self.tick_on_invoke(now_ms, self.adaptive.interval_ms, pending);
                // What this invocation produces is buffered from now on.
                self.current = if self.late(now_ms, now_ms) { Mode::End } else { Mode::Background };
                let stale = !pending.is_empty() && pending.oldest_ms.is_some_and(|t| self.late(now_ms, t.min(now_ms)));
                if self.current == Mode::Background && stale {
                    // Background flushes did not get these out while thawed (a thaw
                    // lasts as long as the function runs): out now, before `next`,
                    // while the function runs, without waiting for runtimeDone.
                    let budget = self.blocking_budget(now_ms);
                    return Decision { flush: true, blocking: true, budget, next_timer: d.next_timer };
                }
                d
            }
        }
    }

    /// The runtime finished the invocation (`platform.runtimeDone`); the extension is
    /// about to call `next`.
    pub fn on_runtime_done(&mut self, now_ms: u64, pending: Pending) -> Decision {
        let timer = self.timer(now_ms);
        let blocking = match self.strategy {
            Strategy::End => !pending.is_empty(),
            Strategy::Adaptive => {
                // Background: INVOKE found the next thaw within the bound; only the
                // high-water guards remain.
                let oldest = pending.oldest_ms.map_or(now_ms, |t| t.min(now_ms));
                let late = self.current == Mode::End && self.late(now_ms, oldest);
                !pending.is_empty() && (self.over_high_water(pending) || late)
            }
            Strategy::Periodic(_) | Strategy::Continuous(_) => false,
        };
        if blocking {
            Decision { flush: true, blocking: true, budget: self.blocking_budget(now_ms), next_timer: timer }
        } else {
            Decision { next_timer: timer, ..Decision::IDLE }
        }
    }

    /// The timer the policy asked for fired.
    pub fn on_timer(&mut self, now_ms: u64, pending: Pending) -> Decision {
        let interval = match self.strategy {
            Strategy::Continuous(p) => p.as_millis() as u64,
            Strategy::Adaptive => self.adaptive.interval_ms,
            Strategy::End | Strategy::Periodic(_) => {
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

    fn over_high_water(&self, p: Pending) -> bool {
        p.records >= self.adaptive.high_water_records || p.bytes >= self.adaptive.high_water_bytes
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

    /// One simulated invocation: whether it waited for runtimeDone to flush before
    /// `next`, and whether it flushed before `next` at INVOKE (a catch-up).
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    struct Step {
        blocked: bool,
        caught_up: bool,
    }

    /// What a run of invocations cost and how long records waited.
    #[derive(Debug)]
    struct Run {
        steps: Vec<Step>,
        /// Longest wait from buffering to delivery, per invocation that produced the record.
        waits_ms: Vec<u64>,
    }

    /// Plays `gaps.len() + 1` invocations against the policy the way `app` asks it, on
    /// a simulated clock: each invocation runs 50 ms, its function lines are buffered
    /// 10 ms after INVOKE, its runtimeDone arrives 25 ms after it ends (the Telemetry
    /// API's buffering); a background flush at INVOKE delivers within 5 ms and a
    /// blocking one right away. Frozen between invocations: timers never fire (each
    /// invocation is far shorter than the 1 s interval). Records still pending at the
    /// end are left for SHUTDOWN and not counted.
    fn simulate(p: FlushPolicy, gaps: &[u64]) -> Run {
        simulate_with(p, gaps, true)
    }

    /// [`simulate`], with background flushes that deliver nothing when
    /// `background_delivers` is false (a function so short that the environment freezes
    /// before a background request completes).
    fn simulate_with(mut p: FlushPolicy, gaps: &[u64], background_delivers: bool) -> Run {
        let mut pending: Vec<(u64, usize)> = Vec::new(); // (buffered at, invocation)
        let mut waits_ms = vec![0; gaps.len() + 1];
        let mut steps = Vec::new();
        let state = |pending: &Vec<(u64, usize)>| Pending {
            records: pending.len(),
            bytes: pending.len() * 200,
            oldest_ms: pending.iter().map(|r| r.0).min(),
        };
        let mut deliver = |pending: &mut Vec<(u64, usize)>, at: u64| {
            for (buffered, i) in pending.drain(..) {
                waits_ms[i] = waits_ms[i].max(at - buffered);
            }
        };
        let mut t = T;
        for i in 0..=gaps.len() {
            let d = p.on_invoke(t, Some(t + 3_000), state(&pending));
            let caught_up = d.flush && d.blocking;
            if d.flush && (background_delivers || caught_up) {
                deliver(&mut pending, t + 5);
            }
            if d.flush {
                p.on_flushed(t + 5);
            }
            let early = match p.mode() {
                Mode::End => None,
                // `app` asks at once: `next` follows immediately.
                Mode::Background => Some(p.on_runtime_done(t + 1, state(&pending))),
            };
            pending.push((t + 10, i));
            let done = t + 75;
            let d = early.unwrap_or_else(|| p.on_runtime_done(done, state(&pending)));
            let blocked = d.flush && d.blocking;
            if blocked {
                deliver(&mut pending, done);
                p.on_flushed(done);
            }
            steps.push(Step { blocked, caught_up });
            t += gaps.get(i).copied().unwrap_or(0);
        }
        Run { steps, waits_ms: waits_ms[..gaps.len()].to_vec() }
    }

    fn adaptive() -> FlushPolicy {
        FlushPolicy::new(Strategy::Adaptive, BUDGET)
    }

    fn blocked(run: &Run) -> Vec<usize> {
        run.steps.iter().enumerate().filter(|(_, s)| s.blocked).map(|(i, _)| i).collect()
    }

    fn caught_up(run: &Run) -> Vec<usize> {
        run.steps.iter().enumerate().filter(|(_, s)| s.caught_up).map(|(i, _)| i).collect()
    }

    const BOUND_MS: u64 = 60_000;

    #[test]
    fn adaptive_at_1_s_never_blocks_and_records_wait_about_a_second() {
        let run = simulate(adaptive(), &[1_000; 20]);
        assert_eq!(blocked(&run), Vec::<usize>::new(), "not even the cold start");
        assert!(run.waits_ms.iter().all(|&w| w <= 1_000), "{:?}", run.waits_ms);
    }

    #[test]
    fn adaptive_at_10_s_never_blocks_and_records_wait_about_ten_seconds() {
        let run = simulate(adaptive(), &[10_000; 12]);
        assert_eq!(blocked(&run), Vec::<usize>::new());
        assert!(run.waits_ms.iter().all(|&w| w <= 10_000), "{:?}", run.waits_ms);
    }

    #[test]
    fn adaptive_at_60_s_keeps_within_the_bound_without_blocking() {
        // The next thaw comes 60 s after INVOKE, records are buffered 10 ms later:
        // they wait just under the bound.
        let run = simulate(adaptive(), &[60_000; 6]);
        assert_eq!(blocked(&run), Vec::<usize>::new());
        assert!(run.waits_ms.iter().all(|&w| w <= BOUND_MS), "{:?}", run.waits_ms);
        // A little slower and every invocation after the first delivers before `next`.
        let run = simulate(adaptive(), &[61_000; 6]);
        assert_eq!(blocked(&run), vec![1, 2, 3, 4, 5, 6]);
        assert_eq!(run.waits_ms[0], 61_000 - 10 + 5, "the cold start's lines wait for the next thaw");
        assert!(run.waits_ms[1..].iter().all(|&w| w == 65), "{:?}", run.waits_ms);
    }

    #[test]
    fn adaptive_at_10_min_blocks_from_the_second_invocation_on() {
        let run = simulate(adaptive(), &[600_000; 5]);
        assert_eq!(blocked(&run), vec![1, 2, 3, 4, 5], "the cold start does not block");
        assert_eq!(run.waits_ms[0], 600_000 - 5, "its records are delivered at the next thaw");
        assert!(run.waits_ms[1..].iter().all(|&w| w == 65), "{:?}", run.waits_ms);
    }

    #[test]
    fn adaptive_cold_start_blocks_only_for_data_already_past_the_bound_or_high_water() {
        let mut p = adaptive();
        // Nothing known: no blocking, `next` at once; what is pending goes in the background.
        let d = p.on_invoke(T, Some(T + 3_000), some(2));
        assert!(d.flush && !d.blocking);
        assert_eq!(d.next_timer, Some(Duration::from_millis(1_000)));
        assert_eq!(p.mode(), Mode::Background);
        assert_eq!(p.expected_next_thaw_ms(), None);
        assert!(!p.on_runtime_done(T + 1, some(4)).flush);
        // Held since before the bound (e.g. replayed from the spool at start): out at
        // once, before `next`, while the function runs; no wait for runtimeDone.
        let mut p = adaptive();
        let old = Pending { records: 3, bytes: 600, oldest_ms: Some(T - BOUND_MS) };
        let d = p.on_invoke(T, Some(T + 3_000), old);
        assert!(d.flush && d.blocking);
        assert_eq!(d.budget, BUDGET);
        assert_eq!(p.mode(), Mode::Background);
        assert!(!p.on_runtime_done(T + 1, old).flush, "only the high-water marks block in background mode");
        // Past a high-water mark, even on a cold start.
        let mut p = adaptive();
        p.on_invoke(T, None, Pending::default());
        assert!(p.on_runtime_done(T + 1, some(5_000)).blocking);
    }

    #[test]
    fn adaptive_after_a_pause_delivers_before_next_until_three_short_gaps_follow() {
        let mut gaps = vec![1_000; 5];
        gaps.push(600_000);
        gaps.extend([1_000; 5]);
        let run = simulate(adaptive(), &gaps);
        // Invocation 6 follows the pause: it and the next two still see it in the window.
        assert_eq!(blocked(&run), vec![6, 7, 8]);
        // The lines of the invocation before the pause could not be foreseen: they wait
        // for the next thaw.
        assert_eq!(run.waits_ms[5], 600_000 - 5);
        let worst_after = run.waits_ms[6..].iter().max().copied().unwrap_or(0);
        assert!(worst_after <= 1_000, "{:?}", run.waits_ms);
    }

    #[test]
    fn adaptive_catches_up_at_invoke_when_background_flushes_cannot_finish_while_thawed() {
        // 15 s apart, and no background flush ever completes: every fourth invocation
        // sends what is pending at INVOKE, before `next`, overlapping the function; none
        // waits for runtimeDone, and no record waits longer than the bound.
        let run = simulate_with(adaptive(), &[15_000; 9], false);
        assert_eq!(blocked(&run), Vec::<usize>::new());
        assert_eq!(caught_up(&run), vec![4, 8]);
        assert!(run.waits_ms.iter().all(|&w| w <= BOUND_MS), "{:?}", run.waits_ms);
        // With background flushes that work, there is nothing to catch up.
        assert_eq!(caught_up(&simulate(adaptive(), &[15_000; 9])), Vec::<usize>::new());
    }

    #[test]
    fn adaptive_bound_is_tunable_and_zero_blocks_whenever_something_is_pending() {
        let p = adaptive().with_max_delay(Duration::from_secs(5));
        assert_eq!(blocked(&simulate(p.clone(), &[1_000; 6])), Vec::<usize>::new());
        assert_eq!(blocked(&simulate(p, &[10_000; 4])), vec![1, 2, 3, 4]);
        let zero = adaptive().with_max_delay(Duration::ZERO);
        assert_eq!(blocked(&simulate(zero.clone(), &[1_000; 3])), vec![0, 1, 2, 3], "cold start included");
        let mut zero = zero;
        zero.on_invoke(T, None, Pending::default());
        assert!(!zero.on_runtime_done(T + 75, Pending::default()).flush, "nothing pending, nothing to do");
        // The window of gaps that estimates the next thaw.
        let one = adaptive().with_adaptive(AdaptiveOptions { window: 1, ..AdaptiveOptions::default() });
        let mut gaps = vec![1_000; 3];
        gaps.push(600_000);
        gaps.extend([1_000; 3]);
        assert_eq!(blocked(&simulate(one, &gaps)), vec![4]);
    }

    #[test]
    fn adaptive_timer_flushes_in_the_background_while_thawed() {
        let mut p = adaptive();
        let d = p.on_invoke(T, None, Pending::default());
        assert!(!d.flush, "nothing pending");
        assert_eq!(d.next_timer, Some(Duration::from_millis(1_000)));
        // A long invocation: the timer delivers what it logs every second.
        let d = p.on_timer(T + 1_000, some(5));
        assert!(d.flush && !d.blocking);
        assert_eq!(d.budget, Duration::from_millis(1_000));
        assert_eq!(d.next_timer, Some(Duration::from_millis(1_000)));
        let d = p.on_runtime_done(T + 1_500, some(5));
        assert!(!d.flush, "cold start, within the bound: never delays next");
        assert_eq!(d.next_timer, Some(Duration::from_millis(500)));
    }

    #[test]
    fn adaptive_background_still_flushes_at_end_past_high_water() {
        let mut p = adaptive();
        for i in 0..4 {
            p.on_invoke(T + i * 1_000, Some(T + i * 1_000 + 3_000), Pending::default());
        }
        assert_eq!(p.mode(), Mode::Background);
        let now = T + 3_100;
        assert!(!p.on_runtime_done(now, some(100)).flush);
        let big = p.on_runtime_done(now, some(5_000));
        assert!(big.flush && big.blocking);
        assert_eq!(big.budget, BUDGET);
        let heavy = p.on_runtime_done(now, Pending { records: 10, bytes: 2 * 1024 * 1024, oldest_ms: None });
        assert!(heavy.blocking);
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
