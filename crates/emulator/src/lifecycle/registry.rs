//! lifecycle::registry: the extensions registered in the current environment instance,
//! and the Extensions API's rules with their error matrix: register, identifiers,
//! `next` and event delivery, `init/error` and `exit/error`. Part of the sans-I/O
//! lifecycle: no I/O here.

use super::{Action, After, Ctx, Lifecycle, Observation, PhaseState, Reply, Token, MAX_EXTENSIONS};
use bytes::Bytes;
use std::collections::VecDeque;
use tandem_wire::error::types as et;
use tandem_wire::extensions::{EventType, NextEvent, RegisterRequest, RegisterResponse};
use tandem_wire::headers;
use tandem_wire::subscription::Api;
use tandem_wire::telemetry::{self as tm, Record, Status};
use tandem_wire::ShutdownReason;

/// Where an extension is in its lifecycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExtState {
    /// Registered, has not called `next` yet.
    Registered,
    /// Waiting in `next`.
    Waiting,
    /// Handling an event it received.
    Busy,
    InitError,
    ExitError,
    /// Its process is gone.
    Gone,
}

/// A registered extension.
#[derive(Debug, Clone)]
pub struct Extension {
    pub id: String,
    pub name: String,
    /// Launched from the extensions directory (else registered from the runtime's process).
    pub external: bool,
    /// Index of its launched file, for external extensions.
    pub launched: Option<usize>,
    pub invoke: bool,
    pub shutdown: bool,
    pub state: ExtState,
    pub(super) parked: Option<Token>,
    pub(super) queued: VecDeque<NextEvent>,
    pub api: Option<Api>,
}

impl Extension {
    pub(super) fn live(&self) -> bool {
        !matches!(self.state, ExtState::Gone | ExtState::InitError | ExtState::ExitError)
    }

    pub(super) fn event_names(&self) -> Vec<String> {
        let mut v = Vec::new();
        if self.invoke {
            v.push(EventType::Invoke.as_str().to_owned());
        }
        if self.shutdown {
            v.push(EventType::Shutdown.as_str().to_owned());
        }
        v
    }
}

impl Lifecycle {
    /// Resolves a `Lambda-Extension-Identifier` header, or the 403 Lambda answers.
    pub(super) fn lookup(&self, id: Option<&str>) -> Result<usize, Reply> {
        let id = match id.map(str::trim).filter(|s| !s.is_empty()) {
            Some(id) => id,
            None => {
                return Err(Reply::error(
                    403,
                    et::EXTENSION_MISSING_ID,
                    format!("Missing header {}", headers::EXTENSION_IDENTIFIER),
                ))
            }
        };
        if uuid::Uuid::parse_str(id).is_err() {
            return Err(Reply::error(
                403,
                et::EXTENSION_INVALID_ID,
                format!("{} {id:?} is not a UUID", headers::EXTENSION_IDENTIFIER),
            ));
        }
        self.exts
            .iter()
            .position(|e| e.id == id)
            .ok_or_else(|| Reply::error(403, et::EXTENSION_UNKNOWN_ID, format!("Unknown extension identifier {id}")))
    }

    pub(super) fn on_register(
        &mut self,
        _ctx: Ctx,
        token: Token,
        name: Option<String>,
        body: Bytes,
        accept_account_id: bool,
    ) {
        let name = match name.map(|n| n.trim().to_owned()).filter(|n| !n.is_empty()) {
            Some(n) => n,
            None => {
                return self.fail(
                    token,
                    403,
                    et::EXTENSION_INVALID_NAME,
                    format!("Missing or empty header {}", headers::EXTENSION_NAME),
                )
            }
        };
        let request: RegisterRequest = if body.iter().all(u8::is_ascii_whitespace) {
            RegisterRequest::default()
        } else {
            match serde_json::from_slice(&body) {
                Ok(r) => r,
                Err(e) => {
                    return self.fail(
                        token,
                        403,
                        et::INVALID_REQUEST_FORMAT,
                        format!("Invalid register request body: {e}"),
                    )
                }
            }
        };
        if request.configuration_keys.is_some() {
            return self.fail(token, 403, et::INVALID_REQUEST_FORMAT, "configurationKeys is no longer supported");
        }
        if let Some(bad) = request.events.iter().find(|e| matches!(e, EventType::Other(_))) {
            return self.fail(
                token,
                403,
                et::EXTENSION_INVALID_EVENT_TYPE,
                format!("Unknown event type {bad}; use INVOKE or SHUTDOWN"),
            );
        }
        let open = self.phase == PhaseState::Initializing
            && self.init.as_ref().is_some_and(|i| !i.registration_closed && i.failure.is_none());
        if !open {
            return self.fail(token, 403, et::EXTENSION_REGISTRATION_CLOSED, "Registration is closed: init has ended");
        }
        if self.exts.iter().any(|e| e.name == name) {
            return self.fail(
                token,
                403,
                et::EXTENSION_INVALID_STATE,
                format!("Extension {name} is already registered"),
            );
        }
        if self.exts.len() >= MAX_EXTENSIONS {
            return self.fail(
                token,
                403,
                et::EXTENSION_TOO_MANY,
                format!("At most {MAX_EXTENSIONS} extensions can register"),
            );
        }
        let launched = self.launched.iter().position(|l| l.name == name && !l.registered);
        let external = launched.is_some();
        let invoke = request.events.contains(&EventType::Invoke);
        let shutdown = request.events.contains(&EventType::Shutdown);
        if !external && shutdown {
            return self.fail(
                token,
                403,
                et::EXTENSION_INVALID_EVENT_TYPE,
                format!("{name} is an internal extension (no launched file has that name); internal extensions cannot subscribe to SHUTDOWN"),
            );
        }
        if let Some(i) = launched {
            self.launched[i].registered = true;
        }
        let id = self.ids.uuid();
        let ext = Extension {
            id: id.clone(),
            name: name.clone(),
            external,
            launched,
            invoke,
            shutdown,
            state: ExtState::Registered,
            parked: None,
            queued: VecDeque::new(),
            api: None,
        };
        let events = ext.event_names();
        self.exts.push(ext);
        let body = RegisterResponse {
            function_name: self.cfg.function_name.clone(),
            function_version: self.cfg.function_version.clone(),
            handler: self.cfg.handler.clone(),
            account_id: accept_account_id.then(|| self.cfg.account_id.clone()),
        };
        let mut reply = Reply::json(200, &body);
        reply.headers.push((headers::EXTENSION_IDENTIFIER, id.clone()));
        self.out.push(Action::Reply { token, reply });
        self.observe(Observation::ExtensionRegistered { name, id, external, events });
    }

