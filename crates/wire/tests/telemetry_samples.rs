//! Events as AWS documents them (telemetry-schema-reference), parsed and written back.

use serde_json::{json, Value};
use tandem_wire::telemetry::*;

fn samples() -> Vec<Value> {
    vec![
        json!({"time":"2022-10-12T00:00:15.064Z","type":"platform.initStart","record":{
            "initializationType":"on-demand","phase":"init","runtimeVersion":"nodejs-14.v3",
            "runtimeVersionArn":"arn","functionName":"my-function","functionVersion":"$LATEST",
            "instanceId":"82561ce0","instanceMaxMemory":256}}),
        json!({"time":"2022-10-12T00:00:15.064Z","type":"platform.initRuntimeDone","record":{
            "initializationType":"on-demand","status":"success","phase":"init",
            "spans":[{"name":"someTimeSpan","start":"2022-06-02T12:02:33.913Z","durationMs":70.5}]}}),
        json!({"time":"2022-10-12T00:00:15.064Z","type":"platform.initReport","record":{
            "initializationType":"on-demand","phase":"init","status":"error","errorType":"Runtime.ExitError",
            "metrics":{"durationMs":125.33}}}),
        json!({"time":"2022-10-12T00:00:15.064Z","type":"platform.start","record":{
            "requestId":"6d68ca91-49c9-448d-89b8-7ca3e6dc66aa","version":"$LATEST",
            "tracing":{"spanId":"54565fb41ac79632","type":"X-Amzn-Trace-Id","value":"Root=1-62e900b2-710d76f009d6e7785905449a;Parent=0efbd19962d95b05;Sampled=1"}}}),
        json!({"time":"2022-10-12T00:01:15.000Z","type":"platform.runtimeDone","record":{
            "requestId":"6d68ca91","status":"success",
            "metrics":{"durationMs":140.0,"producedBytes":16},
            "spans":[{"name":"responseLatency","start":"2022-08-02T12:01:23.521Z","durationMs":23.02},
                     {"name":"responseDuration","start":"2022-08-02T12:01:23.544Z","durationMs":20.0}],
            "tracing":{"spanId":"54565fb41ac79632","type":"X-Amzn-Trace-Id","value":"Root=1-62e900b2"}}}),
        json!({"time":"2022-10-12T00:01:15.000Z","type":"platform.report","record":{
            "requestId":"6d68ca91","status":"timeout","errorType":"Sandbox.Timedout",
            "metrics":{"durationMs":3000.0,"billedDurationMs":3000,"memorySizeMB":128,"maxMemoryUsedMB":40,"initDurationMs":120.5},
            "spans":[{"name":"extensionOverhead","start":"2022-08-02T12:01:23.564Z","durationMs":0.12}]}}),
        json!({"time":"2022-10-12T00:01:15.000Z","type":"platform.extension","record":{
            "name":"tandem","state":"Ready","events":["INVOKE","SHUTDOWN"]}}),
        json!({"time":"2022-10-12T00:01:15.000Z","type":"platform.telemetrySubscription","record":{
            "name":"tandem","state":"Subscribed","types":["platform","function"]}}),
        json!({"time":"2022-10-12T00:01:15.000Z","type":"platform.logsDropped","record":{
            "reason":"Consumer seems to have fallen behind as it has not acknowledged receipt of logs.",
            "droppedRecords":123,"droppedBytes":12345}}),
        json!({"time":"2022-10-12T00:01:15.000Z","type":"function","record":"2022-10-12T00:01:15.000Z\tr-1\tINFO\thello\n"}),
        json!({"time":"2022-10-12T00:01:15.000Z","type":"function","record":{
            "timestamp":"2022-10-12T00:01:15.000Z","level":"INFO","requestId":"r-1","message":"hello"}}),
        json!({"time":"2022-10-12T00:01:15.000Z","type":"extension","record":"[tandem] ready"}),
        json!({"time":"2022-10-12T00:01:15.000Z","type":"platform.restoreStart","record":{
            "functionName":"f","functionVersion":"1","runtimeVersion":"java21.v4"}}),
        json!({"time":"2022-10-12T00:01:15.000Z","type":"platform.restoreReport","record":{
            "status":"success","metrics":{"durationMs":20.0}}}),
        json!({"time":"2022-10-12T00:01:15.000Z","type":"platform.end","record":{"requestId":"r-1"}}),
        json!({"time":"2022-10-12T00:01:15.000Z","type":"platform.fault","record":"RequestId: r-1 Process exited before completing request"}),
    ]
}

