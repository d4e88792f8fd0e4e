//! sink::stdout::received: EMF for metrics the function exported to the OTLP receiver,
//! where the mapping is unambiguous: gauge points and DELTA sum points, numbers, whose
//! attributes are valid EMF dimensions (at most 29 beside `FunctionName`, printable
//! ASCII values) and whose metric name is a valid, unreserved EMF name. One document per
//! point, the attributes as its dimensions, in the configured namespace. Everything
//! else (histograms, summaries, CUMULATIVE sums: EMF values are per-period samples) has
//! no EMF form: the receiver counts it as not deliverable to this sink. Pure.

use super::encode::{check_dimension_name, check_dimension_value, EmfOptions, MAX_DIMENSIONS_PER_SET};
use crate::encode::{push_f64, push_json_str, push_u64};
use crate::model::Received;
use opentelemetry_proto::tonic::common::v1::{any_value, KeyValue};
use opentelemetry_proto::tonic::metrics::v1::{metric::Data, number_data_point, Metric, NumberDataPoint};

/// DELTA (`AggregationTemporality`).
const DELTA: i32 = 1;

/// The points of `m` that map to EMF, with the metric's name (empty when none do).
fn points(m: &Metric) -> &[NumberDataPoint] {
    let ok_name = check_dimension_name(&m.name).is_ok() && m.name != "FunctionName";
    match &m.data {
        Some(Data::Gauge(g)) if ok_name => &g.data_points,
        Some(Data::Sum(s)) if ok_name && s.aggregation_temporality == DELTA => &s.data_points,
        _ => &[],
    }
}

/// A point's dimensions, when all of them are valid EMF dimensions.
fn dimensions(p: &NumberDataPoint) -> Option<Vec<(&str, String)>> {
    if p.value.is_none() || p.attributes.len() > MAX_DIMENSIONS_PER_SET - 1 {
        return None;
    }
    p.attributes
        .iter()
        .map(|KeyValue { key, value, .. }| {
            let v = match value.as_ref().and_then(|v| v.value.as_ref())? {
                any_value::Value::StringValue(s) => s.clone(),
                any_value::Value::IntValue(i) => i.to_string(),
                any_value::Value::BoolValue(b) => b.to_string(),
                _ => return None,
            };
            let valid = check_dimension_name(key).is_ok() && key != "FunctionName" && check_dimension_value(&v).is_ok();
            valid.then_some((key.as_str(), v))
        })
        .collect()
}

fn mappable(r: &Received) -> impl Iterator<Item = (&Metric, &NumberDataPoint, Vec<(&str, String)>)> {
    r.resource_metrics
        .iter()
        .flat_map(|rm| &rm.scope_metrics)
        .flat_map(|sm| &sm.metrics)
        .flat_map(|m| points(m).iter().map(move |p| (m, p)))
        .filter_map(|(m, p)| dimensions(p).map(|d| (m, p, d)))
}

/// How many of `r`'s items the stdout sink writes as EMF.
pub fn emf_points(r: &Received) -> u64 {
    mappable(r).count() as u64
}

/// The CloudWatch unit of an OTel (UCUM) unit; `None` when it has no exact match.
fn unit(ucum: &str) -> &'static str {
    match ucum {
        "s" => "Seconds",
        "ms" => "Milliseconds",
        "us" => "Microseconds",
        "By" => "Bytes",
        "KiBy" => "Kilobytes",
        "MiBy" => "Megabytes",
        "GiBy" => "Gigabytes",
        "%" => "Percent",
        "By/s" => "Bytes/Second",
        _ => "None",
    }
}

