"""The one hook a route calls: limits before any provider call, the cache, settling, and usage.

``admit`` runs once the upload is read and its duration decoded: it looks the request up in the
transcript cache, then reserves the key's limits (a 429 when one is spent). ``transcribe`` /
``open_stream`` call the router — which asks a ProviderGate before each target, so a provider whose
own limit is spent is skipped for the next target, as Bifrost excludes it from routing — then settle:
keep the reservation at the serving target's price when a provider answered, give it back when none
did. ``usage_record`` and ``write_usage`` write the usage record once the response is sent.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from heimdall.core.errors import HeimdallError
from heimdall.core.types import AudioInput, Transcript, TranscriptionRequest
from heimdall.governance.limits import Clock, Limits
from heimdall.governance.pricing import PriceTable
from heimdall.governance.store import UPLOAD_ROUTE, Claim, GovernanceStore, UsageRecord
from heimdall.observability import logger
from heimdall.routing import RoutedStream, RoutedTranscript, Router, Target

if TYPE_CHECKING:
    from heimdall.config import GatewayConfig
    from heimdall.governance.cache import Hit, Lookup, TranscriptCache
    from heimdall.providers.loop_client import LoopClient

R = TypeVar("R")


class Ticket:
    """One admitted request: what it reserved, and what the cache said."""

    def __init__(
        self, key_id: str | None, request: TranscriptionRequest, seconds: float | None, log: dict[str, Any]
    ) -> None:
        self.key_id, self.request, self.seconds, self.log = key_id, request, seconds, log
        self.claims: list[Claim] = []
        self.lookup: Lookup | None = None
        self.hit: Hit | None = None
        self.settled = False


class ProviderGate:
    """Per-provider limits of one key, asked by the router before it tries each target."""

    def __init__(self, limits: Limits, prices: PriceTable, key_id: str | None, seconds: float) -> None:
        self.limits, self.prices, self.key_id, self.seconds = limits, prices, key_id, seconds
        self.held: dict[Target, list[Claim]] = {}

    def admit(self, target: Target) -> HeimdallError | None:
        scope = self.limits.provider_scope(self.key_id, target.provider)
        if not scope:
            return None
        dollars = self.prices.cost(target.provider, target.model, self.seconds)
        claims = scope.claims(self.limits.clock(), seconds=self.seconds, dollars=dollars)
        refusal = self.limits.reserve(claims)
        if refusal is not None:
            refusal.provider = target.provider
            return refusal
        self.held[target] = claims
        return None

    def release(self, target: Target) -> None:
        self.limits.adjust([claim.undo() for claim in self.held.pop(target, [])])


class Governor:
    def __init__(
        self,
        config: GatewayConfig,
        store: GovernanceStore | None,
        cache: TranscriptCache | None,
        *,
        clock: Clock = time.time,
        usage_routes: frozenset[str] = frozenset(),
    ) -> None:
        self.store = store
        self.cache = cache
        self.clock = clock
        self.usage_routes = usage_routes
        self.retention_seconds = config.governance.usage_retention_days * 86400
        self.prices = PriceTable(config.governance.pricing)
        self.limits = Limits(config.governance, store, clock) if store is not None else None

    @property
    def passive(self) -> bool:
        """Nothing to store and no cache: admitting, settling and closing do no I/O (no gateway keys)."""
        return self.store is None and self.cache is None

    # -- before the provider ------------------------------------------------------------------
    def admit(
        self,
        router: Router,
        key_id: str | None,
        request: TranscriptionRequest,
        audio: AudioInput,
        seconds: float | None,
        headers: Mapping[str, str],
        log: dict[str, Any],
    ) -> Ticket:
        """Raises the 429 of the first spent limit; a cache hit needs only the request limits."""
        ticket = Ticket(key_id, request, seconds, log)
        if seconds is not None:
            log["audio_seconds"] = round(seconds, 3)
        if self.cache is not None:
            ticket.lookup = self.cache.lookup(request, audio, headers, key_id)
            if ticket.lookup is not None:
                ticket.hit = self.cache.get(ticket.lookup, request, self.clock())
        ticket.settled = ticket.hit is not None  # a hit keeps its request count and owes nothing more
        scope = self.limits.key_scope(key_id) if self.limits is not None else None
        if not scope or self.limits is None:
            return ticket  # nothing to reserve (per-provider limits are asked target by target)
        if ticket.hit is not None:
            claims = scope.claims(self.clock(), seconds=0, dollars=0, requests_only=True)
        else:
            targets = router.resolve_targets(request.model, request.fallbacks)
            price = max(self.prices.per_minute(t.provider, t.model) for t in targets)
            claims = scope.claims(self.clock(), seconds=seconds or 0.0, dollars=price * (seconds or 0.0) / 60)
        refusal = self.limits.reserve(claims)
        if refusal is not None:
            raise refusal
        ticket.claims = claims
        return ticket

    # -- the provider call ----------------------------------------------------------------------
    def transcribe(
        self, router: Router, ticket: Ticket, audio: AudioInput, deadline: float | None
    ) -> tuple[RoutedTranscript, dict[str, Any] | None]:
        """The transcript (from the cache, or the router) and ``cache_debug`` when the cache was asked."""
        lookup = ticket.lookup
        if ticket.hit is not None and lookup is not None:
            ticket.log.update(cache_hit=True, cost=0.0)
            return _from_cache(ticket.hit, ticket.request), lookup.debug(hit=True)
        routed, gate = self._routed(ticket, lambda gate: router.transcribe(ticket.request, audio, deadline, gate))
        self._settle(ticket, gate, routed.target, routed.transcript)
        if self.cache is not None and lookup is not None:
            self.cache.put(lookup, routed.transcript, routed.target.provider, routed.target.model, self.clock())
        return routed, (lookup.debug(hit=False) if lookup is not None else None)

    async def transcribe_on_loop(
        self, router: Router, ticket: Ticket, audio: AudioInput, deadline: float, client: LoopClient
    ) -> RoutedTranscript:
        """``transcribe`` with the provider calls on the server's event loop, for a ``passive`` governor
        (no cache to ask, no limits to reserve or settle: only the log's facts)."""
        assert self.passive, "a governor with a store or a cache does blocking I/O"
        routed = await router.transcribe_on_loop(ticket.request, audio, deadline, client)
        self._settle(ticket, None, routed.target, routed.transcript)
        return routed

    def open_stream(self, router: Router, ticket: Ticket, audio: AudioInput, deadline: float | None) -> RoutedStream:
        """A stream is charged once its first event arrived (the target is serving by then)."""
        streamed, gate = self._routed(ticket, lambda gate: router.open_stream(ticket.request, audio, deadline, gate))
        self._settle(ticket, gate, streamed.target, None)
        return streamed

    def _routed(self, ticket: Ticket, route: Callable[[ProviderGate | None], R]) -> tuple[R, ProviderGate | None]:
        """The router's answer, with the key's per-provider gate; everything given back when it raised."""
        gate = self._gate(ticket)
        try:
            return route(gate), gate
        except BaseException:
            self._release(ticket, gate)
            raise

    def close(self, ticket: Ticket) -> None:
        """Give back what an unsettled request reserved: no provider answered it."""
        if ticket.settled or self.limits is None:
            return
        ticket.settled = True
        self.limits.adjust([claim.undo() for claim in ticket.claims])

    def _release(self, ticket: Ticket, gate: ProviderGate | None) -> None:
        if gate is not None:
            for target in list(gate.held):
                gate.release(target)
        self.close(ticket)

    def _gate(self, ticket: Ticket) -> ProviderGate | None:
        if self.limits is None or not any(key == ticket.key_id for key, _ in self.limits.providers):
            return None
        return ProviderGate(self.limits, self.prices, ticket.key_id, ticket.seconds or 0.0)

    def _settle(self, ticket: Ticket, gate: ProviderGate | None, target: Target, transcript: Transcript | None) -> None:
        seconds = ticket.seconds
        if seconds is None and transcript is not None:
            seconds = transcript.duration or (transcript.usage.seconds if transcript.usage else None)
        seconds = float(seconds or 0.0)
        cost = self.prices.cost(target.provider, target.model, seconds)
        ticket.log.update(audio_seconds=round(seconds, 3), cost=cost, cache_hit=False)
        ticket.settled = True
        if self.limits is None:
            return
        held = [*ticket.claims, *(gate.held.get(target, []) if gate is not None else [])]
        corrections = [_correct(claim, seconds=seconds, dollars=cost) for claim in held]
        self.limits.adjust([c for c in corrections if c.units])

    # -- after the response ---------------------------------------------------------------------
    def usage_record(self, facts: Mapping[str, Any]) -> UsageRecord | None:
        """The usage record of one transcription request (any status), for authenticated callers, or
        None when there is nothing to write (no store, not a usage route, no key) — known without I/O,
        so a request with nothing to record is not handed to a thread. An upload that created its job
        has none here: the job's record is written when it ends."""
        if self.store is None or facts.get("route") not in self.usage_routes or not facts.get("key_id"):
            return None
        if facts["route"] == UPLOAD_ROUTE and int(facts.get("status") or 500) < 400:
            return None
        now = self.clock()
        fallback = facts.get("fallback_index")
        return UsageRecord(
            ts=now,
            event_id=str(facts.get("event_id")),
            key_id=str(facts["key_id"]),
            route=str(facts["route"]),
            model_requested=_text(facts.get("model")),
            provider=_text(facts.get("provider")),
            model=_text(facts.get("model_deployment")),
            audio_seconds=float(facts.get("audio_seconds") or 0.0),
            status=int(facts.get("status") or 500),
            latency_ms=float(facts.get("latency_ms") or 0.0),
            fallback_index=None if fallback is None else int(fallback),
            cost=float(facts.get("cost") or 0.0),
            cache_hit=bool(facts.get("cache_hit")),
        )

    def write_usage(self, record: UsageRecord) -> None:
        if self.store is None:
            return
        try:
            self.store.record(record, record.ts + self.retention_seconds)
        except Exception:  # the answer is already sent: a lost usage record must not become an error
            logger.exception("usage record not written", extra={"event_id": record.event_id})


def _correct(claim: Claim, *, seconds: float, dollars: float) -> Claim:
    """The difference between what was reserved and what the serving target actually used."""
    actual = {"requests": claim.amount, "audio_seconds": seconds, "dollars": dollars}[claim.metric]
    return claim.by(round(actual - claim.amount, 9))


def _from_cache(hit: Hit, request: TranscriptionRequest) -> RoutedTranscript:
    transcript = hit.transcript
    if "logprobs" not in request.include and transcript.logprobs is not None:
        transcript = transcript.model_copy(update={"logprobs": None})
    return RoutedTranscript(transcript, Target(hit.provider, hit.model), 0, [])


def _text(value: Any) -> str | None:
    return None if value is None else str(value)[:256]


def build_governor(
    config: GatewayConfig,
    bucket: Any,
    *,
    table: str | None,
    state_dir: str | None,
    in_lambda: bool,
    usage_routes: frozenset[str],
    clock: Clock = time.time,
    with_cache: bool = True,
) -> Governor:
    """The store: DynamoDB when ``table`` is named, else SQLite under ``state_dir`` — only when
    gateway keys exist (usage and limits belong to keys). The cache: the audio bucket when there is
    one, else ``state_dir/cache`` — only when the ``semantic_cache`` plugin is on and ``with_cache``
    (jobs do not use it)."""
    from heimdall.config import ConfigError

    root = Path(state_dir or ".heimdall")
    store: GovernanceStore | None = None
    if config.governance.virtual_keys:
        if table:
            from heimdall.governance.dynamodb_store import DynamoDBStore

            store = DynamoDBStore(table)
        elif in_lambda:
            raise ConfigError("governance needs HEIMDALL_GOVERNANCE_TABLE in Lambda (the template sets it)")
        else:
            from heimdall.governance.sqlite_store import SqliteStore

            store = SqliteStore(root / "governance.sqlite3")
    cache = None
    settings = config.semantic_cache if with_cache else None
    if settings is not None and bucket is None and in_lambda:
        logger.warning("the transcript cache is off: it needs the audio bucket (HEIMDALL_AUDIO_BUCKET) in Lambda")
    elif settings is not None:  # imported only then: a gateway without the plugin starts without it
        from heimdall.governance.cache import BucketBackend, DirectoryBackend, TranscriptCache

        backend = BucketBackend(bucket) if bucket is not None else DirectoryBackend(root / "cache")
        cache = TranscriptCache(settings, backend)
    return Governor(config, store, cache, clock=clock, usage_routes=usage_routes)
