"""The transcript cache: Bifrost's ``semantic_cache`` plugin in direct mode (an exact hash, no embedding).

The entry's id hashes the audio bytes (read from the spooled upload in 1 MiB blocks, never copied
whole), the model asked for, every field that changes the words (language, prompt, temperature,
chunking strategy), the cache key that partitions the cache (``x-bf-cache-key``, else the plugin's
``default_cache_key``) and, unless ``disable_identity_scoping``, the gateway key — so one tenant can
never be served, or probe for, another's audio. Output format and timestamp granularity are not in it:
the entry is the canonical transcript, rendered in whatever format a later request asks for, as long
as it holds what that format needs (segments for srt/vtt/verbose_json, words when asked for).

Entries live in the audio bucket under ``cache/`` in AWS, or in a local directory under ``make run``,
each with its own expiry. Bifrost's per-request headers are honoured: ``x-bf-cache-key``,
``x-bf-cache-ttl`` (a duration or seconds; an invalid one is ignored) and ``x-bf-cache-no-store``
(serve a hit, but store nothing).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from heimdall.core.types import AudioInput, ResponseFormat, Transcript, TranscriptionRequest
from heimdall.governance.schema import SemanticCache, ttl_seconds
from heimdall.observability import logger

KEY_HEADER = "x-bf-cache-key"
TTL_HEADER = "x-bf-cache-ttl"
NO_STORE_HEADER = "x-bf-cache-no-store"
_BLOCK = 1024 * 1024
_SEGMENT_FORMATS = frozenset({ResponseFormat.SRT, ResponseFormat.VTT, ResponseFormat.VERBOSE_JSON})


class CacheBackend(Protocol):
    def get(self, cache_id: str) -> dict[str, Any] | None: ...

    def put(self, cache_id: str, entry: dict[str, Any]) -> None: ...


class DirectoryBackend:
    """``make run``: one JSON file per entry, written whole or not at all (rename over a temp file)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)

    def get(self, cache_id: str) -> dict[str, Any] | None:
        try:
            document: dict[str, Any] = json.loads((self.root / f"{cache_id}.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        return document

    def put(self, cache_id: str, entry: dict[str, Any]) -> None:
        with tempfile.NamedTemporaryFile("w", dir=self.root, suffix=".tmp", delete=False, encoding="utf-8") as f:
            json.dump(entry, f, separators=(",", ":"))
        os.replace(f.name, self.root / f"{cache_id}.json")


class BucketBackend:
    """AWS: ``cache/{id}.json`` in the audio bucket (a lifecycle rule removes old entries)."""

    def __init__(self, bucket: Any) -> None:
        self.bucket = bucket

    def get(self, cache_id: str) -> dict[str, Any] | None:
        document: dict[str, Any] | None = self.bucket.get_json(f"cache/{cache_id}.json")
        return document

    def put(self, cache_id: str, entry: dict[str, Any]) -> None:
        self.bucket.put_json(f"cache/{cache_id}.json", entry)


@dataclass(frozen=True)
class Lookup:
    """One request's view of the cache: its entry id, and what it may do with it."""

    cache_id: str
    ttl_seconds: float
    store: bool

    def debug(self, *, hit: bool) -> dict[str, Any]:
        """``extra_fields.cache_debug`` as Bifrost shapes it for the direct path."""
        if hit:
            return {"cache_hit": True, "hit_type": "direct", "cache_id": self.cache_id}
        return {"cache_hit": False, "cache_id": self.cache_id}


@dataclass(frozen=True)
class Hit:
    transcript: Transcript
    provider: str
    model: str


def audio_digest(audio: AudioInput) -> str:
    digest = hashlib.sha256()
    file = audio.rewind()
    while block := file.read(_BLOCK):
        digest.update(block)
    audio.rewind()
    return digest.hexdigest()


def serves(transcript: Transcript, request: TranscriptionRequest) -> bool:
    """Whether a stored transcript holds everything this request's format needs."""
    if request.response_format in _SEGMENT_FORMATS and transcript.segments is None:
        return False
    if request.wants_words and transcript.words is None:
        return False
    return not ("logprobs" in request.include and transcript.logprobs is None)


class TranscriptCache:
    def __init__(self, settings: SemanticCache, backend: CacheBackend) -> None:
        self.settings = settings
        self.backend = backend

    def lookup(
        self, request: TranscriptionRequest, audio: AudioInput, headers: Mapping[str, str], key_id: str | None
    ) -> Lookup | None:
        """None when this request does not use the cache (no cache key, or a stream)."""
        partition = (headers.get(KEY_HEADER) or "").strip() or self.settings.default_cache_key
        if not partition or request.stream:
            return None
        ttl = self.settings.ttl_seconds
        if headers.get(TTL_HEADER):
            with contextlib.suppress(ValueError):  # as Bifrost: an invalid TTL is ignored
                ttl = ttl_seconds(headers[TTL_HEADER])
        identity = None if self.settings.disable_identity_scoping else key_id
        parts = [
            "heimdall-transcript-cache/1",
            identity,
            partition,
            audio_digest(audio),
            request.model if self.settings.cache_by_model else None,
            request.language,
            request.prompt,
            request.temperature,
            request.chunking_strategy,
        ]
        cache_id = hashlib.sha256(json.dumps(parts).encode()).hexdigest()
        no_store = (headers.get(NO_STORE_HEADER) or "").strip().lower() == "true"
        return Lookup(cache_id, ttl, store=not no_store)

    def get(self, lookup: Lookup, request: TranscriptionRequest, now: float) -> Hit | None:
        try:
            entry = self.backend.get(lookup.cache_id)
            if not entry or float(entry.get("expires_at", 0)) <= now:
                return None
            hit = Hit(Transcript.model_validate(entry["transcript"]), str(entry["provider"]), str(entry["model"]))
        except Exception:  # a cache that cannot be read (or holds a damaged entry) is a miss, never a failure
            logger.exception("transcript cache read failed")
            return None
        return hit if serves(hit.transcript, request) else None

    def put(self, lookup: Lookup, transcript: Transcript, provider: str, model: str, now: float) -> None:
        if not lookup.store:
            return
        entry = {
            "created_at": now,
            "expires_at": now + lookup.ttl_seconds,
            "provider": provider,
            "model": model,
            "transcript": transcript.model_dump(exclude_none=True),
        }
        try:
            self.backend.put(lookup.cache_id, entry)
        except Exception:
            logger.exception("transcript cache write failed")
