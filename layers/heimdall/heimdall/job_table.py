"""The job table (DynamoDB): one item per job, both what the user sees and who may run it.

An item is a job's status (queued | running | succeeded | failed), the object version it is about
(ETag, size, and the S3 event's sequencer, which orders uploads to one key), and the lease of the
run that holds it: ``owner`` and ``lease_until``, pushed forward by heartbeats. Every change is one
conditional write, so concurrent deliveries, retries and re-uploads agree on one outcome:

- a newer upload (greater sequencer, other bytes) takes the job over, whatever its state;
- a run may start on an object version when its lease has lapsed (its runner died) and fewer than
  ``max_attempts`` runs have started;
- only the lease's owner may record progress or an outcome, so a run that lost its lease (to a
  newer upload, or after stalling past it) can never overwrite what its successor recorded.

boto3 is imported when the table is first used.
"""

from __future__ import annotations

import math
import re
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Literal, NamedTuple

from heimdall.aws_clients import LazyClient

#: Attributes a user sees in a job's status (the rest is the lease and the request's parameters).
PUBLIC = ("job_id", "status", "created_at", "updated_at", "key", "key_id", "attempt", "heartbeat_at",
          "pieces_done", "pieces_total", "error", "provider", "model_deployment", "fallback_index",
          "transcript_key", "audio_seconds", "phase", "pieces_failed", "started_at")  # fmt: skip
#: What a new run clears from the item.
OUTCOME = ("error", "provider", "model_deployment", "fallback_index", "transcript_key", "pieces_done", "pieces_total",
           "audio_seconds")  # fmt: skip
#: What a fanned-out job adds (heimdall.fanout): its phase, which pieces are done or failed for good,
#: and the stitch's claim. A newer upload clears them; a retry of the same upload keeps them, so the
#: pieces already done stay counted while the retry cuts the audio again.
FANOUT = ("phase", "pieces_finished", "pieces_failed", "stitcher", "stitch_until")
#: What a retry of the same upload clears: the outcome, but not the pieces' count.
RETRY_CLEARS = tuple(name for name in OUTCOME if name not in ("pieces_done", "pieces_total"))


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def sequence(sequencer: str) -> str:
    """S3 sequencers compare as hex strings right-padded with zeros to one length."""
    return sequencer.upper().ljust(64, "0")


class ObjectVersion(NamedTuple):
    """The uploaded object a job transcribes, as its S3 event names it."""

    key: str
    etag: str
    size: int
    sequencer: str


@dataclass
class Claim:
    """What a delivery found: ``claimed`` (run it), or why not."""

    outcome: Literal["claimed", "done", "busy", "superseded", "exhausted"]
    item: dict[str, Any]


def view(item: dict[str, Any]) -> dict[str, Any]:
    """A job's status as the user sees it: which object it is about and how far it got."""
    status = {name: item[name] for name in PUBLIC if name in item}
    if "pieces_failed" in status:
        status["pieces_failed"] = sorted(int(index) for index in status["pieces_failed"])
    if "etag" in item:
        status["object"] = {"etag": item["etag"], "size": item["size"]}
    eta = time_left(item)
    if eta is not None:
        status["eta_seconds"] = eta
    return status


def time_left(item: dict[str, Any], now: float | None = None) -> int | None:
    """Seconds until a running job's last piece is done, at the rate its pieces have been done since
    its upload's first run started (pieces are cut to about one length, so pieces stand for audio).
    None until it can be told: no piece done yet, the number of pieces not known yet (the last
    piece not cut), or the job not running."""
    done, total, started = item.get("pieces_done"), item.get("pieces_total"), item.get("started_at")
    if item.get("status") != "running" or not isinstance(started, str) or not done or not total:
        return None
    try:
        elapsed = (now if now is not None else time.time()) - datetime.fromisoformat(started).timestamp()
    except ValueError:
        return None
    remaining = max(int(total) - int(done), 0)
    return math.ceil(max(elapsed, 0.0) * remaining / int(done))


