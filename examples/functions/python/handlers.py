"""Python test function for awslambdaric (the AWS Runtime Interface Client).

Mirrors the Rust `echo-fn`: every event field is optional and applied in this
order: log, stderr, json_log, logger, log_bytes, alloc_mb, sleep_ms, exit,
error, then the response (response_bytes or the echo). Run through ./bootstrap.
"""

import json
import logging
import os
import sys
import time

ECHOED_ENV = (
    "AWS_LAMBDA_FUNCTION_NAME",
    "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
    "AWS_LAMBDA_FUNCTION_VERSION",
    "AWS_REGION",
    "_HANDLER",
    "AWS_LAMBDA_LOG_GROUP_NAME",
    "AWS_LAMBDA_LOG_STREAM_NAME",
    "AWS_LAMBDA_RUNTIME_API",
    "TANDEM_WRAPPED",
)

MIB = 1024 * 1024
PAGE = 4096
LOG_LINE_LEN = 100

# awslambdaric sets the root level only when AWS_LAMBDA_LOG_LEVEL is given;
# Python's default (WARNING) would drop the "logger" lines.
if not os.environ.get("AWS_LAMBDA_LOG_LEVEL"):
    logging.getLogger().setLevel(logging.INFO)


def _items(event, name):
    value = event.get(name)
    return value if isinstance(value, list) else []


def _text(item):
    return item if isinstance(item, str) else json.dumps(item, separators=(",", ":"))


def _log_with_logger(item):
    """A string logs at INFO; {"level": "warning", "message": ...} picks the level."""
    if isinstance(item, dict):
        level = logging.getLevelName(str(item.get("level", "INFO")).upper())
        if not isinstance(level, int):
            level = logging.INFO
        logging.log(level, _text(item.get("message", "")))
    else:
        logging.info(_text(item))


def _write_log_bytes(total):
    lines = -(-total // LOG_LINE_LEN)
    out = sys.stdout
    chunk = []
    for i in range(lines):
        chunk.append(f"line {i} ".ljust(LOG_LINE_LEN - 1, "x") + "\n")
        if len(chunk) == 640:
            out.write("".join(chunk))
            chunk = []
    if chunk:
        out.write("".join(chunk))
    out.flush()


def _allocate_and_touch(mb):
    # bytearray(n) is calloc'ed (pages not yet resident): write to every page.
    ballast = bytearray(mb * MIB)
    for i in range(0, len(ballast), PAGE):
        ballast[i] = 1
    return ballast


def handle(event, context):
    if not isinstance(event, dict):
        event = {"value": event}

    for line in _items(event, "log"):
        print(_text(line))
    for line in _items(event, "stderr"):
        print(_text(line), file=sys.stderr)
    for obj in _items(event, "json_log"):
        print(json.dumps(obj, separators=(",", ":")))
    for item in _items(event, "logger"):
        _log_with_logger(item)
    if isinstance(event.get("log_bytes"), int):
        _write_log_bytes(event["log_bytes"])
    # Allocated before the sleep so the memory stays resident during it.
    ballast = None
    if isinstance(event.get("alloc_mb"), int):
        ballast = _allocate_and_touch(event["alloc_mb"])
    if isinstance(event.get("sleep_ms"), (int, float)):
        time.sleep(event["sleep_ms"] / 1000.0)

    if isinstance(event.get("exit"), int) and not isinstance(event.get("exit"), bool):
        code = event["exit"]
        print(f"exiting with {code}", file=sys.stderr)
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    if isinstance(event.get("error"), str):
        raise ValueError(event["error"])
    if isinstance(event.get("response_bytes"), int):
        return {"data": "a" * event["response_bytes"]}

    response = {
        "echo": event,
        "request_id": context.aws_request_id,
        "remaining_ms": context.get_remaining_time_in_millis(),
        "invoked_function_arn": context.invoked_function_arn,
        "trace_id": os.environ.get("_X_AMZN_TRACE_ID"),
        "env": {name: os.environ.get(name) for name in ECHOED_ENV},
    }
    if ballast is not None:
        response["allocated_bytes"] = len(ballast)
    return response
