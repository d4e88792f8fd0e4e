//! lifecycle::subscribe: the Telemetry and Logs APIs' subscription rules (only during
//! init, one API per extension, Lambda's validation) and the subscription record.

use super::{Action, Ctx, Lifecycle, PhaseState, Reply, Token};
use bytes::Bytes;
use tandem_wire::error::types as et;
use tandem_wire::subscription::Api;
use tandem_wire::telemetry::{self as tm, Record};

impl Lifecycle {
    pub(super) fn on_subscribe(&mut self, ctx: Ctx, token: Token, api: Api, id: Option<String>, body: Bytes) {
        let (validation, closed, conflict) = match api {
            Api::Telemetry => (et::TELEMETRY_VALIDATION, et::TELEMETRY_SUBSCRIPTION_CLOSED, et::TELEMETRY_CONFLICT),
            Api::Logs => (et::LOGS_VALIDATION, et::LOGS_SUBSCRIPTION_CLOSED, et::LOGS_CONFLICT),
        };
        let i = match self.lookup(id.as_deref()) {
            Ok(i) => i,
            Err(r) => return self.reply(token, r),
        };
        if self.phase != PhaseState::Initializing {
            return self.fail(token, 403, closed, "Subscriptions are accepted only during the init phase");
        }
        if let Some(other) = self.exts[i].api.filter(|a| *a != api) {
            let name = self.exts[i].name.clone();
            let other = if other == Api::Telemetry { "Telemetry" } else { "Logs" };
            return self.fail(
                token,
                403,
                conflict,
                format!("Extension {name} already subscribed through the {other} API; the Telemetry and Logs APIs are mutually exclusive"),
            );
        }
        let request: tandem_wire::SubscribeRequest = match serde_json::from_slice(&body) {
            Ok(r) => r,
            Err(e) => {
                return self.fail(token, 400, validation, format!("The request body is not a valid subscription: {e}"))
            }
        };
        let subscription = match request.validate(api) {
            Ok(s) => s,
            Err(msg) => return self.fail(token, 400, validation, msg),
        };
        let ext = &mut self.exts[i];
        ext.api = Some(api);
        let name = ext.name.clone();
        let types: Vec<String> = subscription.types.iter().map(|t| t.as_str().to_owned()).collect();
        self.out.push(Action::Subscribe { extension: name.clone(), subscription });
        let info = tm::SubscriptionInfo { name, state: "Subscribed".into(), types };
        let record = match api {
            Api::Telemetry => Record::TelemetrySubscription(info),
            Api::Logs => Record::LogsSubscription(info),
        };
        self.emit(ctx.now, record);
        self.reply(
            token,
            Reply {
                status: 200,
                headers: vec![("Content-Type", "text/plain".into())],
                body: Bytes::from_static(b"OK"),
            },
        );
    }
}
