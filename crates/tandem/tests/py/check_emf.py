"""Checks CloudWatch Embedded Metric Format documents (one per line in FILE) against
the rules of the EMF specification and with the validators of PyPI
`aws-embedded-metrics` (the library AWS publishes to write EMF).

Usage: check_emf.py FILE. Prints the number of documents; exits 1 with the broken
rules on stderr.
"""

import json
import sys

from aws_embedded_metrics import validator
from aws_embedded_metrics.storage_resolution import StorageResolution
from aws_embedded_metrics.unit import Unit

UNITS = {u.value for u in Unit}
problems = []


def check(n, line):
    where = f"document {n}"
    doc = json.loads(line)
    aws = doc.get("_aws")
    if not isinstance(aws, dict):
        problems.append(f"{where}: no _aws object")
        return
    ts = aws.get("Timestamp")
    if not isinstance(ts, int) or isinstance(ts, bool) or ts < 10**12:
        problems.append(f"{where}: Timestamp {ts!r} is not an integer of milliseconds since the epoch")
    directives = aws.get("CloudWatchMetrics")
    if not isinstance(directives, list) or not directives:
        problems.append(f"{where}: CloudWatchMetrics is not a non-empty array")
        return
    for d in directives:
        validator.validate_namespace(d["Namespace"])
        for dims in d["Dimensions"]:
            if not isinstance(dims, list) or not all(isinstance(k, str) for k in dims):
                problems.append(f"{where}: a dimension set is not an array of strings")
                continue
            values = {}
            for k in dims:
                if not isinstance(doc.get(k), str):
                    problems.append(f"{where}: dimension {k!r} is not a top-level string")
                else:
                    values[k] = doc[k]
            validator.validate_dimension_set(values)
        metrics = d["Metrics"]
        if len(metrics) > 100:
            problems.append(f"{where}: {len(metrics)} metrics in a directive (at most 100)")
        seen = {}
        for m in metrics:
            name = m["Name"]
            value = doc.get(name)
            if isinstance(value, bool) or not isinstance(value, (int, float, list)):
                problems.append(f"{where}: metric {name!r} is not a top-level number")
                continue
            unit = m.get("Unit", "None")
            if unit not in UNITS:
                problems.append(f"{where}: metric {name!r} has unit {unit!r}")
            for v in value if isinstance(value, list) else [value]:
                validator.validate_metric(name, v, unit, StorageResolution(m.get("StorageResolution", 60)), seen)
            seen[name] = StorageResolution(m.get("StorageResolution", 60))


def main(path):
    lines = [l for l in open(path, encoding="utf-8").read().splitlines() if l.strip()]
    if not lines:
        problems.append("no EMF document")
    for n, line in enumerate(lines, 1):
        try:
            check(n, line)
        except Exception as e:  # a validator's exception is a broken rule
            problems.append(f"document {n}: {type(e).__name__}: {e}")
    print(len(lines))
    if problems:
        print("\n".join(problems), file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main(sys.argv[1])
