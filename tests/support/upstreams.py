"""Every fake provider on its own loopback port, and a gateway configured to use them all."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from typing import Any

from heimdall.config import GatewayConfig, parse_config
from tests.fakes.azure import AzureFake
from tests.fakes.base import FakeUpstream
from tests.fakes.deepgram import DeepgramFake
from tests.fakes.elevenlabs import ElevenLabsFake
from tests.fakes.gemini import GeminiFake
from tests.fakes.groq import GroqFake
from tests.fakes.mistral import MistralFake
from tests.fakes.openai import OpenAIFake
from tests.support.servers import serve

NETWORK = {
    "default_request_timeout_in_seconds": 1.0,
    "max_retries": 1,
    "retry_backoff_initial": 10,
    "retry_backoff_max": 2000,
}


@dataclass
class Upstreams:
    fakes: dict[str, FakeUpstream]
    urls: dict[str, str]
    keys: dict[str, str]

    def reset(self) -> None:
        for fake in self.fakes.values():
            fake.reset()
            fake.echo_key_in_errors = False

    def calls(self, name: str) -> int:
        return len(self.fakes[name].requests)

    def config(self, **overrides: Any) -> GatewayConfig:
        network = {**NETWORK, **overrides.pop("network", {})}

        def provider(name: str, extra: dict[str, Any] | None = None) -> dict[str, Any]:
            # base_url replaces the documented origin, as in Bifrost (Groq's is https://api.groq.com/openai).
            origin = self.urls[name] + ("/openai" if name == "groq" else "")
            return {
                "keys": [
                    {"name": f"{name}-main", "value": self.keys[name], "models": [], "weight": 1, **(extra or {})}
                ],
                "network_config": {**network, "base_url": origin},
            }

        document: dict[str, Any] = {
            "providers": {
                "openai": provider("openai"),
                "azure": provider(
                    "azure",
                    {
                        "azure_key_config": {
                            "endpoint": self.urls["azure"],
                            "api_version": "2024-10-21",
                            "deployments": {"whisper-1": "whisper-prod"},
                        }
                    },
                ),
                "groq": provider("groq"),
                "mistral": provider("mistral"),
                "elevenlabs": provider("elevenlabs"),
                "deepgram": provider("deepgram"),
                "gemini": provider("gemini"),
                "openai-compatible": {"network_config": {**network, "base_url": self.urls["compatible"]}},
            },
            "deployments": {"whisper": ["azure/whisper-1", "groq/whisper-large-v3"]},
            **overrides,
        }
        return parse_config(document)


@contextmanager
def running_upstreams() -> Iterator[Upstreams]:
    keys = {name: f"sk-{name}-{secrets.token_hex(12)}" for name in
            ("openai", "azure", "groq", "mistral", "elevenlabs", "deepgram", "gemini")}  # fmt: skip
    fakes: dict[str, FakeUpstream] = {
        "openai": OpenAIFake(keys["openai"]),
        "azure": AzureFake(keys["azure"], {"whisper-prod", "gpt-4o-transcribe"}),
        "groq": GroqFake(keys["groq"]),
        "mistral": MistralFake(keys["mistral"]),
        "elevenlabs": ElevenLabsFake(keys["elevenlabs"]),
        "deepgram": DeepgramFake(keys["deepgram"]),
        "gemini": GeminiFake(keys["gemini"]),
        "compatible": OpenAIFake(""),  # a local server without auth
    }
    fakes["compatible"].check_auth = lambda recorded: None  # type: ignore[method-assign]
    with ExitStack() as stack:
        urls = {name: stack.enter_context(serve(fake)) for name, fake in fakes.items()}
        yield Upstreams(fakes, urls, keys)
