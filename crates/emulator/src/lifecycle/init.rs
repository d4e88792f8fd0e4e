//! lifecycle::init: an init from its start to its end, however it ends: extensions
//! launched at once, the runtime once they registered, the init's records, and a
//! failed init (with the invocation waiting for a suppressed init) turned into a reset.

use super::{
    error_payload, Action, After, Ctx, Ending, Failure, Init, InvokeResult, Launched, Lifecycle, Observation,
    PhaseState, ProcKind, Queued, Runtime, TimerId, RUNTIME_VERSION, RUNTIME_VERSION_ID,
};
use crate::clock::ms_between;
use bytes::Bytes;
use std::time::Instant;
use tandem_wire::error::types as et;
use tandem_wire::telemetry::{
    self as tm, InitStart, InitializationType, PhaseDone, PhaseMetrics, PhaseReport, Record, RuntimeDone,
    RuntimeDoneMetrics, Status,
};
use tandem_wire::ShutdownReason;

impl Lifecycle {
    pub(super) fn begin_init(&mut self, ctx: Ctx, phase: tm::Phase, attached: Option<Queued>) {
        self.release_parked();
        self.generation += 1;
        self.phase = PhaseState::Initializing;
        self.exts.clear();
        self.launched = self
            .cfg
            .extensions
            .iter()
            .map(|name| Launched { name: name.clone(), alive: true, registered: false })
            .collect();
        self.runtime = Runtime { alive: false, parked: None };
        self.init = Some(Init {
            start: ctx.now,
            phase: phase.clone(),
            runtime_spawned: false,
            runtime_done_emitted: false,
            registration_closed: false,
            failure: None,
            attached,
        });
        self.out.push(Action::ResetMemoryPeak);
        self.emit(
            ctx.now,
            Record::InitStart(InitStart {
                initialization_type: InitializationType::OnDemand,
                phase: phase.clone(),
                function_name: Some(self.cfg.function_name.clone()),
                function_version: Some(self.cfg.function_version.clone()),
                instance_id: Some(self.instance_id.clone()),
                instance_max_memory: Some(self.cfg.memory_mb),
                runtime_version: Some(RUNTIME_VERSION.into()),
                runtime_version_arn: Some(format!("arn:aws:lambda:{}::runtime:{RUNTIME_VERSION_ID}", self.cfg.region)),
                tracing: None,
            }),
        );
        self.observe(Observation::InitStart { phase: phase.clone() });
        // Every extension starts at once; the runtime waits for their registrations.
        for i in 0..self.launched.len() {
            let proc = self.proc(ProcKind::Extension(i));
            self.out.push(Action::Spawn { proc });
        }
        let limit = match phase {
            tm::Phase::Init => self.cfg.init_timeout,
            _ => self.cfg.timeout,
        };
        self.timer(TimerId::Init(self.generation), ctx.now + limit);
    }

    pub(super) fn init_failed(&mut self, status: Status, error_type: &str, message: String) {
        self.init_failed_with(status, error_type, message, None);
    }

    /// An init failure with the runtime's own error document (`init/error`).
    pub(super) fn init_failed_with(&mut self, status: Status, error_type: &str, message: String, body: Option<Bytes>) {
        if let Some(init) = self.init.as_mut() {
            if init.failure.is_none() {
                init.failure = Some(Failure { status, error_type: error_type.to_owned(), message, body });
            }
        }
    }

