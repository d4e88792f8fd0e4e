//! lifecycle::runtime_api: the Runtime API's rules and its error matrix: `next`,
//! `response` (buffered, streamed, too large), `error` and `init/error`, and the
//! dispatch of every API call to its rules.

use super::{error_payload, status_for, ApiCall, Ctx, Lifecycle, Observation, PhaseState, Reply, ResponseInfo, Token};
use bytes::Bytes;
use tandem_wire::error::types as et;
use tandem_wire::telemetry::Status;

impl Lifecycle {
    pub(super) fn on_api(&mut self, ctx: Ctx, token: Token, call: ApiCall) {
        match call {
            ApiCall::RuntimeNext => self.on_runtime_next(ctx, token),
            ApiCall::RuntimeResponse { request_id, body, first_byte, last_byte, error_trailer } => {
                if !self.check_invocation(token, &request_id) {
                    return;
                }
                self.reply(token, Reply::accepted());
                let bytes = body.len() as u64;
                if let Some(inv) = self.invoke.as_mut() {
                    inv.responded = true;
                    inv.response = Some(ResponseInfo { first_byte, last_byte, bytes });
                }
                self.observe(Observation::RuntimeResponded { request_id: request_id.clone() });
                match error_trailer {
                    Some((error_type, error_body)) => {
                        if let Some(inv) = self.invoke.as_mut() {
                            inv.status = status_for(&error_type);
                            inv.error_type = Some(error_type.clone());
                        }
                        let mut payload = body.to_vec();
                        payload.extend_from_slice(&error_body);
                        self.answer_caller(Bytes::from(payload), true);
                    }
                    None => self.answer_caller(body, false),
                }
            }
            ApiCall::ResponseStart { request_id } => {
                if self.check_invocation(token, &request_id) {
                    self.reply(token, Reply::accepted());
                }
            }
            ApiCall::RuntimeResponseTruncated { request_id, received, error } => {
                if !self.check_invocation(token, &request_id) {
                    return;
                }
                self.fail(
                    token,
                    400,
                    et::RUNTIME_TRUNCATED_RESPONSE,
                    format!("The response ended after {received} bytes, before its announced end: {error}"),
                );
                let now = ctx.now;
                if let Some(inv) = self.invoke.as_mut() {
                    inv.responded = true;
                    inv.response = Some(ResponseInfo { first_byte: now, last_byte: now, bytes: received as u64 });
                    inv.status = Status::Error;
                    inv.error_type = Some(et::RUNTIME_TRUNCATED_RESPONSE.into());
                }
                self.observe(Observation::RuntimeResponded { request_id: request_id.clone() });
                let payload = error_payload(
                    et::RUNTIME_TRUNCATED_RESPONSE,
                    &format!(
                        "RequestId: {request_id} Error: the runtime's response was truncated after {received} bytes"
                    ),
                );
                self.answer_caller(payload, true);
            }
            ApiCall::RuntimeResponseTooLarge { request_id, size, limit } => {
                if !self.check_invocation(token, &request_id) {
                    return;
                }
                self.fail(
                    token,
                    413,
                    et::REQUEST_ENTITY_TOO_LARGE,
                    format!("Exceeded maximum allowed payload size ({limit} bytes)."),
                );
                let now = ctx.now;
                if let Some(inv) = self.invoke.as_mut() {
                    inv.responded = true;
                    inv.response = Some(ResponseInfo { first_byte: now, last_byte: now, bytes: 0 });
                    inv.status = Status::Error;
                    inv.error_type = Some(et::FUNCTION_RESPONSE_TOO_LARGE.into());
                }
                let payload = error_payload(
                    et::FUNCTION_RESPONSE_TOO_LARGE,
                    &format!(
                        "Response payload size ({size} bytes) exceeded maximum allowed payload size ({limit} bytes)."
                    ),
                );
                self.answer_caller(payload, true);
            }
            ApiCall::RuntimeError { request_id, error_type, body, received } => {
                if !self.check_invocation(token, &request_id) {
                    return;
                }
                self.reply(token, Reply::accepted());
                let (error_type, parsed) = runtime_error(error_type, &body);
                let payload =
                    if parsed.is_some() { body } else { error_payload(&error_type, &String::from_utf8_lossy(&body)) };
                if let Some(inv) = self.invoke.as_mut() {
                    inv.responded = true;
                    inv.response = Some(ResponseInfo { first_byte: received, last_byte: received, bytes: 0 });
                    inv.status = status_for(&error_type);
                    inv.error_type = Some(error_type);
                }
                self.observe(Observation::RuntimeResponded { request_id });
                self.answer_caller(payload, true);
            }
            ApiCall::RuntimeInitError { error_type, body } => {
                let before_first_next = self.phase == PhaseState::Initializing
                    && self.init.as_ref().is_some_and(|i| i.runtime_spawned && !i.runtime_done_emitted);
                if !before_first_next {
                    return self.fail(
                        token,
                        403,
                        et::INVALID_STATE_TRANSITION,
                        "init/error is only allowed during init, before the first next",
                    );
                }
                self.reply(token, Reply::accepted());
                let (error_type, parsed) = runtime_error(error_type, &body);
                let document = parsed.is_some().then(|| body.clone());
                let message =
                    parsed.and_then(|p| p.error_message).unwrap_or_else(|| String::from_utf8_lossy(&body).into_owned());
                self.init_failed_with(status_for(&error_type), &error_type, message, document);
            }
            ApiCall::ExtRegister { name, body, accept_account_id } => {
                self.on_register(ctx, token, name, body, accept_account_id)
            }
            ApiCall::ExtNext { id } => self.on_ext_next(ctx, token, id),
            ApiCall::ExtInitError { id, error_type, body } => self.on_ext_error(ctx, token, id, error_type, body, true),
            ApiCall::ExtExitError { id, error_type, body } => {
                self.on_ext_error(ctx, token, id, error_type, body, false)
            }
            ApiCall::Subscribe { api, id, body } => self.on_subscribe(ctx, token, api, id, body),
        }
    }

