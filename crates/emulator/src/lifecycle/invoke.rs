//! lifecycle::invoke: one invocation: queued, dispatched to the runtime and the
//! extensions, answered to its caller, and ended with `runtimeDone` and its report, or
//! aborted (timeout, crash, out of memory) into a reset.

use super::{
    billed_ms, error_payload, trace_context, Action, After, Ctx, Ending, Invoke, InvokeRequest, InvokeResult,
    Lifecycle, Observation, PhaseState, Queued, Rejection, Reply, TimerId, Token,
};
use crate::clock::ms_between;
use bytes::Bytes;
use std::time::Instant;
use tandem_wire::error::types as et;
use tandem_wire::extensions::{InvokeEvent, InvokeTracing, NextEvent};
use tandem_wire::runtime::InvocationContext;
use tandem_wire::telemetry::{Record, Report, ReportMetrics, RuntimeDone, RuntimeDoneMetrics, Span, Start, Status};
use tandem_wire::ShutdownReason;

impl Lifecycle {
    pub(super) fn on_invoke(&mut self, ctx: Ctx, token: Token, request_id: String, request: InvokeRequest) {
        if self.shutdown_requested || matches!(self.phase, PhaseState::Done) {
            self.out.push(Action::Rejected { token, rejection: Rejection::ShuttingDown });
            return;
        }
        if self.queue.len() >= self.cfg.queue_limit {
            self.out.push(Action::Rejected { token, rejection: Rejection::TooManyRequests });
            return;
        }
        let tracing = trace_context(&self.clock, &mut self.ids, ctx.now, &request);
        self.queue.push_back(Queued { token, request_id, request, tracing });
    }

