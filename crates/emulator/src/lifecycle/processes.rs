//! lifecycle::processes: what happens when a process fails to start or exits, and
//! when a timer fires (init limit, invoke timeout, runtime grace, shutdown deadline).

use super::{
    Action, After, Ctx, ExitInfo, ExtState, Lifecycle, Observation, PhaseState, ProcId, ProcKind, Signal, Stage,
    TimerId, Token, KILL_REAP_GRACE,
};
use tandem_wire::error::types as et;
use tandem_wire::telemetry::{self as tm, Status};
use tandem_wire::ShutdownReason;

impl Lifecycle {
    pub(super) fn on_spawn_failed(&mut self, ctx: Ctx, proc: ProcId, error: String) {
        let _ = ctx;
        if proc.generation != self.generation {
            return;
        }
        match proc.kind {
            ProcKind::Runtime => {
                self.runtime.alive = false;
                self.init_failed(Status::Error, et::RUNTIME_INVALID_ENTRYPOINT, error);
            }
            ProcKind::Extension(i) => {
                if let Some(l) = self.launched.get_mut(i) {
                    l.alive = false;
                }
                self.init_failed(Status::Error, et::EXTENSION_LAUNCH_ERROR, error);
            }
        }
    }

    pub(super) fn on_exited(&mut self, ctx: Ctx, proc: ProcId, exit: ExitInfo) {
        if proc.generation != self.generation {
            return;
        }
        self.observe(Observation::ProcessExited { process: self.process_name(proc.kind), exit });
        let what = match proc.kind {
            ProcKind::Runtime => {
                self.runtime.alive = false;
                let mut gone: Vec<(Token, bool)> = self.runtime.parked.take().map(|t| (t, true)).into_iter().collect();
                for e in self.exts.iter_mut().filter(|e| !e.external) {
                    // Internal extensions live in the runtime's process.
                    e.state = ExtState::Gone;
                    gone.extend(e.parked.take().map(|t| (t, false)));
                }
                for (t, runtime) in gone {
                    self.refuse_parked(t, runtime);
                }
                et::RUNTIME_EXIT_ERROR
            }
            ProcKind::Extension(i) => {
                if let Some(l) = self.launched.get_mut(i) {
                    l.alive = false;
                }
                let mut gone = Vec::new();
                for e in self.exts.iter_mut().filter(|e| e.launched == Some(i)) {
                    e.state = ExtState::Gone;
                    gone.extend(e.parked.take());
                }
                for t in gone {
                    self.refuse_parked(t, false);
                }
                et::EXTENSION_CRASH
            }
        };
        let error_type = if exit.oom { et::RUNTIME_OUT_OF_MEMORY } else { what };
        let message = if proc.kind == ProcKind::Runtime || exit.oom {
            format!("Runtime exited with error: {exit}")
        } else {
            format!("Extension {} exited: {exit}", self.process_name(proc.kind))
        };
        match self.phase {
            PhaseState::Initializing => self.init_failed(Status::Error, error_type, message),
            PhaseState::Invoking => self.abort_invoke(ctx, Status::Error, error_type, message),
            PhaseState::Ready => self.begin_teardown(ctx, ShutdownReason::Failure, After::Reinit),
            _ => {}
        }
    }

    pub(super) fn kill_all(&mut self) {
        if self.runtime.alive {
            self.signal(ProcKind::Runtime, Signal::Kill);
        }
        for i in 0..self.launched.len() {
            if self.launched[i].alive {
                self.signal(ProcKind::Extension(i), Signal::Kill);
            }
        }
    }

    pub(super) fn on_timer(&mut self, ctx: Ctx, id: TimerId) {
        let g = self.generation;
        match id {
            TimerId::Init(gen) if gen == g && self.phase == PhaseState::Initializing => {
                let secs = match self.init.as_ref().map(|i| &i.phase) {
                    Some(tm::Phase::Init) => self.cfg.init_timeout,
                    _ => self.cfg.timeout,
                };
                self.init_failed(
                    Status::Timeout,
                    et::SANDBOX_TIMEOUT,
                    format!("Init timed out after {:.2} seconds", secs.as_secs_f64()),
                );
            }
            TimerId::Invoke(seq) if self.invoke.as_ref().is_some_and(|i| i.seq == seq) => {
                let secs = self.cfg.timeout.as_secs_f64();
                self.abort_invoke(
                    ctx,
                    Status::Timeout,
                    et::SANDBOX_TIMEOUT,
                    format!("Task timed out after {secs:.2} seconds"),
                );
            }
            TimerId::RuntimeGrace(gen) if gen == g => {
                if let Some(td) = self.teardown.as_mut().filter(|t| t.stage == Stage::StopRuntime) {
                    // Its grace is over: killed, and SHUTDOWN goes out now rather than
                    // after a runtime stuck in the kernel is reaped.
                    td.stage = Stage::WaitExtensions;
                    if self.runtime.alive {
                        self.signal(ProcKind::Runtime, Signal::Kill);
                    }
                    self.send_shutdown_events();
                }
            }
            TimerId::TeardownDeadline(gen) if gen == g => {
                if let Some(td) = self.teardown.as_mut() {
                    if td.stage != Stage::Killing {
                        let before_shutdown = td.stage == Stage::StopRuntime;
                        td.stage = Stage::Killing;
                        if td.then == After::Done {
                            self.out.push(Action::StopTelemetry);
                        }
                        if before_shutdown {
                            // Out of time before SHUTDOWN could even be sent.
                            self.send_shutdown_events();
                        }
                        self.kill_all();
                        self.timer(TimerId::Reap(g), ctx.now + KILL_REAP_GRACE);
                    }
                }
            }
            TimerId::Reap(gen) if gen == g => {
                if let Some(td) = self.teardown.as_ref().filter(|t| t.stage == Stage::Killing) {
                    // Processes that ignore SIGKILL (stuck in the kernel) are given up on.
                    let then = td.then;
                    self.teardown = None;
                    self.runtime.alive = false;
                    self.launched.iter_mut().for_each(|l| l.alive = false);
                    self.release_parked();
                    self.exts.clear();
                    self.launched.clear();
                    self.finish_teardown(ctx, then);
                }
            }
            _ => {}
        }
    }
}
