//! Extensions API (2020-01-01): register, next event, errors.

use crate::strings::open_enum;
use serde::{Deserialize, Serialize};

open_enum! {
    /// An event an extension can subscribe to.
    EventType { Invoke = "INVOKE", Shutdown = "SHUTDOWN" }
}

open_enum! {
    /// Why the environment shuts down (lowercase on the wire).
    ShutdownReason { Spindown = "spindown", Timeout = "timeout", Failure = "failure" }
}

/// Body of `POST /extension/register`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RegisterRequest {
    /// The events it wants from `next`.
    #[serde(default)]
    pub events: Vec<EventType>,
    /// Deprecated; Lambda rejects a request that carries it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub configuration_keys: Option<serde_json::Value>,
}

/// Body of a successful register answer.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RegisterResponse {
    /// `AWS_LAMBDA_FUNCTION_NAME`.
    #[serde(default)]
    pub function_name: String,
    /// `AWS_LAMBDA_FUNCTION_VERSION`.
    #[serde(default)]
    pub function_version: String,
    /// `_HANDLER`.
    #[serde(default)]
    pub handler: String,
    /// Present only when `Lambda-Extension-Accept-Feature: accountId` was sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account_id: Option<String>,
}

/// `{"type":"X-Amzn-Trace-Id","value":"Root=…"}` in INVOKE events.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InvokeTracing {
    /// `X-Amzn-Trace-Id`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The trace header (`Root=…;Parent=…;Sampled=…`).
    pub value: String,
}

/// The INVOKE event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InvokeEvent {
    /// The invocation's deadline, milliseconds since the epoch.
    pub deadline_ms: u64,
    /// The invocation's request id.
    pub request_id: String,
    /// The ARN the function was invoked with.
    pub invoked_function_arn: String,
    /// The invocation's trace header.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tracing: Option<InvokeTracing>,
}

/// The SHUTDOWN event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ShutdownEvent {
    /// Why the environment shuts down.
    pub shutdown_reason: ShutdownReason,
    /// When the extension will be killed, milliseconds since the epoch.
    pub deadline_ms: u64,
}

/// What `GET /extension/event/next` returns.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "eventType")]
pub enum NextEvent {
    /// An invocation started.
    #[serde(rename = "INVOKE")]
    Invoke(InvokeEvent),
    /// The environment shuts down.
    #[serde(rename = "SHUTDOWN")]
    Shutdown(ShutdownEvent),
}

impl NextEvent {
    /// Which event type this is.
    pub fn event_type(&self) -> EventType {
        match self {
            NextEvent::Invoke(_) => EventType::Invoke,
            NextEvent::Shutdown(_) => EventType::Shutdown,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_events_round_trip_with_lambda_spelling() {
        let inv = NextEvent::Invoke(InvokeEvent {
            deadline_ms: 1_700_000_003_000,
            request_id: "r-1".into(),
            invoked_function_arn: "arn:aws:lambda:us-east-1:012345678912:function:f".into(),
            tracing: Some(InvokeTracing { kind: "X-Amzn-Trace-Id".into(), value: "Root=1-2-3".into() }),
        });
        let json = serde_json::to_value(&inv).unwrap();
        assert_eq!(json["eventType"], "INVOKE");
        assert_eq!(json["deadlineMs"], 1_700_000_003_000u64);
        assert_eq!(json["invokedFunctionArn"], "arn:aws:lambda:us-east-1:012345678912:function:f");
        assert_eq!(json["tracing"]["type"], "X-Amzn-Trace-Id");
        assert_eq!(serde_json::from_value::<NextEvent>(json).unwrap(), inv);

        let sd: NextEvent =
            serde_json::from_str(r#"{"eventType":"SHUTDOWN","shutdownReason":"spindown","deadlineMs":5,"extra":1}"#)
                .unwrap();
        assert_eq!(
            sd,
            NextEvent::Shutdown(ShutdownEvent { shutdown_reason: ShutdownReason::Spindown, deadline_ms: 5 })
        );
    }

    #[test]
    fn register_request_keeps_unknown_events_for_validation() {
        let r: RegisterRequest = serde_json::from_str(r#"{"events":["INVOKE","BOGUS"]}"#).unwrap();
        assert_eq!(r.events, vec![EventType::Invoke, EventType::Other("BOGUS".into())]);
        let r: RegisterRequest = serde_json::from_str("{}").unwrap();
        assert!(r.events.is_empty());
    }
}
