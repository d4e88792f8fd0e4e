"""Lists what OTLP/HTTP requests carried, decoded with the reference classes of PyPI
`opentelemetry-proto`: for the receiver test (crates/tandem/tests/receiver.rs).

Usage: list_otlp.py DIR. DIR holds one protobuf request per file, NNN-SIGNAL.pb.
Prints one JSON object: {"spans": [...], "logs": [...], "points": [...]}, each item
with its scope name, its service.name and its attributes (strings); ids in hex.
"""

import json
import pathlib
import sys

from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

TYPES = {"logs": ExportLogsServiceRequest, "metrics": ExportMetricsServiceRequest, "traces": ExportTraceServiceRequest}


def attrs(kvs):
    out = {}
    for kv in kvs:
        which = kv.value.WhichOneof("value")
        out[kv.key] = str(getattr(kv.value, which)) if which else None
    return out


def main(directory):
    out = {"spans": [], "logs": [], "points": []}
    for path in sorted(pathlib.Path(directory).iterdir()):
        signal = path.stem.split("-", 1)[1]
        msg = TYPES[signal]()
        msg.ParseFromString(path.read_bytes())
        if signal == "traces":
            for r in msg.resource_spans:
                service = attrs(r.resource.attributes).get("service.name")
                for s in r.scope_spans:
                    for span in s.spans:
                        out["spans"].append({
                            "scope": s.scope.name, "service": service, "name": span.name,
                            "traceId": span.trace_id.hex(), "spanId": span.span_id.hex(),
                            "parentSpanId": span.parent_span_id.hex(), "attributes": attrs(span.attributes),
                        })
        elif signal == "logs":
            for r in msg.resource_logs:
                service = attrs(r.resource.attributes).get("service.name")
                for s in r.scope_logs:
                    for rec in s.log_records:
                        out["logs"].append({
                            "scope": s.scope.name, "service": service, "body": rec.body.string_value,
                            "attributes": attrs(rec.attributes),
                        })
        else:
            for r in msg.resource_metrics:
                service = attrs(r.resource.attributes).get("service.name")
                for s in r.scope_metrics:
                    for m in s.metrics:
                        kind = m.WhichOneof("data")
                        for p in getattr(m, kind).data_points:
                            out["points"].append({"scope": s.scope.name, "service": service, "name": m.name,
                                                  "attributes": attrs(p.attributes)})
    print(json.dumps(out))


if __name__ == "__main__":
    main(sys.argv[1])
