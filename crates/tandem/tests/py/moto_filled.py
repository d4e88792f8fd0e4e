"""moto_server on 127.0.0.1:PORT with COUNT SSM String parameters `/fill/<i>` of
SIZE bytes each, put straight into moto's backend (tens of thousands of PutParameter
calls over HTTP would take minutes); everything else is moto's own server. Prints
`ready` once serving, and stops when its standard input closes."""

import sys

from moto.core import DEFAULT_ACCOUNT_ID
from moto.server import ThreadedMotoServer
from moto.ssm.models import ssm_backends


def main():
    port, count, size = (int(a) for a in sys.argv[1:4])
    backend = ssm_backends[DEFAULT_ACCOUNT_ID]["us-east-1"]
    for i in range(count):
        value = (f"value-{i}-" * (size // 8 + 1))[:size]
        backend.put_parameter(
            name=f"/fill/{i}",
            description=None,
            value=value,
            parameter_type="String",
            allowed_pattern=None,
            keyid=None,
            overwrite=False,
            tags=None,
            data_type="text",
            tier=None,
            policies=None,
        )
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    print("ready", flush=True)
    sys.stdin.read()
    server.stop()


if __name__ == "__main__":
    main()
