"""``make run``: serve the gateway on a laptop with uvicorn and say how to call it.

Binds to 127.0.0.1 (``PORT``, default 8080); ``HEIMDALL_CONFIG`` names the config as in Lambda.
``HEIMDALL_HOST`` may name another address, but only when gateway keys are configured.
"""

from __future__ import annotations

import os
import sys

SNIPPET = """
Heimdall is listening on http://{host}:{port}  (providers: {providers})

Try it with curl:
  curl -s 'http://127.0.0.1:{port}/openai/openai/deployments/whisper-1/audio/transcriptions?api-version=2024-06-01' \\
    -H 'api-key: any' -F file=@tests/fixtures/audio/hello.wav -F response_format=json

Or with the openai SDK (pip install openai):
  from openai import AzureOpenAI
  client = AzureOpenAI(
      azure_endpoint="http://127.0.0.1:{port}/openai", api_key="any", api_version="2024-06-01"
  )
  with open("tests/fixtures/audio/hello.wav", "rb") as audio:
      print(client.audio.transcriptions.create(model="whisper-1", file=audio).text)
"""


def main() -> None:
    import uvicorn

    from heimdall.api.app import create_app
    from heimdall.config import ConfigError
    from heimdall.observability import logger

    port = int(os.environ.get("PORT", "8080"))
    host = os.environ.get("HEIMDALL_HOST", "127.0.0.1")
    try:
        app = create_app()
    except ConfigError as exc:
        sys.exit(f"heimdall: {exc}")
    providers = ", ".join(sorted(app.state.router.providers)) or "none"
    if not app.state.gatekeeper.enforced:
        if host not in ("127.0.0.1", "localhost", "::1"):
            sys.exit(f"heimdall: refusing to listen on {host} without gateway keys (governance.virtual_keys)")
        logger.warning("auth is off: no gateway keys are configured, so anyone who reaches 127.0.0.1 may call")

    class AnnouncingServer(uvicorn.Server):
        async def startup(self, sockets: list[object] | None = None) -> None:  # type: ignore[override]
            await super().startup(sockets=sockets)  # type: ignore[arg-type]
            if self.started:
                print(SNIPPET.format(host=host, port=port, providers=providers), flush=True)

    config = uvicorn.Config(app, host=host, port=port, log_level="warning", access_log=False)
    AnnouncingServer(config).run()


if __name__ == "__main__":
    main()
