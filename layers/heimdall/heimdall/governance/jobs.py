"""Governance for transcription jobs: admitted at ``POST /v1/uploads``, settled once when the job ends.

A job's audio is not in the request that creates it, so neither its length nor its price is known at
admission. The upload reserves one request, and zero seconds and zero dollars, on each of its key's
limits: a zero claim is still refused once its limit is spent, so a key whose audio or budget is used up
is refused at its next upload (a 429 like any request's). What the upload reserved rides on the job
item (``reserved``), next to the key that created it (``key_id``).

``JobAccounting.settle`` is the one call every way a job ends makes (succeeded, failed, abandoned by a
dead runner; a job transcribed elsewhere calls it with its item too). Its first step is one
conditional write on the job item — ``settled`` set to the upload's sequencer, ``reserved`` taken off —
so it acts once per upload, however often S3 delivers the event or Lambda retries the run. Then:

- succeeded: the decoded seconds and their price at the serving target are added to the key's limits,
  and to the serving provider's limits within the key, in the windows of the moment the job ends
  (added, not reserved: the job is done; a key past its limit is refused from its next upload on);
  the request stays counted;
- failed: the reservation is given back: a failed job is not charged;

and the job's usage record is written (route ``/v1/uploads``; a file an operator dropped into
``incoming/`` has no key, and its record none). A failure to settle is logged, never turned into a
failed job.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from heimdall.core.errors import EngineUnavailable
from heimdall.governance.store import UPLOAD_ROUTE, Claim, UsageRecord
from heimdall.governance.windows import Window
from heimdall.observability import logger
from heimdall.routing import Target

if TYPE_CHECKING:
    from heimdall.core.errors import HeimdallError
    from heimdall.governance.governor import Governor
    from heimdall.governance.limits import Limits
    from heimdall.job_table import JobTable


def claim_to_item(claim: Claim) -> dict[str, Any]:
    return {"kind": claim.kind, "limit_id": claim.limit_id, "metric": claim.metric,
            "reset_duration": claim.reset_duration, "window_start": claim.window.start,
            "window_end": claim.window.end, "amount": claim.amount, "limit": claim.limit}  # fmt: skip


def claim_from_item(item: Mapping[str, Any]) -> Claim:
    return Claim(str(item["kind"]), str(item["limit_id"]), str(item["metric"]), str(item["reset_duration"]),
                 Window(float(item["window_start"]), float(item["window_end"])), float(item["amount"]),
                 float(item["limit"]))  # fmt: skip


class JobAccounting:
    def __init__(self, governor: Governor, table: JobTable) -> None:
        self.governor, self.table = governor, table

    def _unknown_length(self, key_id: str | None) -> tuple[Limits, list[Claim]] | None:
        """The key's limits, and its claims for one request of audio whose length is not known yet
        (zero seconds and dollars, which still meet a spent limit); None when nothing limits the key."""
        limits = self.governor.limits
        scope = limits.key_scope(key_id) if limits is not None else None
        if not scope or limits is None:
            return None
        return limits, scope.claims(self.governor.clock(), seconds=0.0, dollars=0.0)

    def admit_upload(self, key_id: str | None) -> list[Claim]:
        """Reserve the upload's request (and check its audio and budget are not spent), or raise the
        429 naming the spent limit. The claims to store on the job item."""
        found = self._unknown_length(key_id)
        if found is None:
            return []
        limits, claims = found
        refusal = limits.reserve(claims)
        if refusal is not None:
            raise refusal
        return claims

    def refuse_if_spent(self, job: Mapping[str, Any]) -> None:
        """Raise the 429 naming the job's key's audio-seconds or budget limit when it is spent by the
        time the job runs: uploads admitted while the key still had room are each refused once the
        jobs before them used it up, before any provider call. Nothing is reserved (the upload counted
        the request; the job is charged when it ends), so jobs already running are not stopped. A
        store that cannot be read lets the job run: it was admitted at its upload, and failing it for a
        passing outage would lose an upload the client made in good standing."""
        found = self._unknown_length(_text(job.get("key_id")))  # a dropped file's job: no key, no limit
        if found is None:
            return
        limits, claims = found
        try:
            refusal = limits.reserve([claim for claim in claims if claim.metric != "requests"])
        except EngineUnavailable:
            logger.warning("the key's limits could not be checked before the job ran; it runs")
            return
        if refusal is not None:
            raise refusal

    def provider_gate(self, job: Mapping[str, Any]) -> SpentProviders | None:
        """What the router asks before each target of the job's run (or of one of its pieces): a
        provider whose own limit within the job's key is spent is skipped, as for a request."""
        limits = self.governor.limits
        key_id = _text(job.get("key_id"))
        return SpentProviders(limits, key_id) if limits is not None and key_id is not None else None

    def release(self, claims: Sequence[Claim]) -> None:
        """Give back what an upload reserved when its job could not be created."""
        if self.governor.limits is not None:
            self.governor.limits.adjust([claim.undo() for claim in claims])

    def settle(
        self,
        job: Mapping[str, Any],
        *,
        status: int,
        seconds: float | None = None,
        target: Target | None = None,
        fallback_index: int | None = None,
        latency_ms: float | None = None,
    ) -> bool:
        """Charge (``status`` < 400: ``seconds`` at ``target``'s price) or release (any other status) the
        job's upload, and write its usage record — once per upload. False when it was settled already."""
        if self.governor.store is None:
            return False  # no gateway keys: nothing is limited or recorded
        job_id = str(job["job_id"])
        try:
            before = self.table.mark_settled(job_id, str(job.get("sequencer") or ""))
        except Exception:
            logger.exception("job not settled: the job table could not be updated", extra={"job_id": job_id})
            return False
        if before is None:
            return False
        try:
            self._settle(job, before, status, seconds, target, fallback_index, latency_ms)
        except Exception:  # the job's outcome is recorded: a lost charge is logged, never a failed job
            logger.exception("job settled without its charge or usage record", extra={"job_id": job_id})
        return True

    def _settle(
        self,
        job: Mapping[str, Any],
        before: Mapping[str, Any],
        status: int,
        seconds: float | None,
        target: Target | None,
        fallback_index: int | None,
        latency_ms: float | None,
    ) -> None:
        job_id = str(job["job_id"])
        key_id = _text(job.get("key_id"))
        reserved = [claim_from_item(c) for c in before.get("reserved") or []]
        first = "reserved" in before  # a later upload to the same key reserved nothing: it counts anew
        succeeded = status < 400 and target is not None
        seconds = float(seconds or 0.0) if succeeded else 0.0
        cost = self.governor.prices.cost(target.provider, target.model, seconds) if target and succeeded else 0.0
        self._count(key_id, reserved, first=first, succeeded=succeeded, seconds=seconds, cost=cost, target=target)
        now = self.governor.clock()
        fields = dict(job.get("fields") or [])
        self.governor.write_usage(
            UsageRecord(
                ts=now,
                event_id=job_id,
                key_id=key_id,
                route=UPLOAD_ROUTE,
                model_requested=_text(fields.get("model")),
                provider=target.provider if target and succeeded else None,
                model=target.model if target and succeeded else None,
                audio_seconds=round(seconds, 3),
                status=status,
                latency_ms=round(latency_ms if latency_ms is not None else _age_ms(job, now), 1),
                fallback_index=fallback_index if succeeded else None,
                cost=cost,
                cache_hit=False,
            )
        )
        logger.info("job settled", extra={"job_id": job_id, "status_code": status, "audio_seconds": seconds,
                                           "cost": cost})  # fmt: skip

    def _count(
        self,
        key_id: str | None,
        reserved: list[Claim],
        *,
        first: bool,
        succeeded: bool,
        seconds: float,
        cost: float,
        target: Target | None,
    ) -> None:
        limits = self.governor.limits
        if limits is None:
            return
        if not succeeded:
            limits.adjust([claim.undo() for claim in reserved])
            return
        now = self.governor.clock()
        # what the upload reserved for audio and dollars (nothing, today) is replaced by what was used
        changes = [claim.undo() for claim in reserved if claim.metric != "requests"]
        key_claims = limits.key_scope(key_id).claims(now, seconds=seconds, dollars=cost)
        changes += [claim for claim in key_claims if not first or claim.metric != "requests"]
        if target is not None:
            changes += limits.provider_scope(key_id, target.provider).claims(now, seconds=seconds, dollars=cost)
        limits.adjust([claim for claim in changes if claim.units])


