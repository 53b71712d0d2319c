"""Render a canonical transcript in the response formats OpenAI defines.

``text``, ``srt`` and ``vtt`` are plain-text bodies exactly as OpenAI returns them (never wrapped
in JSON: the SDK hands those bodies to the user as strings). Cue times are rounded to the
millisecond, not truncated.
"""

from __future__ import annotations

from typing import Any

from heimdall.core.errors import InvalidRequest
from heimdall.core.types import ResponseFormat, Segment, Transcript, TranscriptionRequest

PLAIN_TEXT_FORMATS = frozenset({ResponseFormat.TEXT, ResponseFormat.SRT, ResponseFormat.VTT})


def _timestamp(seconds: float, decimal_mark: str) -> str:
    total_ms = max(0, round(seconds * 1000))
    hours, rest = divmod(total_ms, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    secs, ms = divmod(rest, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}{decimal_mark}{ms:03d}"


def _cues(transcript: Transcript, provider: str | None) -> list[Segment]:
    if transcript.segments is None:
        raise InvalidRequest(
            f"Provider '{provider}' returned no timestamps, so subtitles cannot be rendered; "
            "ask for response_format json or text, or use a model that returns segments.",
            param="response_format",
            code="unsupported_response_format",
            provider=provider,
        )
    return [segment for segment in transcript.segments if _cue_text(segment.text)]


def _cue_text(text: str) -> str:
    """A cue's text on one line, without ``-->``: a provider's line breaks could end the cue and start
    a forged one."""
    return " ".join(text.split()).replace("-->", "->")


def render_text(transcript: Transcript) -> str:
    return transcript.text.strip() + "\n"


def render_srt(transcript: Transcript, provider: str | None = None) -> str:
    blocks = [
        f"{number}\n{_timestamp(cue.start, ',')} --> {_timestamp(cue.end, ',')}\n{_cue_text(cue.text)}\n"
        for number, cue in enumerate(_cues(transcript, provider), start=1)
    ]
    return "\n".join(blocks) + ("\n" if blocks else "")


def render_vtt(transcript: Transcript, provider: str | None = None) -> str:
    blocks = [
        f"{_timestamp(cue.start, '.')} --> {_timestamp(cue.end, '.')}\n{_cue_text(cue.text)}\n"
        for cue in _cues(transcript, provider)
    ]
    return "WEBVTT\n\n" + "\n".join(blocks) + ("\n" if blocks else "")


def render_json(transcript: Transcript, request: TranscriptionRequest) -> dict[str, Any]:
    """OpenAI's ``json`` body: the text, plus usage and logprobs where the model has them."""
    body: dict[str, Any] = {"text": transcript.text}
    if transcript.logprobs is not None:
        body["logprobs"] = [lp.model_dump(exclude_none=True) for lp in transcript.logprobs]
    if transcript.usage is not None:
        body["usage"] = transcript.usage.model_dump(exclude_none=True)
    return body


def render_verbose_json(transcript: Transcript, request: TranscriptionRequest) -> dict[str, Any]:
    """OpenAI's ``verbose_json``: segments always, words only when asked for (as OpenAI does)."""
    body: dict[str, Any] = {
        "task": "transcribe",
        "language": transcript.language,
        "duration": transcript.duration,
        "text": transcript.text,
        "segments": [s.model_dump(exclude_none=True) for s in transcript.segments or []],
    }
    if request.wants_words:
        body["words"] = [w.model_dump() for w in transcript.words or []]
    if transcript.usage is not None:
        body["usage"] = transcript.usage.model_dump(exclude_none=True)
    return body


def render_document(transcript: Transcript, request: TranscriptionRequest) -> dict[str, Any]:
    """The JSON body for ``json`` or ``verbose_json``."""
    if request.response_format is ResponseFormat.VERBOSE_JSON:
        return render_verbose_json(transcript, request)
    return render_json(transcript, request)


def extra_fields(
    *, provider: str, model_requested: str, model_deployment: str, fallback_index: int, **more: Any
) -> dict[str, Any]:
    """Bifrost's ``extra_fields`` on a success: who served the request, plus what the caller adds."""
    return {
        "request_type": "transcription",
        "provider": provider,
        "model_requested": model_requested,
        "model_deployment": model_deployment,
        "fallback_index": fallback_index,
        **more,
    }


def render_plain(transcript: Transcript, fmt: ResponseFormat, provider: str | None = None) -> str:
    if fmt is ResponseFormat.SRT:
        return render_srt(transcript, provider)
    if fmt is ResponseFormat.VTT:
        return render_vtt(transcript, provider)
    return render_text(transcript)
