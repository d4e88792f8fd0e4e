//! lifecycle::teardown: shutdowns and resets: the shutdown budget, SIGTERM and SIGKILL,
//! SHUTDOWN sent at the start of the phase (as soon as the runtime has stopped, whatever
//! telemetry is still pending: subscribers keep receiving it by their own buffering
//! until the deadline), and what follows (re-init or done).

use super::{
    Action, After, Ctx, Lifecycle, Observation, PhaseState, ProcKind, Rejection, Signal, Stage, Teardown, TimerId,
    KILL_REAP_GRACE, RUNTIME_TERM_GRACE, RUNTIME_TERM_GRACE_INTERNAL, SHUTDOWN_BUDGET_EXTERNAL,
    SHUTDOWN_BUDGET_INTERNAL,
};
use std::time::Duration;
use tandem_wire::extensions::{NextEvent, ShutdownEvent};
use tandem_wire::ShutdownReason;

impl Lifecycle {
    pub(super) fn on_shutdown(&mut self) {
        if self.shutdown_requested {
            return;
        }
        self.shutdown_requested = true;
        for q in std::mem::take(&mut self.queue) {
            self.out.push(Action::Rejected { token: q.token, rejection: Rejection::ShuttingDown });
        }
    }

    pub(super) fn begin_teardown(&mut self, ctx: Ctx, reason: ShutdownReason, then: After) {
        self.thaw();
        self.phase = PhaseState::TearingDown;
        let any_external = self.exts.iter().any(|e| e.external) || self.launched.iter().any(|l| l.alive);
        let any_internal = self.exts.iter().any(|e| !e.external);
        let budget = if any_external {
            SHUTDOWN_BUDGET_EXTERNAL
        } else if any_internal {
            SHUTDOWN_BUDGET_INTERNAL
        } else {
            Duration::ZERO
        };
        let deadline = ctx.now + budget;
        self.observe(Observation::ShutdownStart { reason: reason.clone(), deadline_ms: self.clock.epoch_ms(deadline) });
        let g = self.generation;
        let mut stage = Stage::WaitExtensions;
        if self.runtime.alive {
            stage = Stage::StopRuntime;
            // Lambda gives the runtime SIGTERM only when an extension is registered
            // and the environment spins down; otherwise it is killed.
            if reason == ShutdownReason::Spindown && budget > Duration::ZERO {
                let grace = if any_external { RUNTIME_TERM_GRACE } else { RUNTIME_TERM_GRACE_INTERNAL };
                self.signal(ProcKind::Runtime, Signal::Term);
                self.timer(TimerId::RuntimeGrace(g), ctx.now + grace.min(budget));
            } else {
                self.signal(ProcKind::Runtime, Signal::Kill);
                self.timer(TimerId::RuntimeGrace(g), ctx.now + KILL_REAP_GRACE);
            }
        }
        if budget > Duration::ZERO {
            // Without a budget everything is killed at once; the reap timer covers it.
            self.timer(TimerId::TeardownDeadline(g), deadline);
        }
        self.teardown = Some(Teardown { reason, then, deadline, stage });
        if stage == Stage::WaitExtensions {
            self.send_shutdown_events();
        }
    }

    pub(super) fn signal(&mut self, kind: ProcKind, signal: Signal) {
        let proc = self.proc(kind);
        self.out.push(Action::Signal { proc, signal });
        self.observe(Observation::Signalled { process: self.process_name(kind), signal });
    }

    /// SHUTDOWN to every live extension that asked for it; the others are killed.
    pub(super) fn send_shutdown_events(&mut self) {
        let Some(td) = self.teardown.as_ref() else {
            return;
        };
        let event = NextEvent::Shutdown(ShutdownEvent {
            shutdown_reason: td.reason.clone(),
            deadline_ms: self.clock.epoch_ms(td.deadline),
        });
        let mut handled = vec![false; self.launched.len()];
        for i in 0..self.exts.len() {
            let ext = &self.exts[i];
            let Some(li) = ext.launched else { continue };
            handled[li] = true;
            if !self.launched[li].alive {
                continue;
            }
            if ext.shutdown && ext.live() {
                self.deliver(i, event.clone());
            } else {
                self.signal(ProcKind::Extension(li), Signal::Kill);
            }
        }
        // Launched but never registered (an init that failed early): nothing to tell.
        for (li, done) in handled.into_iter().enumerate() {
            if !done && self.launched[li].alive {
                self.signal(ProcKind::Extension(li), Signal::Kill);
            }
        }
    }

    pub(super) fn advance_teardown(&mut self, ctx: Ctx) -> bool {
        let alive = self.any_process_alive();
        let runtime_alive = self.runtime.alive;
        let Some(td) = self.teardown.as_mut() else {
            return false;
        };
        match td.stage {
            Stage::StopRuntime if !runtime_alive => {
                td.stage = Stage::WaitExtensions;
                self.send_shutdown_events();
                true
            }
            Stage::WaitExtensions | Stage::Killing if !alive => {
                let then = td.then;
                self.teardown = None;
                self.release_parked();
                self.exts.clear();
                self.launched.clear();
                self.finish_teardown(ctx, then);
                true
            }
            _ => false,
        }
    }

    pub(super) fn finish_teardown(&mut self, _ctx: Ctx, then: After) {
        match then {
            After::Reinit if !self.shutdown_requested => self.phase = PhaseState::NeedsInit,
            _ => {
                self.phase = PhaseState::Done;
                self.observe(Observation::ShutdownComplete);
                self.out.push(Action::ShutdownComplete);
            }
        }
    }
}
