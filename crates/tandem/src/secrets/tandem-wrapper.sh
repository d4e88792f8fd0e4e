#!/bin/sh
# /opt/tandem-wrapper: set AWS_LAMBDA_EXEC_WRAPPER=/opt/tandem-wrapper to have the
# values TANDEM_SECRET_ENV names exported from tandem's secrets cache before the
# runtime starts (see `tandem wrap`). A failed fetch fails INIT with one line.
exec /opt/extensions/tandem wrap "$@"