class SpentProviders:
    """A job's ``TargetGate``: refuses a target whose provider's limits within the key are spent, and
    reserves nothing — the job is charged once, when it ends (``JobAccounting.settle``). A zero claim
    is refused only once its limit is reached, so this is a check; a job already running is not stopped
    by a limit its own pieces fill (the seconds are counted when it ends)."""

    def __init__(self, limits: Limits, key_id: str) -> None:
        self.limits, self.key_id = limits, key_id

    def admit(self, target: Target) -> HeimdallError | None:
        scope = self.limits.provider_scope(self.key_id, target.provider)
        if not scope:
            return None
        claims = scope.claims(self.limits.clock(), seconds=0.0, dollars=0.0)
        try:
            refusal = self.limits.reserve([claim.by(0.0) for claim in claims])
        except EngineUnavailable:  # as refuse_if_spent: an outage does not fail a job admitted at its upload
            logger.warning("the provider's limits within the key could not be checked before a call; it is made")
            return None
        if refusal is not None:
            refusal.provider = target.provider
        return refusal

    def release(self, target: Target) -> None:
        """Nothing was reserved."""


def _text(value: Any) -> str | None:
    return None if value is None else str(value)[:256]


def _age_ms(job: Mapping[str, Any], now: float) -> float:
    """Without a measured run time: the job's age since ``POST /v1/uploads`` created it."""
    try:
        return max(0.0, (now - datetime.fromisoformat(str(job["created_at"])).timestamp()) * 1000)
    except (KeyError, ValueError):
        return 0.0
