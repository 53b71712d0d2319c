"""OpenAI's /v1/audio/transcriptions, checked as the real API does (API reference "Create
transcription"): Bearer auth, multipart field names, response_format per model, word timestamps
only with verbose_json, unknown arguments refused."""

from __future__ import annotations

from typing import Any

from starlette.responses import JSONResponse, PlainTextResponse, Response

from tests.fakes.base import DURATION, SPOKEN, WORDS, FakeUpstream, Recorded, Rejection, data, sse

FIELDS = {
    "model", "language", "prompt", "response_format", "temperature", "timestamp_granularities[]", "include[]",
    "chunking_strategy", "stream",
}  # fmt: skip
FORMATS = {"json", "text", "srt", "verbose_json", "vtt"}
MAX_FILE_BYTES = 25 * 1024 * 1024  # "File uploads are currently limited to 25 MB"


def invalid(message: str, param: str | None, code: str | None = None) -> Rejection:
    return Rejection(
        400, {"error": {"message": message, "type": "invalid_request_error", "param": param, "code": code}}
    )


class OpenAIFake(FakeUpstream):
    name = "openai"
    path = "/v1/audio/transcriptions"

    def check_auth(self, recorded: Recorded) -> None:
        if recorded.headers.get("authorization") != f"Bearer {self.key}":
            raise Rejection(401, {"error": {
                "message": "Incorrect API key provided." + self.leak(), "type": "invalid_request_error",
                "param": None, "code": "invalid_api_key"}})  # fmt: skip

    def check(self, recorded: Recorded) -> None:
        if recorded.method != "POST" or recorded.path != self.path:
            raise Rejection(404, {"error": {"message": f"Invalid URL ({recorded.method} {recorded.path})",
                                            "type": "invalid_request_error", "param": None, "code": None}})  # fmt: skip
        self.check_auth(recorded)
        self.check_form(recorded)

    def check_form(self, recorded: Recorded) -> None:
        if recorded.file is None or recorded.file["field"] != "file" or not recorded.file["filename"]:
            raise invalid("You must provide a file with a filename.", "file")
        if recorded.file["size"] > MAX_FILE_BYTES:
            message = f"Maximum content size limit ({MAX_FILE_BYTES}) exceeded ({recorded.file['size']} bytes read)"
            raise Rejection(413, {"error": {"message": message, "type": "server_error", "param": None, "code": None}})
        for name, _ in recorded.fields:
            if name not in FIELDS:
                raise invalid(f"Unrecognized request argument supplied: {name}", name)
        model = recorded.field("model")
        if not model:
            raise invalid("you must provide a model parameter", "model")
        fmt = recorded.field("response_format") or "json"
        if fmt not in FORMATS:
            raise invalid(f"'{fmt}' is not one of {sorted(FORMATS)} - 'response_format'", "response_format")
        if model.startswith("gpt-4o") and fmt not in ("json", "text"):
            raise invalid(f"response_format '{fmt}' is not compatible with model '{model}'.", "response_format")
        if recorded.all("timestamp_granularities[]") and fmt != "verbose_json":
            raise invalid("timestamp_granularities requires response_format=verbose_json", "timestamp_granularities")
        temperature = recorded.field("temperature")
        if temperature is not None:
            try:
                float(temperature)
            except ValueError:
                raise invalid("temperature must be a number", "temperature") from None

    def verbose(self, recorded: Recorded) -> dict[str, Any]:
        if recorded.audio_seconds is not None and recorded.audio_seconds > 30:
            return self.long_verbose(recorded.audio_seconds)
        body: dict[str, Any] = {
            "task": "transcribe",
            "language": "english",
            "duration": DURATION,
            "text": SPOKEN,
            "segments": [
                {"id": 0, "seek": 0, "start": 0.0, "end": 3.46, "text": " The quick brown fox jumps over the lazy dog.",
                 "tokens": [50364, 440, 1702], "temperature": 0.0, "avg_logprob": -0.21, "compression_ratio": 1.1,
                 "no_speech_prob": 0.01},
                {"id": 1, "seek": 0, "start": 4.3, "end": 7.0,
                 "text": " A second sentence follows after a short pause.",
                 "tokens": [50564, 316, 1150], "temperature": 0.0, "avg_logprob": -0.3, "compression_ratio": 1.1,
                 "no_speech_prob": 0.02},
            ],
            "usage": {"type": "duration", "seconds": 8},
        }  # fmt: skip
        if "word" in recorded.all("timestamp_granularities[]"):
            body["words"] = [{"word": w, "start": s, "end": e} for w, s, e in WORDS]
        return body

    def wrong_shape(self) -> Any:
        return {"text": SPOKEN, "segments": [{"id": 0, "seek": 0, "text": " The quick brown fox"}]}  # no times

    def stream_events(self, recorded_fields: dict[str, str]) -> list[bytes]:
        words = SPOKEN.split(" ")
        events = [data({"type": "transcript.text.delta", "delta": (" " if i else "") + w,
                        "logprobs": [{"token": w, "logprob": -0.01, "bytes": list(w.encode())}]})
                  for i, w in enumerate(words)]  # fmt: skip
        events.append(data({"type": "transcript.text.done", "text": SPOKEN, "usage": {
            "type": "tokens", "input_tokens": 71, "output_tokens": 22, "total_tokens": 93}}))  # fmt: skip
        return events

    @staticmethod
    def long_verbose(seconds: float) -> dict[str, Any]:
        """A long recording: a sentence every 10 s, the last ending with the audio."""
        count = max(1, int(seconds // 10))
        segments = [
            {"id": i, "seek": i * 1000, "start": i * 10.0, "end": min((i + 1) * 10.0, seconds),
             "text": f" Sentence number {i + 1}."}
            for i in range(count)
        ]  # fmt: skip
        segments[-1]["end"] = round(seconds, 3)
        return {"task": "transcribe", "language": "english", "duration": round(seconds, 3),
                "text": "".join(s["text"] for s in segments).strip(), "segments": segments,
                "usage": {"type": "duration", "seconds": int(seconds + 0.999)}}  # fmt: skip

    def answer(self, recorded: Recorded) -> Response:
        model = recorded.field("model") or ""
        fmt = recorded.field("response_format") or "json"
        if recorded.field("stream") == "true":
            if not model.startswith("gpt-4o"):
                raise invalid(f"Streaming is not supported for {model}.", "stream")
            return sse(self.stream_events(dict(recorded.fields)))
        if fmt == "verbose_json":
            return JSONResponse(self.verbose(recorded))
        if fmt == "text":
            return PlainTextResponse(SPOKEN + "\n")
        if fmt in ("srt", "vtt"):
            return PlainTextResponse("unexpected: Heimdall renders subtitles itself\n")
        if model.startswith("gpt-4o"):
            body: dict[str, Any] = {
                "text": SPOKEN,
                "usage": {"type": "tokens", "input_tokens": 71, "input_token_details": {"text_tokens": 0,
                          "audio_tokens": 71}, "output_tokens": 22, "total_tokens": 93},
            }  # fmt: skip
            if "logprobs" in recorded.all("include[]"):
                body["logprobs"] = [{"token": "The", "logprob": -0.01, "bytes": [84, 104, 101]}]
            return JSONResponse(body)
        return JSONResponse({"text": SPOKEN, "usage": {"type": "duration", "seconds": 8}})