    pub(super) fn start_invoke(&mut self, ctx: Ctx, q: Queued, init_start: Option<Instant>) {
        self.thaw();
        self.invoke_seq += 1;
        let seq = self.invoke_seq;
        let deadline = ctx.now + self.cfg.timeout;
        let deadline_ms = self.clock.epoch_ms(deadline);
        let tracing = q.tracing.clone();
        let arn = self.cfg.function_arn();
        self.emit_start(ctx, &q);
        self.observe(Observation::InvokeStart { request_id: q.request_id.clone() });
        let event = NextEvent::Invoke(InvokeEvent {
            deadline_ms,
            request_id: q.request_id.clone(),
            invoked_function_arn: arn.clone(),
            tracing: Some(InvokeTracing { kind: tracing.kind.clone(), value: tracing.value.clone() }),
        });
        let mut pending = Vec::new();
        for i in 0..self.exts.len() {
            if self.exts[i].invoke && self.exts[i].live() {
                pending.push(i);
                self.deliver(i, event.clone());
            }
        }
        let context = InvocationContext {
            request_id: q.request_id.clone(),
            deadline_ms,
            invoked_function_arn: arn,
            trace_id: Some(tracing.value.clone()),
            client_context: q.request.client_context.clone(),
            cognito_identity: q.request.cognito_identity.clone(),
        };
        if let Some(token) = self.runtime.parked.take() {
            let mut headers: Vec<(&'static str, String)> = context.headers();
            headers.push(("Content-Type", "application/json".into()));
            self.reply(token, Reply { status: 200, headers, body: q.request.payload.clone() });
        }
        self.timer(TimerId::Invoke(seq), deadline);
        self.phase = PhaseState::Invoking;
        self.invoke = Some(Invoke {
            seq,
            caller: Some(q.token),
            want_tail: q.request.want_tail,
            request_id: q.request_id,
            start: init_start.unwrap_or(ctx.now),
            dispatched: ctx.now,
            tracing,
            responded: false,
            response: None,
            status: Status::Success,
            error_type: None,
            runtime_next: None,
            runtime_done_emitted: false,
            pending,
            last_ext_next: None,
            init_duration_ms: if init_start.is_none() { self.cold_init_ms.take() } else { None },
        });
    }

    /// The invocation's `platform.start`.
    pub(super) fn emit_start(&mut self, ctx: Ctx, q: &Queued) {
        let record = Start {
            request_id: q.request_id.clone(),
            version: Some(self.cfg.function_version.clone()),
            tracing: Some(q.tracing.clone()),
        };
        self.emit(ctx.now, Record::Start(record));
    }

    /// Answers the caller (once) with the function's result.
    pub(super) fn answer_caller(&mut self, payload: Bytes, function_error: bool) {
        let Some(inv) = self.invoke.as_mut() else {
            return;
        };
        let Some(token) = inv.caller.take() else {
            return;
        };
        let result = InvokeResult {
            request_id: inv.request_id.clone(),
            payload,
            function_error: function_error.then(|| et::FUNCTION_ERROR_UNHANDLED.to_owned()),
            error_type: inv.error_type.clone(),
            status: inv.status.clone(),
            want_tail: inv.want_tail,
        };
        self.out.push(Action::InvokeResult { token, result });
    }

    pub(super) fn emit_runtime_done(&mut self, ctx: Ctx) {
        let Some(inv) = self.invoke.as_mut() else {
            return;
        };
        if inv.runtime_done_emitted {
            return;
        }
        inv.runtime_done_emitted = true;
        let end = inv.runtime_next.unwrap_or(ctx.now);
        let mut spans = Vec::new();
        if let Some(r) = &inv.response {
            spans.push(Span {
                name: "responseLatency".into(),
                start: self.clock.rfc3339(inv.dispatched),
                duration_ms: ms_between(inv.dispatched, r.first_byte),
            });
            spans.push(Span {
                name: "responseDuration".into(),
                start: self.clock.rfc3339(r.first_byte),
                duration_ms: ms_between(r.first_byte, r.last_byte),
            });
            if let Some(next) = inv.runtime_next {
                spans.push(Span {
                    name: "runtimeOverhead".into(),
                    start: self.clock.rfc3339(r.last_byte),
                    duration_ms: ms_between(r.last_byte, next),
                });
            }
        }
        let record = RuntimeDone {
            request_id: inv.request_id.clone(),
            status: inv.status.clone(),
            error_type: inv.error_type.clone(),
            metrics: Some(RuntimeDoneMetrics {
                duration_ms: ms_between(inv.dispatched, end),
                produced_bytes: Some(inv.response.as_ref().map_or(0, |r| r.bytes)),
            }),
            spans: (!spans.is_empty()).then_some(spans),
            tracing: Some(inv.tracing.clone()),
        };
        self.emit(ctx.now, Record::RuntimeDone(record));
    }

    /// Ends an invocation as Lambda does: its `platform.report` (once every extension is
    /// done with it, or at once when it failed) and the observation.
    pub(super) fn end_invocation(&mut self, ctx: Ctx, e: Ending) {
        self.emit(
            ctx.now,
            Record::Report(Report {
                request_id: e.request_id.clone(),
                status: Some(e.status.clone()),
                error_type: e.error_type.clone(),
                metrics: ReportMetrics {
                    duration_ms: e.duration_ms,
                    // A cold start bills its init too (custom runtimes always, managed
                    // ones since 2025-08-01): the rounded-up sum of both durations.
                    billed_duration_ms: billed_ms(e.duration_ms + e.init_duration_ms.unwrap_or(0.0)),
                    memory_size_mb: self.cfg.memory_mb,
                    // Measured by the driver as it writes the report (memory is I/O).
                    max_memory_used_mb: 0,
                    init_duration_ms: e.init_duration_ms,
                    restore_duration_ms: None,
                    billed_restore_duration_ms: None,
                },
                spans: e.spans,
                tracing: Some(e.tracing),
            }),
        );
        self.observe(Observation::InvokeEnd {
            request_id: e.request_id,
            status: e.status,
            error_type: e.error_type,
            duration_ms: e.duration_ms,
        });
    }

    pub(super) fn advance_invoke(&mut self, ctx: Ctx) -> bool {
        let Some(inv) = self.invoke.as_ref() else {
            return false;
        };
        let Some(runtime_next) = inv.runtime_next else {
            return false;
        };
        if !inv.pending.is_empty() {
            return false;
        }
        let Some(inv) = self.invoke.take() else {
            return false;
        };
        let end = inv.last_ext_next.map_or(runtime_next, |e| e.max(runtime_next));
        let duration_ms = ms_between(inv.start, end);
        let spans = self.exts.iter().any(|e| e.invoke).then(|| {
            vec![Span {
                name: "extensionOverhead".into(),
                start: self.clock.rfc3339(runtime_next),
                duration_ms: ms_between(runtime_next, end),
            }]
        });
        self.end_invocation(
            ctx,
            Ending {
                request_id: inv.request_id,
                status: inv.status,
                error_type: inv.error_type,
                duration_ms,
                init_duration_ms: inv.init_duration_ms,
                spans,
                tracing: inv.tracing,
            },
        );
        self.phase = PhaseState::Ready;
        true
    }

    /// Fails the invocation in flight (timeout, crash, out of memory) and resets.
    pub(super) fn abort_invoke(&mut self, ctx: Ctx, status: Status, error_type: &str, message: String) {
        let Some(inv) = self.invoke.as_mut() else {
            return;
        };
        inv.status = status.clone();
        inv.error_type = Some(error_type.to_owned());
        let request_id = inv.request_id.clone();
        let payload = if status == Status::Timeout {
            let body = serde_json::json!({ "errorMessage": format!("{} {} {}", self.clock.rfc3339(ctx.now), request_id, message) });
            Bytes::from(body.to_string())
        } else {
            error_payload(error_type, &format!("RequestId: {request_id} Error: {message}"))
        };
        self.answer_caller(payload, true);
        self.emit_runtime_done(ctx);
        if status != Status::Timeout {
            // Lambda's two log lines for a crash: the message, then the error type.
            self.out.push(Action::ConsoleLine(format!("RequestId: {request_id} Error: {message}")));
            self.out.push(Action::ConsoleLine(error_type.to_owned()));
        }
        let Some(inv) = self.invoke.take() else {
            return;
        };
        let duration_ms = ms_between(inv.start, ctx.now);
        self.end_invocation(
            ctx,
            Ending {
                request_id: inv.request_id,
                status: status.clone(),
                error_type: Some(error_type.to_owned()),
                duration_ms,
                init_duration_ms: inv.init_duration_ms,
                spans: None,
                tracing: inv.tracing,
            },
        );
        let reason = if status == Status::Timeout { ShutdownReason::Timeout } else { ShutdownReason::Failure };
        self.begin_teardown(ctx, reason, After::Reinit);
    }
}
