"""``make run``: serve the gateway on a laptop with uvicorn and say how to call it.

Binds to 127.0.0.1 (``PORT``, default 8080); ``HEIMDALL_CONFIG`` names the config as in Lambda.
``HEIMDALL_HOST`` may name another address, but only when gateway keys are configured.
"""

from __future__ import annotations

import contextlib
import fnmatch
import os
import sys
from collections.abc import Iterable

from heimdall.config import ConfigError, GatewayConfig, VirtualKey

SNIPPET = """
Heimdall is listening on http://{host}:{port}  (providers: {providers})
Playground: http://{host}:{port}/playground

Try it with curl:
  curl -s 'http://127.0.0.1:{port}/openai/openai/deployments/{model}/audio/transcriptions?api-version=2024-06-01' \\
    -H "api-key: {shell_key}" -F file=@tests/fixtures/audio/hello.wav -F response_format=json

Or with the openai SDK (pip install openai):
  {python_import}from openai import AzureOpenAI
  client = AzureOpenAI(
      azure_endpoint="http://127.0.0.1:{port}/openai", api_key={python_key}, api_version="2024-06-01"
  )
  with open("tests/fixtures/audio/hello.wav", "rb") as audio:
      print(client.audio.transcriptions.create(model="{model}", file=audio).text)
"""


def example_model(config: GatewayConfig, providers: Iterable[str], key: VirtualKey | None) -> str | None:
    """A model the snippet can name that exists in this config and that ``key`` may use."""
    if not config.deployments and not config.providers and "local" in providers:
        return "whisper-1"  # the keyless default: every name means the local engine
    candidates = [config.client_config.default_model, *config.deployments]
    if "local" in providers:
        candidates.append("local/tiny.en")
    for name, provider in config.providers.items():
        candidates += [f"{name}/{model}" for k in provider.keys for model in k.models]
    for model in candidates:
        if model and (key is None or any(fnmatch.fnmatchcase(model, p) for p in key.allowed_models)):
            return model
    return None


def snippet(config: GatewayConfig, providers: Iterable[str], *, host: str, port: int) -> str:
    """What to paste to make a first call, for the config in force: a model that exists, and the
    gateway key's variable (never its value) when keys are configured."""
    keys: list[VirtualKey | None] = [*config.governance.virtual_keys] or [None]
    for key in keys:
        model = example_model(config, providers, key)
        if model is not None:
            break
    else:
        return f"\nHeimdall is listening on http://{host}:{port}  (no gateway key may use a configured model)\n"
    shell_key, python_key, python_import = "any", '"any"', ""
    if key is not None:
        variable = key.value_env or "HEIMDALL_KEY"
        shell_key, python_key, python_import = f"${variable}", f'os.environ["{variable}"]', "import os\n  "
    text = SNIPPET.format(
        host=host, port=port, providers=", ".join(sorted(providers)) or "none", model=model,
        shell_key=shell_key, python_key=python_key, python_import=python_import,
    )  # fmt: skip
    if key is not None and key.value_env is None:
        text += f"\n(export HEIMDALL_KEY=<gateway key {key.id!r}> first)\n"
    return text


def refuse_a_taken_port(host: str, port: int) -> None:
    """Say so in one line when the port is taken (uvicorn would log a bind error and exit 3)."""
    import errno
    import socket

    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds
        try:
            probe.bind((host, port))
        except OSError as exc:
            if exc.errno != errno.EADDRINUSE:
                raise
            sys.exit(f"heimdall: port {port} on {host} is in use (another make run?); try PORT={port + 1} make run")


def guarded_protocol() -> type:
    """The slow-client guard on httptools' C parser when it is installed (the ``serve`` extra), else on h11."""
    try:
        from heimdall.httptools_guard import GuardedHttpToolsProtocol
    except ImportError:
        from heimdall.http_guard import GuardedH11Protocol

        return GuardedH11Protocol
    return GuardedHttpToolsProtocol


def main() -> None:
    """Serve until stopped; Ctrl-C ends it quietly."""
    with contextlib.suppress(KeyboardInterrupt):
        serve()


def serve() -> None:
    import uvicorn

    from heimdall.api.app import create_app
    from heimdall.observability import logger

    port = int(os.environ.get("PORT", "8080"))
    host = os.environ.get("HEIMDALL_HOST", "127.0.0.1")
    try:
        app = create_app()
    except ConfigError as exc:
        sys.exit(f"heimdall: {exc}")
    refuse_a_taken_port(host, port)
    if not app.state.gatekeeper.enforced:
        if host not in ("127.0.0.1", "localhost", "::1"):
            sys.exit(f"heimdall: refusing to listen on {host} without gateway keys (governance.virtual_keys)")
        logger.warning("auth is off: no gateway keys are configured, so anyone who reaches 127.0.0.1 may call")
    announcement = snippet(app.state.config, app.state.router.providers, host=host, port=port)

    class AnnouncingServer(uvicorn.Server):
        async def startup(self, sockets: list[object] | None = None) -> None:  # type: ignore[override]
            await super().startup(sockets=sockets)  # type: ignore[arg-type]
            if self.started:
                print(announcement, flush=True)

    from heimdall.http_guard import BACKLOG

    # Slow or idle clients are cut off, and open connections capped (heimdall/http_guard.py).
    config = uvicorn.Config(
        app, host=host, port=port, log_level="warning", access_log=False, http=guarded_protocol(), backlog=BACKLOG
    )
    AnnouncingServer(config).run()


if __name__ == "__main__":
    main()
