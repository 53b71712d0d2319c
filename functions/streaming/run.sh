#!/bin/sh
# The streaming function's entry: AWS Lambda Web Adapter (the layer's /opt/bootstrap, via
# AWS_LAMBDA_EXEC_WRAPPER) starts this script, waits for /health, then proxies each invocation to
# it with response streaming. It serves the same FastAPI app as the API function and `make run`, with
# the same bounds on slow and idle clients (heimdall/http_guard.py).
exec python3 -m uvicorn --factory heimdall.api.app:create_app --http heimdall.http_guard:GuardedH11Protocol --backlog 128 \
    --host 127.0.0.1 --port "${AWS_LWA_PORT:-8080}" --no-access-log --log-level warning
