"""One Lambda invocation of a job handler in this process: ``python -m tests.support.lambda_process
ingest|failure|piece EVENT`` prints the result as the last line of its output; an exception exits with status 1
(as a failed invocation, which Lambda retries).

``HEIMDALL_TEST_ADAPTER_RAISES=<message>`` makes the OpenAI adapter raise a RuntimeError with that
message: an unexpected exception inside a provider adapter."""

from __future__ import annotations

import json
import os
import sys

from tests.support.lambda_events import LambdaContext


def main() -> None:
    message = os.environ.get("HEIMDALL_TEST_ADAPTER_RAISES")
    if message:
        from heimdall.providers.openai_compatible import OpenAICompatibleProvider

        def broken(*args: object, **kwargs: object) -> object:
            raise RuntimeError(message)

        OpenAICompatibleProvider.transcribe = broken  # type: ignore[method-assign]
    from heimdall.fanout import piece_handler
    from heimdall.jobs import failure_handler, ingest_handler

    handlers = {"ingest": ingest_handler, "failure": failure_handler, "piece": piece_handler}
    handler = handlers[sys.argv[1]]()
    event = json.loads(sys.argv[2])
    remaining = int(os.environ.get("HEIMDALL_TEST_REMAINING_MS") or 900_000)
    context = LambdaContext(function_name="heimdall-IngestFunction", remaining_ms=remaining)
    result = handler(event, context)
    print(json.dumps(result))  # the last line, after the function's log lines


if __name__ == "__main__":
    main()
