"""A Python function instrumented without a line of OpenTelemetry in it.

`otel-instrument` (as AWS_LAMBDA_EXEC_WRAPPER) runs the runtime under
`opentelemetry-instrument`: the aws-lambda instrumentation makes one span per
invocation, and the logging instrumentation exports every `logging` record. The
handler only logs and counts what it logged, so a test can check that each record
arrived exactly once.

Event fields (all optional): "logs" (how many lines to log, default 3), "tag" (put
in each line), "linger_ms" (wait before returning, so the SDK's batch of log records
is exported before the environment freezes), "exit" (then end the process at once with
this status, as a crash: nothing more is flushed).
"""

import logging
import os
import time

logger = logging.getLogger("otel_fn")
logger.setLevel(logging.INFO)


def handle(event, context):
    event = event if isinstance(event, dict) else {}
    n = int(event.get("logs", 3))
    tag = str(event.get("tag", ""))
    for i in range(n):
        logger.info("otel-fn %s line %d", tag, i)
    linger = int(event.get("linger_ms", 0))
    if linger > 0:
        time.sleep(linger / 1000.0)
    if "exit" in event:
        os._exit(int(event["exit"]))
    return {"logs": n, "tag": tag, "requestId": context.aws_request_id}