    /// Checks that `request_id` may be answered now; replies with the error if not.
    pub(super) fn check_invocation(&mut self, token: Token, request_id: &str) -> bool {
        match self.invoke.as_ref() {
            Some(inv) if inv.request_id == request_id => {
                if inv.responded {
                    self.fail(
                        token,
                        403,
                        et::INVALID_STATE_TRANSITION,
                        format!("Invocation {request_id} has already been answered"),
                    );
                    false
                } else {
                    true
                }
            }
            Some(_) => {
                self.fail(token, 400, et::INVALID_REQUEST_ID, format!("Invalid request ID: {request_id}"));
                false
            }
            None => {
                self.fail(
                    token,
                    400,
                    et::INVALID_REQUEST_ID,
                    format!("No invocation in progress with request ID {request_id}"),
                );
                false
            }
        }
    }

    pub(super) fn on_runtime_next(&mut self, ctx: Ctx, token: Token) {
        if self.runtime.parked.is_some() {
            return self.fail(
                token,
                403,
                et::INVALID_STATE_TRANSITION,
                "The runtime is already waiting for the next invocation",
            );
        }
        match self.phase {
            PhaseState::Initializing => {
                let phase = match self.init.as_mut() {
                    Some(init) if !init.runtime_done_emitted => {
                        init.runtime_done_emitted = true;
                        init.registration_closed = true;
                        Some(init.phase.clone())
                    }
                    _ => None,
                };
                if let Some(phase) = phase {
                    self.emit_init_runtime_done(ctx.now, &phase, Status::Success, None);
                    self.observe(Observation::RuntimeReady);
                }
                self.runtime.parked = Some(token);
            }
            PhaseState::Invoking => {
                let responded = self.invoke.as_ref().is_some_and(|i| i.responded);
                if !responded {
                    return self.fail(
                        token,
                        403,
                        et::INVALID_STATE_TRANSITION,
                        "The runtime asked for the next invocation before answering the current one",
                    );
                }
                if let Some(inv) = self.invoke.as_mut() {
                    if inv.runtime_next.is_none() {
                        inv.runtime_next = Some(ctx.now);
                    }
                }
                self.runtime.parked = Some(token);
                self.emit_runtime_done(ctx);
            }
            _ => self.runtime.parked = Some(token),
        }
    }
}

/// The error type of a runtime's `…/error` post: its header, else the body's
/// `errorType`, else `Runtime.Unknown`; with the body, when it is the usual JSON.
fn runtime_error(header: Option<String>, body: &[u8]) -> (String, Option<tandem_wire::ErrorRequest>) {
    let parsed: Option<tandem_wire::ErrorRequest> = serde_json::from_slice(body).ok();
    let error_type = header
        .filter(|t| !t.is_empty())
        .or_else(|| parsed.as_ref().and_then(|p| p.error_type.clone()))
        .unwrap_or_else(|| et::RUNTIME_UNKNOWN.to_owned());
    (error_type, parsed)
}