class JobTable:
    def __init__(self, name: str) -> None:
        self.name = name
        self._dynamodb = LazyClient("dynamodb")

    @property
    def dynamodb(self) -> Any:
        return self._dynamodb()

    # -- reading and creating -------------------------------------------------------------------
    def get(self, job_id: str) -> dict[str, Any] | None:
        response = self.dynamodb.get_item(TableName=self.name, Key=_key(job_id), ConsistentRead=True)
        return _decode(response["Item"]) if "Item" in response else None

    def create(self, job_id: str, **fields: Any) -> None:
        """A job waiting for its upload (``queued``)."""
        item = {"job_id": job_id, "status": "queued", "created_at": now_iso(), "updated_at": now_iso(), **fields}
        self.dynamodb.put_item(
            TableName=self.name,
            Item=_encode({k: v for k, v in item.items() if v is not None}),
            ConditionExpression="attribute_not_exists(job_id)",
        )

    # -- running ------------------------------------------------------------------------------
    def claim(
        self, job_id: str, version: ObjectVersion, *, owner: str, lease_seconds: float, max_attempts: int
    ) -> Claim:
        """Start a run of ``version``, or say why this delivery must not."""
        for _ in range(3):  # a state read between two writes may be stale: decide again, a few times
            moment = time.time()
            lease = {"status": "running", "owner": owner, "lease_until": moment + lease_seconds,
                     "heartbeat_at": now_iso(), "updated_at": now_iso()}  # fmt: skip
            fresh = {**lease, "started_at": now_iso(), "etag": version.etag, "size": version.size,
                     "sequencer": sequence(version.sequencer), "key": version.key, "attempt": 1}  # fmt: skip
            newer = "attribute_not_exists(#etag) OR (#sequencer < :sequencer AND (#etag <> :etag OR #status = :failed))"
            values = {":sequencer": fresh["sequencer"], ":etag": version.etag, ":failed": "failed"}
            item = self._update(job_id, fresh, newer, values, remove=OUTCOME + FANOUT, created=True)
            if item is not None:
                return Claim("claimed", item)
            lapsed = "#etag = :etag AND #status = :running AND #lease_until < :now AND #attempt < :max"
            values = {":etag": version.etag, ":running": "running", ":now": moment, ":max": max_attempts}
            item = self._update(job_id, lease, lapsed, values, remove=RETRY_CLEARS, add={"attempt": 1})
            if item is not None:
                return Claim("claimed", item)
            current = self.get(job_id) or {}
            if current.get("etag") != version.etag:
                if current.get("sequencer", "") >= sequence(version.sequencer):
                    return Claim("superseded", current)
            elif current["status"] in ("succeeded", "failed"):
                return Claim("done", current)
            elif current["lease_until"] >= time.time():
                return Claim("busy", current)
            elif current["attempt"] >= max_attempts:
                return Claim("exhausted", current)
        return Claim("busy", current)

    def heartbeat(self, job_id: str, owner: str, lease_seconds: float, **progress: Any) -> bool:
        """Push the lease forward (with any progress); False once the run no longer holds the job."""
        changes = {"lease_until": time.time() + lease_seconds, "heartbeat_at": now_iso(), **progress}
        return self._owned_update(job_id, owner, changes) is not None

    def finish(self, job_id: str, owner: str, status: str, **fields: Any) -> dict[str, Any] | None:
        """Record the run's outcome; None when the run no longer holds the job."""
        return self._owned_update(job_id, owner, {"status": status, "lease_until": 0, "updated_at": now_iso(),
                                                  **fields})  # fmt: skip

    def release(self, job_id: str, owner: str) -> None:
        """Give the lease up at once (the run failed unexpectedly; a retry may take it now)."""
        self._owned_update(job_id, owner, {"lease_until": 0})

    def fail_abandoned(self, job_id: str, version: ObjectVersion, error: dict[str, Any]) -> dict[str, Any] | None:
        """Mark ``version``'s job failed if no run is alive on it: its lease lapsed, or it never started."""
        changes = {"status": "failed", "error": error, "lease_until": 0, "updated_at": now_iso(), "key": version.key,
                   "etag": version.etag, "size": version.size, "sequencer": sequence(version.sequencer)}  # fmt: skip
        condition = (
            "attribute_not_exists(#etag) OR (#sequencer < :sequencer AND #etag <> :etag)"
            " OR (#etag = :etag AND #status = :running AND #lease_until < :now)"
        )
        values = {":etag": version.etag, ":sequencer": changes["sequencer"], ":running": "running", ":now": time.time()}
        cleared = tuple(name for name in OUTCOME if name != "error")
        return self._update(job_id, changes, condition, values, remove=cleared, created=True)

    def mark_settled(self, job_id: str, sequencer: str) -> dict[str, Any] | None:
        """Mark the upload ``sequencer`` of a job settled (governance charged or released it), once:
        the item as it was before (with what its upload ``reserved``), or None when it was already."""
        condition = "attribute_exists(#job_id) AND (attribute_not_exists(#settled) OR #settled < :sequencer)"
        changes = {"settled": sequencer}
        values = {":sequencer": sequencer}
        return self._update(job_id, changes, condition, values, remove=("reserved",), returns="ALL_OLD")

    # -- a fanned-out job (heimdall.fanout) -----------------------------------------------------
    def begin_pieces(self, job_id: str, owner: str) -> dict[str, Any] | None:
        """The run holding the job starts cutting it into pieces for the piece function."""
        return self._expression(
            job_id,
            "SET #phase = :cutting, #pieces_done = if_not_exists(#pieces_done, :zero), #updated_at = :now",
            "#owner = :owner AND #status = :running",
            {":cutting": "cutting", ":zero": 0, ":now": now_iso(), ":owner": owner, ":running": "running"},
        )

    def pieces_cut(
        self, job_id: str, owner: str, total: int, audio_seconds: float, hold_seconds: float
    ) -> dict[str, Any] | None:
        """The last piece is cut and queued: the run hands the job over to its pieces. The lease
        becomes the pieces' (owner ``pieces``) for ``hold_seconds``, so a duplicated or retried
        upload event finds the job busy instead of cutting it again."""
        return self._expression(
            job_id,
            "SET #pieces_total = :total, #audio_seconds = :seconds, #phase = :transcribing, #owner = :pieces,"
            " #lease_until = :until, #heartbeat_at = :now, #updated_at = :now",
            "#owner = :owner AND #status = :running",
            {":total": total, ":seconds": audio_seconds, ":transcribing": "transcribing", ":pieces": "pieces",
             ":until": time.time() + hold_seconds, ":now": now_iso(), ":owner": owner, ":running": "running"},
        )  # fmt: skip

    def piece_done(self, job_id: str, etag: str, index: int) -> dict[str, Any] | None:
        """Count piece ``index`` done, once: None when it was counted already or the job is no longer
        running on ``etag``. One conditional write on the job's item marks it and counts it."""
        return self._expression(
            job_id,
            "ADD #pieces_finished :index, #pieces_done :one SET #updated_at = :now",
            "#etag = :etag AND #status = :running AND NOT contains(#pieces_finished, :number)",
            {":index": {index}, ":one": 1, ":now": now_iso(), ":etag": etag, ":running": "running",
             ":number": index},
        )  # fmt: skip

    def claim_stitch(self, job_id: str, etag: str, stitcher: str, lease_seconds: float) -> dict[str, Any] | None:
        """The right to stitch, for whoever sees every piece done first; a stitcher that died loses it
        after ``lease_seconds``."""
        moment = time.time()
        return self._expression(
            job_id,
            "SET #phase = :stitching, #stitcher = :stitcher, #stitch_until = :until, #updated_at = :now",
            "#etag = :etag AND #status = :running AND #pieces_done >= #pieces_total"
            " AND (attribute_not_exists(#stitcher) OR #stitch_until < :moment)",
            {":stitching": "stitching", ":stitcher": stitcher, ":until": moment + lease_seconds, ":now": now_iso(),
             ":etag": etag, ":running": "running", ":moment": moment},
        )  # fmt: skip

    def finish_stitched(self, job_id: str, etag: str, stitcher: str, **fields: Any) -> dict[str, Any] | None:
        """The stitcher records the job succeeded; None when it lost its claim or the job ended."""
        changes = {"status": "succeeded", "lease_until": 0, "updated_at": now_iso(), **fields}
        values = {":etag": etag, ":running": "running", ":stitcher": stitcher}
        condition = "#etag = :etag AND #status = :running AND #stitcher = :stitcher"
        return self._update(job_id, changes, condition, values, remove=("phase", "stitcher", "stitch_until"))

    def fail_pieces(self, job_id: str, etag: str, index: int, error: dict[str, Any]) -> dict[str, Any] | None:
        """Piece ``index`` failed for good: the running job fails with ``error`` (None when it had
        ended already; a failed fanned-out job still adds the piece to ``pieces_failed``)."""
        values = {":index": {index}, ":now": now_iso(), ":etag": etag, ":running": "running"}
        failed = self._expression(
            job_id,
            "SET #status = :failed, #error = :error, #lease_until = :zero, #updated_at = :now"
            " ADD #pieces_failed :index REMOVE #phase, #stitcher, #stitch_until",
            "#etag = :etag AND #status = :running",
            {**values, ":failed": "failed", ":error": error, ":zero": 0},
        )
        if failed is None:
            noted = {k: values[k] for k in (":index", ":now", ":etag")}
            condition = "#etag = :etag AND attribute_exists(#pieces_failed)"
            self._expression(job_id, "ADD #pieces_failed :index SET #updated_at = :now", condition, noted)
        return failed

    # -- one conditional write ----------------------------------------------------------------
    def _owned_update(self, job_id: str, owner: str, changes: dict[str, Any]) -> dict[str, Any] | None:
        values = {":owner": owner, ":running": "running"}
        return self._update(job_id, changes, "#owner = :owner AND #status = :running", values)

    def _update(
        self,
        job_id: str,
        changes: dict[str, Any],
        condition: str,
        values: dict[str, Any],
        *,
        remove: tuple[str, ...] = (),
        add: dict[str, int] | None = None,
        created: bool = False,
        returns: Literal["ALL_NEW", "ALL_OLD"] = "ALL_NEW",
    ) -> dict[str, Any] | None:
        """One UpdateItem; the new item (or the old one), or None when ``condition`` did not hold."""
        if created:
            changes = {**changes, "created_at": now_iso()}
        sets = [f"#{n} = :set_{n}" for n in changes if n != "created_at"]
        if created:
            sets.append("#created_at = if_not_exists(#created_at, :set_created_at)")
        expression = "SET " + ", ".join(sets)
        if add:
            expression += " ADD " + ", ".join(f"#{n} :add_{n}" for n in add)
        if remove:
            expression += " REMOVE " + ", ".join(f"#{n}" for n in remove)
        attribute_values = {
            **{f":set_{n}": v for n, v in changes.items()},
            **{f":add_{n}": v for n, v in (add or {}).items()},
            **values,
        }
        return self._expression(job_id, expression, condition, attribute_values, returns)

    def _expression(
        self,
        job_id: str,
        expression: str,
        condition: str,
        values: dict[str, Any],
        returns: Literal["ALL_NEW", "ALL_OLD"] = "ALL_NEW",
    ) -> dict[str, Any] | None:
        """One UpdateItem as written (``#name`` placeholders stand for themselves)."""
        names = {token: token[1:] for token in re.findall(r"#\w+", f"{expression} {condition}")}
        try:
            response = self.dynamodb.update_item(
                TableName=self.name,
                Key=_key(job_id),
                UpdateExpression=expression,
                ConditionExpression=condition,
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=_encode(values),
                ReturnValues=returns,
            )
        except self.dynamodb.exceptions.ConditionalCheckFailedException:
            return None
        return _decode(response["Attributes"])


def _key(job_id: str) -> dict[str, Any]:
    return {"job_id": {"S": job_id}}


def _encode(values: dict[str, Any]) -> dict[str, Any]:
    from boto3.dynamodb.types import TypeSerializer

    serializer = TypeSerializer()
    return {k: serializer.serialize(_decimals(v)) for k, v in values.items()}


def _decode(item: dict[str, Any]) -> dict[str, Any]:
    from boto3.dynamodb.types import TypeDeserializer

    deserializer = TypeDeserializer()
    return {k: _numbers(deserializer.deserialize(v)) for k, v in item.items()}


def _decimals(value: Any) -> Any:
    """DynamoDB numbers are Decimals going in."""
    if isinstance(value, float):
        return Decimal(repr(value))
    if isinstance(value, dict):
        return {k: _decimals(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_decimals(v) for v in value]
    return value


def _numbers(value: Any) -> Any:
    """...and plain ints and floats coming out."""
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dict):
        return {k: _numbers(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_numbers(v) for v in value]
    return value
