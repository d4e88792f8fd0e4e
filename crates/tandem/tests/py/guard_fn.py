"""The guard's test function (awslambdaric). Per event, each step optional:

- "spawn": start `/bin/sh -c 'sleep 5'` and report its pid; with "wait_killed_ms",
  poll it that long and report its return code (-9: SIGKILL) and when it died;
- "connect": [[host, port], ...]: open TCP connections, held "hold_ms";
- "drop": write an ELF header to $TMPDIR/<drop> and make it executable;
- "write": [[path, n], ...]: append a line to each path n times (open, write, close);
- "short": {"ms": d, "count": n}: run n processes of d ms, one after the other;
- "start_delay_ms": wait that long first.

Answers its request id and pid (the runtime's), so the test can check attribution.
"""

import os
import socket
import subprocess
import time

# The first bytes of an x86_64 ELF executable: what a dropper writes.
ELF_HEADER = b"\x7fELF\x02\x01\x01\x00" + b"\x00" * 8 + b"\x02\x00\x3e\x00\x01\x00\x00\x00"


def handle(event, context):
    out = {"request_id": context.aws_request_id, "pid": os.getpid()}
    # Lambda hands the event to tandem and the runtime at once: the test lets tandem
    # see its INVOKE first, so that a connection or a file is told with this request.
    time.sleep(event.get("start_delay_ms", 0) / 1000)
    shell = None
    if event.get("spawn"):
        spawned_at = time.monotonic()
        shell = subprocess.Popen(["/bin/sh", "-c", "sleep 5"])
        out["shell_pid"] = shell.pid
    held = []
    for host, port in event.get("connect", []):
        held.append(socket.create_connection((host, port), timeout=10))
    if event.get("drop"):
        path = os.path.join(os.environ.get("TMPDIR", "/tmp"), event["drop"])
        with open(path, "wb") as f:
            f.write(ELF_HEADER)
        os.chmod(path, 0o755)
        out["dropped"] = path
    for path, times in event.get("write", []):
        for i in range(times):
            with open(path, "a") as f:
                f.write(f"line {i}\n")
    short = event.get("short")
    if short:
        for _ in range(short["count"]):
            subprocess.run(["/bin/sleep", str(short["ms"] / 1000)], check=True)
    if shell is not None and event.get("wait_killed_ms"):
        until = time.monotonic() + event["wait_killed_ms"] / 1000
        while shell.poll() is None and time.monotonic() < until:
            time.sleep(0.005)
        out["shell_returncode"] = shell.returncode
        out["shell_lived_ms"] = int((time.monotonic() - spawned_at) * 1000)
    time.sleep(event.get("hold_ms", 0) / 1000)
    for s in held:
        s.close()
    return out