    pub(super) fn advance_init(&mut self, ctx: Ctx) -> bool {
        let Some(init) = self.init.as_mut() else {
            return false;
        };
        if let Some(f) = init.failure.clone() {
            let init = match self.init.take() {
                Some(i) => i,
                None => return false,
            };
            self.finish_failed_init(ctx, init, f);
            return true;
        }
        if !init.runtime_spawned {
            if self.launched.iter().all(|l| l.registered) {
                init.runtime_spawned = true;
                self.runtime.alive = true;
                let proc = self.proc(ProcKind::Runtime);
                self.out.push(Action::Spawn { proc });
                return true;
            }
            return false;
        }
        let all_ready = self.exts.iter().all(|e| e.parked.is_some());
        if self.runtime.parked.is_none() || !all_ready {
            return false;
        }
        let Some(init) = self.init.take() else {
            return false;
        };
        let duration_ms = ms_between(init.start, ctx.now);
        self.end_init(ctx, &init.phase, Status::Success, None, duration_ms);
        self.phase = PhaseState::Ready;
        match init.attached {
            Some(q) => {
                // A suppressed init: its time is part of the invocation it serves.
                self.start_invoke(ctx, q, Some(init.start));
            }
            None => self.cold_init_ms = Some(duration_ms),
        }
        true
    }

    pub(super) fn emit_init_runtime_done(
        &mut self,
        at: Instant,
        phase: &tm::Phase,
        status: Status,
        error_type: Option<String>,
    ) {
        let record = PhaseDone {
            initialization_type: Some(InitializationType::OnDemand),
            phase: Some(phase.clone()),
            status,
            error_type,
            spans: None,
            tracing: None,
        };
        self.emit(at, Record::InitRuntimeDone(record));
    }

    /// Ends an init, however it ended: its `platform.initReport` and the observation.
    pub(super) fn end_init(
        &mut self,
        ctx: Ctx,
        phase: &tm::Phase,
        status: Status,
        error_type: Option<String>,
        duration_ms: f64,
    ) {
        let record = PhaseReport {
            initialization_type: Some(InitializationType::OnDemand),
            phase: Some(phase.clone()),
            status: status.clone(),
            error_type: error_type.clone(),
            metrics: Some(PhaseMetrics { duration_ms }),
            spans: None,
            tracing: None,
        };
        self.emit(ctx.now, Record::InitReport(record));
        self.observe(Observation::InitEnd { status, error_type, duration_ms });
    }

    pub(super) fn finish_failed_init(&mut self, ctx: Ctx, init: Init, f: Failure) {
        let duration_ms = ms_between(init.start, ctx.now);
        if init.runtime_spawned && !init.runtime_done_emitted {
            self.emit_init_runtime_done(ctx.now, &init.phase, f.status.clone(), Some(f.error_type.clone()));
        }
        self.end_init(ctx, &init.phase, f.status.clone(), Some(f.error_type.clone()), duration_ms);
        if let Some(q) = init.attached {
            // The invocation that waited for this init fails with the init's error.
            let tracing = q.tracing.clone();
            self.emit_start(ctx, &q);
            let payload = f.body.clone().unwrap_or_else(|| {
                error_payload(&f.error_type, &format!("RequestId: {} Error: {}", q.request_id, f.message))
            });
            let duration_ms = ms_between(init.start, ctx.now);
            self.out.push(Action::InvokeResult {
                token: q.token,
                result: InvokeResult {
                    request_id: q.request_id.clone(),
                    payload,
                    function_error: Some(et::FUNCTION_ERROR_UNHANDLED.into()),
                    error_type: Some(f.error_type.clone()),
                    status: f.status.clone(),
                    want_tail: q.request.want_tail,
                },
            });
            self.emit(
                ctx.now,
                Record::RuntimeDone(RuntimeDone {
                    request_id: q.request_id.clone(),
                    status: f.status.clone(),
                    error_type: Some(f.error_type.clone()),
                    metrics: Some(RuntimeDoneMetrics { duration_ms, produced_bytes: Some(0) }),
                    spans: None,
                    tracing: Some(tracing.clone()),
                }),
            );
            self.end_invocation(
                ctx,
                Ending {
                    request_id: q.request_id,
                    status: f.status.clone(),
                    error_type: Some(f.error_type.clone()),
                    duration_ms,
                    init_duration_ms: None,
                    spans: None,
                    tracing,
                },
            );
        }
        self.begin_teardown(ctx, ShutdownReason::Failure, After::Reinit);
    }
}