/// Appends one EMF document (and `\n`) per mappable point of `r`.
pub fn encode_received(r: &Received, opts: &EmfOptions, out: &mut Vec<u8>) {
    for (m, p, dims) in mappable(r) {
        let time_ms = if p.time_unix_nano > 0 { p.time_unix_nano / 1_000_000 } else { r.time_ms };
        out.extend_from_slice(b"{\"_aws\":{\"Timestamp\":");
        push_u64(out, time_ms);
        out.extend_from_slice(b",\"CloudWatchMetrics\":[{\"Namespace\":");
        push_json_str(out, &opts.namespace);
        out.extend_from_slice(b",\"Dimensions\":[[\"FunctionName\"");
        for (k, _) in &dims {
            out.push(b',');
            push_json_str(out, k);
        }
        out.extend_from_slice(b"]],\"Metrics\":[{\"Name\":");
        push_json_str(out, &m.name);
        out.extend_from_slice(b",\"Unit\":\"");
        out.extend_from_slice(unit(&m.unit).as_bytes());
        out.extend_from_slice(b"\"}]}]},\"FunctionName\":");
        let function = if opts.function_name.is_empty() { "unknown" } else { opts.function_name.as_str() };
        push_json_str(out, function);
        for (k, v) in &dims {
            out.push(b',');
            push_json_str(out, k);
            out.push(b':');
            push_json_str(out, v);
        }
        out.push(b',');
        push_json_str(out, &m.name);
        out.push(b':');
        match p.value {
            Some(number_data_point::Value::AsDouble(d)) => push_f64(out, d),
            Some(number_data_point::Value::AsInt(i)) => out.extend_from_slice(i.to_string().as_bytes()),
            None => out.push(b'0'),
        }
        out.extend_from_slice(b"}\n");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sink::otlp::encode::{kv, string};
    use opentelemetry_proto::tonic::metrics::v1::{Gauge, Histogram, ResourceMetrics, ScopeMetrics, Sum};
    use serde_json::Value;

    fn point(v: number_data_point::Value, attrs: Vec<KeyValue>) -> NumberDataPoint {
        NumberDataPoint {
            time_unix_nano: 1_704_067_200_000_000_000,
            value: Some(v),
            attributes: attrs,
            ..Default::default()
        }
    }

    fn received(metrics: Vec<Metric>) -> Received {
        Received {
            time_ms: 9,
            resource_metrics: vec![ResourceMetrics {
                scope_metrics: vec![ScopeMetrics { metrics, ..ScopeMetrics::default() }],
                ..ResourceMetrics::default()
            }],
            ..Received::default()
        }
    }

    #[test]
    fn gauges_and_delta_sums_become_documents_and_the_rest_does_not() {
        use number_data_point::Value::{AsDouble, AsInt};
        let metric = |name: &str, unit: &str, data| Metric {
            name: name.into(),
            unit: unit.into(),
            data: Some(data),
            ..Metric::default()
        };
        let r = received(vec![
            metric(
                "queue.depth",
                "1",
                Data::Gauge(Gauge { data_points: vec![point(AsInt(4), vec![kv("queue", string("orders"))])] }),
            ),
            metric(
                "latency",
                "ms",
                Data::Sum(Sum {
                    data_points: vec![point(AsDouble(12.5), vec![])],
                    aggregation_temporality: DELTA,
                    is_monotonic: false,
                }),
            ),
            metric(
                "total",
                "1",
                Data::Sum(Sum {
                    data_points: vec![point(AsInt(1), vec![])],
                    aggregation_temporality: 2,
                    is_monotonic: true,
                }),
            ),
            metric("h", "ms", Data::Histogram(Histogram::default())),
            metric(
                "bad.dim",
                "1",
                Data::Gauge(Gauge { data_points: vec![point(AsInt(1), vec![kv("k", string(""))])] }),
            ),
        ]);
        assert_eq!(emf_points(&r), 2, "the cumulative sum, the histogram and the empty dimension value are not mapped");
        let opts = EmfOptions { function_name: "fn".into(), ..EmfOptions::default() };
        let mut out = Vec::new();
        encode_received(&r, &opts, &mut out);
        let text = String::from_utf8(out).unwrap();
        let docs: Vec<Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        assert_eq!(docs.len(), 2);
        assert!(text.lines().all(super::super::encode::is_emf_document));
        assert_eq!(docs[0]["_aws"]["Timestamp"], 1_704_067_200_000u64);
        assert_eq!(
            docs[0]["_aws"]["CloudWatchMetrics"][0]["Dimensions"][0],
            serde_json::json!(["FunctionName", "queue"])
        );
        assert_eq!(docs[0]["queue"], "orders");
        assert_eq!(docs[0]["queue.depth"], 4);
        assert_eq!(docs[0]["_aws"]["CloudWatchMetrics"][0]["Metrics"][0]["Unit"], "None");
        assert_eq!(docs[1]["latency"], 12.5);
        assert_eq!(docs[1]["_aws"]["CloudWatchMetrics"][0]["Metrics"][0]["Unit"], "Milliseconds");
        for line in text.lines() {
            let t = serde_json::from_str::<Value>(line).unwrap()["_aws"]["Timestamp"].as_u64().unwrap();
            crate::sink::stdout::spec_tests::check_emf(format!("{line}\n").as_bytes(), t).unwrap();
        }
        for d in &docs {
            let unit = d["_aws"]["CloudWatchMetrics"][0]["Metrics"][0]["Unit"].as_str().unwrap();
            assert!(crate::sink::stdout::spec_tests::UNITS.contains(&unit), "{unit}");
        }
    }
}
