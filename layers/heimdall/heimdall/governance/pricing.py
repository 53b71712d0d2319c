"""What a transcription costs: US dollars per minute of audio, by ``provider/model``.

The defaults are the providers' published pay-as-you-go list prices, checked 24 November 2026
(docs/governance.md names the page each comes from); an operator's ``governance.pricing`` entries
win, and ``provider/*`` prices every model of a provider not named on its own. A model priced nowhere
costs 0 — say so in ``governance.pricing`` when a budget should count it.
"""

from __future__ import annotations

from collections.abc import Mapping

DEFAULT_PRICES: dict[str, float] = {
    "openai/whisper-1": 0.006,
    "openai/gpt-4o-transcribe": 0.006,
    "openai/gpt-4o-mini-transcribe": 0.003,
    "azure/*": 0.006,  # Azure OpenAI Whisper: $0.36 per hour
    "groq/whisper-large-v3": 0.111 / 60,
    "groq/whisper-large-v3-turbo": 0.04 / 60,
    "groq/distil-whisper-large-v3-en": 0.02 / 60,
    "elevenlabs/*": 0.40 / 60,  # Scribe: $0.40 per hour (the Starter tier's; larger plans pay less)
    "deepgram/*": 0.0043,  # Nova-3 (monolingual) and Nova-2, pre-recorded
    "mistral/voxtral-mini-2507": 0.002,  # Voxtral Mini Transcribe (v25.07)
    "mistral/*": 0.003,  # Voxtral Mini Transcribe 2 (voxtral-mini-latest since February 2026)
    "gemini/gemini-2.5-flash": 32 * 60 * 1.00 / 1e6,  # 32 audio tokens a second at $1.00 per million
    "gemini/gemini-2.0-flash": 32 * 60 * 0.70 / 1e6,
    "gemini/*": 32 * 60 * 1.00 / 1e6,
    "local/*": 0.0,
    "openai-compatible/*": 0.0,
}


class PriceTable:
    def __init__(self, overrides: Mapping[str, float]) -> None:
        self.prices = {**DEFAULT_PRICES, **overrides}

    def per_minute(self, provider: str, model: str) -> float:
        exact = self.prices.get(f"{provider}/{model}")
        return exact if exact is not None else self.prices.get(f"{provider}/*", 0.0)

    def cost(self, provider: str, model: str, seconds: float) -> float:
        return round(self.per_minute(provider, model) * seconds / 60, 8)
