#!/usr/bin/env bash
# Exec wrapper for AWS_LAMBDA_EXEC_WRAPPER tests: Lambda runs it with the
# runtime's command line as arguments; it marks the environment and execs it.
set -euo pipefail
export TANDEM_WRAPPED=1
echo "wrapper starting $*" >&2
exec "$@"