    pub(super) fn on_ext_next(&mut self, ctx: Ctx, token: Token, id: Option<String>) {
        let i = match self.lookup(id.as_deref()) {
            Ok(i) => i,
            Err(r) => return self.reply(token, r),
        };
        let ext = &mut self.exts[i];
        if matches!(ext.state, ExtState::InitError | ExtState::ExitError | ExtState::Gone) {
            let why = if ext.state == ExtState::Gone { "is no longer running" } else { "reported an error" };
            let name = ext.name.clone();
            return self.fail(
                token,
                403,
                et::EXTENSION_INVALID_STATE,
                format!("Extension {name} {why}; no further calls are accepted"),
            );
        }
        if ext.parked.is_some() {
            let name = ext.name.clone();
            return self.fail(
                token,
                403,
                et::EXTENSION_INVALID_STATE,
                format!("Extension {name} is already waiting for the next event"),
            );
        }
        let first = ext.state == ExtState::Registered;
        ext.state = ExtState::Waiting;
        ext.parked = Some(token);
        let queued = ext.queued.pop_front();
        if first {
            let info = tm::ExtensionInfo {
                name: ext.name.clone(),
                state: "Ready".into(),
                events: ext.event_names(),
                error_type: None,
            };
            let name = ext.name.clone();
            self.emit(ctx.now, Record::Extension(info));
            self.observe(Observation::ExtensionReady { name });
        }
        if let Some(inv) = self.invoke.as_mut() {
            if let Some(pos) = inv.pending.iter().position(|&p| p == i) {
                inv.pending.swap_remove(pos);
                inv.last_ext_next = Some(ctx.now);
            }
        }
        if let Some(event) = queued {
            if let Some(token) = self.exts[i].parked.take() {
                self.exts[i].state = ExtState::Busy;
                let mut reply = Reply::json(200, &event);
                reply.headers.push((headers::EXTENSION_EVENT_IDENTIFIER, self.ids.uuid()));
                self.reply(token, reply);
            }
        }
    }

    pub(super) fn on_ext_error(
        &mut self,
        ctx: Ctx,
        token: Token,
        id: Option<String>,
        error_type: Option<String>,
        body: Bytes,
        init: bool,
    ) {
        let i = match self.lookup(id.as_deref()) {
            Ok(i) => i,
            Err(r) => return self.reply(token, r),
        };
        let Some(error_type) = error_type.filter(|t| !t.is_empty()) else {
            return self.fail(
                token,
                403,
                et::EXTENSION_MISSING_HEADER,
                format!("Missing header {}", headers::EXTENSION_FUNCTION_ERROR_TYPE),
            );
        };
        let ext = &self.exts[i];
        let allowed = if init {
            ext.state == ExtState::Registered && self.phase == PhaseState::Initializing
        } else {
            !matches!(ext.state, ExtState::InitError | ExtState::ExitError)
        };
        if !allowed {
            let what = if init { "init/error" } else { "exit/error" };
            let name = ext.name.clone();
            return self.fail(
                token,
                403,
                et::EXTENSION_INVALID_STATE,
                format!("Extension {name} cannot report {what} in its current state"),
            );
        }
        self.reply(token, Reply::accepted());
        let name = self.exts[i].name.clone();
        let detail: Option<tandem_wire::ErrorRequest> = serde_json::from_slice(&body).ok();
        let message = detail.and_then(|d| d.error_message).map_or_else(
            || format!("Extension {name} reported {error_type}"),
            |m| format!("Extension {name} reported {error_type}: {m}"),
        );
        self.exts[i].state = if init { ExtState::InitError } else { ExtState::ExitError };
        if let Some(t) = self.exts[i].parked.take() {
            self.refuse_parked(t, false);
        }
        let fatal = if init { et::EXTENSION_INIT_ERROR } else { et::EXTENSION_EXIT_ERROR };
        match self.phase {
            PhaseState::Initializing => self.init_failed(Status::Error, fatal, message),
            PhaseState::Invoking => self.abort_invoke(ctx, Status::Error, fatal, message),
            PhaseState::Ready => self.begin_teardown(ctx, ShutdownReason::Failure, After::Reinit),
            _ => {}
        }
    }
}
