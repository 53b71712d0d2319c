"""Rate limits and budgets per gateway key, and per provider within a key, as claims on counters.

A request reserves before any provider call — one request, its audio seconds, and its estimated cost
— and is refused with a 429 naming the first limit it would pass. Reserving first (rather than
counting after success) is what makes N concurrent requests racing a limit of k admit exactly k: the
check and the count are one atomic step in the store. The reservation is then settled: kept (the cost
corrected to what the serving target charges) when a provider answered, given back when none did,
so a failed upstream call is never charged.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, NamedTuple

from heimdall.core.errors import EngineUnavailable, RateLimited
from heimdall.governance.schema import Budget, RateLimit
from heimdall.governance.store import Claim, GovernanceStore
from heimdall.governance.windows import window_at
from heimdall.observability import logger

if TYPE_CHECKING:
    from heimdall.config import Governance

Clock = Callable[[], float]


class Scope(NamedTuple):
    """The limits one scope answers to: a key, or a key while it uses one provider."""

    rate_limits: tuple[RateLimit, ...] = ()
    budgets: tuple[Budget, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.rate_limits or self.budgets)

    def claims(self, now: float, *, seconds: float, dollars: float, requests_only: bool = False) -> list[Claim]:
        """Requests first, then audio seconds, then dollars (the order they are taken in)."""
        claims: list[Claim] = []
        for rl in self.rate_limits:
            if rl.request_max_limit is not None and rl.request_reset_duration is not None:
                claims.append(
                    _claim("rate_limit", rl.id, "requests", rl.request_reset_duration, now, 1, rl.request_max_limit)
                )
        if requests_only:
            return claims
        for rl in self.rate_limits:
            if rl.token_max_limit is not None and rl.token_reset_duration is not None:
                claims.append(
                    _claim(
                        "rate_limit", rl.id, "audio_seconds", rl.token_reset_duration, now, seconds, rl.token_max_limit
                    )
                )
        for budget in self.budgets:
            claims.append(_claim("budget", budget.id, "dollars", budget.reset_duration, now, dollars, budget.max_limit))
        return claims


def _claim(kind: str, limit_id: str, metric: str, reset: str, now: float, amount: float, limit: float) -> Claim:
    return Claim(kind, limit_id, metric, reset, window_at(reset, now), round(amount, 9), float(limit))


class Limits:
    """Every configured limit, indexed by key and by (key, provider)."""

    def __init__(self, governance: Governance, store: GovernanceStore, clock: Clock) -> None:
        self.store = store
        self.clock = clock
        rate_limits = {r.id: r for r in governance.rate_limits}
        budgets_by_id = {b.id: b for b in governance.budgets}
        self.keys: dict[str, Scope] = {}
        self.providers: dict[tuple[str, str], Scope] = {}
        for key in governance.virtual_keys:
            budgets = {b.id: b for b in governance.budgets if b.virtual_key_id == key.id}
            if key.budget_id is not None:
                budgets[key.budget_id] = budgets_by_id[key.budget_id]
            rls = (rate_limits[key.rate_limit_id],) if key.rate_limit_id else ()
            if rls or budgets:
                self.keys[key.id] = Scope(rls, tuple(budgets.values()))
            for config in key.provider_configs:
                scope = Scope(
                    (rate_limits[config.rate_limit_id],) if config.rate_limit_id else (),
                    tuple(
                        b for b in governance.budgets
                        if config.id is not None and b.provider_config_id is not None
                        and str(b.provider_config_id) == str(config.id)
                    ),
                )  # fmt: skip
                if scope:
                    self.providers[(key.id, config.provider)] = scope

    def key_scope(self, key_id: str | None) -> Scope:
        return self.keys.get(key_id or "", Scope())

    def provider_scope(self, key_id: str | None, provider: str) -> Scope:
        return self.providers.get((key_id or "", provider), Scope())

    def reserve(self, claims: Sequence[Claim]) -> RateLimited | None:
        """Take every claim, or none and the 429 that names the limit in the way."""
        if not claims:
            return None
        now = self.clock()
        try:
            refused = self.store.reserve(claims, now)
        except Exception:  # fail closed: a limit that cannot be checked is not waved through
            logger.exception("rate limits and budgets could not be checked")
            raise EngineUnavailable(
                "Rate limits and budgets cannot be checked right now; try again shortly.",
                code="limits_unavailable",
                headers={"Retry-After": "5"},
            ) from None
        if refused is None:
            return None
        return refusal(refused, now)

    def adjust(self, claims: Sequence[Claim]) -> None:
        """Settle or give back; a failure is logged, never turned into an error for a request that
        was already answered (the counter stays off by that amount until its window ends)."""
        if not claims:
            return
        try:
            self.store.adjust(claims, self.clock())
        except Exception:
            logger.exception("a limit's counter could not be settled", extra={"counters": [c.counter for c in claims]})


def refusal(claim: Claim, now: float) -> RateLimited:
    wait = max(1, math.ceil(claim.window.end - now))
    resets_at = datetime.fromtimestamp(claim.window.end, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
    too_big = claim.amount > claim.limit
    message = (
        f"This request needs {claim.amount:g} {claim.metric.replace('_', ' ')}, more than the whole {claim.describe()}."
        if too_big
        else f"Over the {claim.describe()}; it resets at {resets_at}."
    )
    return RateLimited(
        message,
        retry_after=wait,
        code=claim.code,
        extra={
            "limit": {
                "type": claim.kind,
                "id": claim.limit_id,
                "metric": claim.metric,
                "max_limit": claim.limit,
                "reset_duration": claim.reset_duration,
                "resets_at": resets_at,
            }
        },
    )
