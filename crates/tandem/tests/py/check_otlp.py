"""Decodes what tandem exported over OTLP/HTTP with the reference classes of PyPI
`opentelemetry-proto` and checks the rules of the OTLP specification on them.

Usage: check_otlp.py DIR. DIR holds one file per request, NNN-SIGNAL.pb (protobuf) or
NNN-SIGNAL.json (OTLP/JSON, parsed strictly: unknown fields are errors, trace and span
ids must be hex, as the OTLP/JSON encoding requires). Prints a JSON summary; exits 1
with the broken rules on stderr.
"""

import base64
import json
import pathlib
import re
import sys

from google.protobuf import json_format
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

TYPES = {"logs": ExportLogsServiceRequest, "metrics": ExportMetricsServiceRequest, "traces": ExportTraceServiceRequest}
ID_KEYS = {"traceId": 32, "spanId": 16, "parentSpanId": 16}
problems = []


def hex_ids_to_base64(node, where):
    """OTLP/JSON writes ids as hex where protobuf JSON would use base64."""
    if isinstance(node, dict):
        for k, v in node.items():
            if k in ID_KEYS and isinstance(v, str):
                if v == "":
                    continue
                if not re.fullmatch("[0-9a-f]{%d}" % ID_KEYS[k], v):
                    problems.append(f"{where}: {k} {v!r} is not {ID_KEYS[k]} lower-case hex digits")
                    continue
                node[k] = base64.b64encode(bytes.fromhex(v)).decode()
            else:
                hex_ids_to_base64(v, where)
    elif isinstance(node, list):
        for v in node:
            hex_ids_to_base64(v, where)


def decode(path):
    signal = path.stem.split("-", 1)[1]
    msg = TYPES[signal]()
    raw = path.read_bytes()
    if not raw:
        problems.append(f"{path.name}: an empty export")
        return signal, msg
    if path.suffix == ".pb":
        msg.ParseFromString(raw)
        if msg.SerializeToString() != raw:
            # Field order may differ; compare the decoded messages instead.
            again = TYPES[signal]()
            again.ParseFromString(msg.SerializeToString())
            if again != msg:
                problems.append(f"{path.name}: does not round-trip")
    else:
        doc = json.loads(raw)
        hex_ids_to_base64(doc, path.name)
        json_format.ParseDict(doc, msg, ignore_unknown_fields=False)
    return signal, msg


def resources(signal, msg):
    return getattr(msg, {"logs": "resource_logs", "metrics": "resource_metrics", "traces": "resource_spans"}[signal])


def attrs(resource):
    out = {}
    for kv in resource.attributes:
        which = kv.value.WhichOneof("value")
        out[kv.key] = getattr(kv.value, which) if which else None
    return out


def main(directory):
    files = sorted(pathlib.Path(directory).iterdir())
    summary = {"requests": {}, "spans": 0, "log_records": 0, "metric_points": 0, "resource": {}}
    spans = []
    points = {}
    for path in files:
        signal, msg = decode(path)
        summary["requests"][signal] = summary["requests"].get(signal, 0) + 1
        rs = resources(signal, msg)
        if not rs:
            problems.append(f"{path.name}: no resource (an empty export)")
        for r in rs:
            a = attrs(r.resource)
            summary["resource"] = {k: str(v) for k, v in a.items()}
            for key in ("faas.instance", "cloud.account.id", "cloud.resource_id", "faas.name", "cloud.region"):
                if not a.get(key):
                    problems.append(f"{path.name}: the resource has no {key}")
            scopes = {"logs": "scope_logs", "metrics": "scope_metrics", "traces": "scope_spans"}[signal]
            for scope in getattr(r, scopes):
                if signal == "traces":
                    spans.extend(scope.spans)
                elif signal == "logs":
                    summary["log_records"] += len(scope.log_records)
                else:
                    for m in scope.metrics:
                        kind = m.WhichOneof("data")
                        if kind in ("sum", "histogram"):
                            data = getattr(m, kind)
                            for p in data.data_points:
                                key = (m.name, json.dumps(sorted((kv.key, str(kv.value)) for kv in p.attributes)))
                                points.setdefault(key, []).append((data.aggregation_temporality, p.start_time_unix_nano, p.time_unix_nano))
                                summary["metric_points"] += 1
    # Spans: a child lies inside its parent.
    by_id = {(s.trace_id, s.span_id): s for s in spans}
    summary["spans"] = len(spans)
    for s in spans:
        if s.end_time_unix_nano < s.start_time_unix_nano:
            problems.append(f"span {s.name}: ends before it starts")
        parent = by_id.get((s.trace_id, s.parent_span_id))
        if parent is not None and not (
            parent.start_time_unix_nano <= s.start_time_unix_nano and s.end_time_unix_nano <= parent.end_time_unix_nano
        ):
            problems.append(
                f"span {s.name} [{s.start_time_unix_nano}, {s.end_time_unix_nano}] is not inside its parent "
                f"{parent.name} [{parent.start_time_unix_nano}, {parent.end_time_unix_nano}]"
            )
    # Metrics: DELTA points of one stream are non-overlapping and contiguous.
    for (name, _), ps in points.items():
        delta = sorted((s, t) for temporality, s, t in ps if temporality == 1)
        for s, t in delta:
            if not s < t:
                problems.append(f"metric {name}: a DELTA point [{s}, {t}] is empty or reversed")
        for (s1, t1), (s2, t2) in zip(delta, delta[1:]):
            if s2 < t1:
                problems.append(f"metric {name}: DELTA points [{s1}, {t1}] and [{s2}, {t2}] overlap")
            elif s2 != t1 and name == "faas.invocations":
                # Every window has this stream: each starts where the previous ended.
                problems.append(f"metric {name}: DELTA points [{s1}, {t1}] and [{s2}, {t2}] leave a gap")
    print(json.dumps(summary))
    if problems:
        print("\n".join(problems), file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main(sys.argv[1])