#[test]
fn every_documented_record_round_trips_exactly() {
    for sample in samples() {
        let event: Event = serde_json::from_value(sample.clone()).unwrap_or_else(|e| panic!("{sample}: {e}"));
        assert!(!matches!(event.record, Record::Unknown { .. }), "{sample}");
        assert_eq!(serde_json::to_value(&event).unwrap(), sample);
    }
}

#[test]
fn unknown_types_and_values_are_kept_not_rejected() {
    let body = json!([
        {"time":"2022-10-12T00:01:15.000Z","type":"platform.futureThing","record":{"a":[1,2]}},
        {"time":"2022-10-12T00:01:15.000Z","type":"platform.runtimeDone","record":{"requestId":"r","status":"degraded","newField":true}},
    ]);
    let parsed = parse_batch(body.to_string().as_bytes()).unwrap();
    match &parsed[0] {
        Ok(Event { record: Record::Unknown { kind, record }, .. }) => {
            assert_eq!(kind, "platform.futureThing");
            assert_eq!(record, &json!({"a":[1,2]}));
        }
        other => panic!("{other:?}"),
    }
    match &parsed[1] {
        Ok(Event { record: Record::RuntimeDone(r), .. }) => assert_eq!(r.status, Status::Other("degraded".into())),
        other => panic!("{other:?}"),
    }
    // Written back, the unknown event is byte-for-byte what came in.
    assert_eq!(serde_json::to_value(parsed[0].as_ref().unwrap()).unwrap(), body[0]);
}

#[test]
fn one_malformed_event_costs_only_itself() {
    let body = r#"[
        {"time":"2022-10-12T00:01:15.000Z","type":"function","record":"a"},
        {"time":"2022-10-12T00:01:15.000Z","type":"platform.report","record":{"requestId":7}},
        {"time":"2022-10-12T00:01:15.000Z","type":"function","record":"b"}
    ]"#;
    let parsed = parse_batch(body.as_bytes()).unwrap();
    assert_eq!(parsed.len(), 3);
    assert!(parsed[0].is_ok() && parsed[2].is_ok());
    let err = parsed[1].as_ref().unwrap_err();
    assert_eq!(err.index, 1);
    assert_eq!(err.kind.as_deref(), Some("platform.report"));
    assert!(err.to_string().contains("platform.report"));
    assert!(parse_batch(b"{\"not\":\"an array\"}").is_err());
}

#[test]
fn ndjson_framing_parses_line_by_line() {
    let body = b"{\"time\":\"2022-10-12T00:01:15.000Z\",\"type\":\"function\",\"record\":\"a\"}\n\n{bad\n{\"time\":\"2022-10-12T00:01:15.000Z\",\"type\":\"extension\",\"record\":\"b\"}\n";
    let parsed = parse_ndjson(body);
    assert_eq!(parsed.len(), 3);
    assert!(parsed[0].is_ok() && parsed[1].is_err() && parsed[2].is_ok());
    assert_eq!(parsed[2].as_ref().unwrap().record.category(), TelemetryType::Extension);
}

#[test]
fn accessors() {
    let e: Event = serde_json::from_value(samples()[4].clone()).unwrap();
    assert_eq!(e.record.request_id(), Some("6d68ca91"));
    assert_eq!(e.epoch_millis(), Some(1_665_532_875_000));
    let j: Event = serde_json::from_value(samples()[10].clone()).unwrap();
    assert_eq!(j.record.request_id(), Some("r-1"));
    match j.record {
        Record::Function(ref l) => assert_eq!(l.message(), Some("hello")),
        _ => panic!(),
    }
}

#[test]
fn parse_events_splits_good_and_bad_in_one_or_two_passes() {
    let good = r#"[{"time":"t","type":"function","record":"a"},{"time":"t","type":"extension","record":"b"}]"#;
    let b = parse_events(good.as_bytes()).unwrap();
    assert_eq!((b.events.len(), b.errors.len()), (2, 0));
    let mixed = r#"[{"time":"t","type":"function","record":"a"},{"type":"platform.start","record":{}},{"time":"t","type":"function","record":"c"}]"#;
    let b = parse_events(mixed.as_bytes()).unwrap();
    assert_eq!((b.events.len(), b.errors.len()), (2, 1));
    assert_eq!(b.errors[0].index, 1);
    assert_eq!(b.events[1].record, Record::Function(LogRecord::Text("c".into())));
    assert!(parse_events(b"{}").is_err());
}
