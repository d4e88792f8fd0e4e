"""Python test function (awslambdaric) for tandem's secrets cache.

At module load (INIT) it reads the secret SECRETS_FN_INIT_SECRET names through the
cache's HTTP API with the token, as functions written for AWS's Parameters and Secrets
extension do. Each invocation reads the API paths the event lists ("paths"; "token"
overrides the header, null omits it; "parallel" reads them all at once) and the environment variables it lists ("env"),
and answers them. It never prints a value: the tests grep every output for them.
"""

import json
import os
from concurrent.futures import ThreadPoolExecutor
import time
import urllib.error
import urllib.request

PORT = os.environ.get("PARAMETERS_SECRETS_EXTENSION_HTTP_PORT", "2773")


def _get(path, token=...):
    headers = {}
    if token is ...:
        token = os.environ.get("AWS_SESSION_TOKEN", "")
    if token is not None:
        headers["X-Aws-Parameters-Secrets-Token"] = token
    req = urllib.request.Request(f"http://127.0.0.1:{PORT}{path}", headers=headers)
    started = time.monotonic()
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            status, body, cache = resp.status, resp.read().decode(), resp.headers.get("X-Tandem-Cache")
    except urllib.error.HTTPError as e:
        status, body, cache = e.code, e.read().decode(), e.headers.get("X-Tandem-Cache")
    return {"status": status, "body": body, "cache": cache, "ms": (time.monotonic() - started) * 1000}


INIT = None
if os.environ.get("SECRETS_FN_INIT_SECRET"):
    INIT = _get("/secretsmanager/get?secretId=" + os.environ["SECRETS_FN_INIT_SECRET"])


def handle(event, context):
    if isinstance(event, str):
        event = json.loads(event)
    token = event.get("token", ...)
    paths = event.get("paths", [])
    if event.get("parallel"):
        with ThreadPoolExecutor(max_workers=max(1, len(paths))) as pool:
            reads = list(pool.map(lambda p: _get(p, token), paths))
    else:
        reads = [_get(p, token) for p in paths]
    return {
        "init": INIT,
        "reads": reads,
        "env": {k: os.environ.get(k) for k in event.get("env", [])},
    }
