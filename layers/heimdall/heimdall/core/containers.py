"""Which audio container a file is, from its first bytes: whatever its filename or content type says.

Pure byte inspection, so both the audio checks (heimdall.audio) and the providers that send raw audio
with a media type of their own (Deepgram) use the same answer.
"""

from __future__ import annotations

from heimdall.core.types import AudioInput

#: How many leading bytes ``sniff`` needs.
HEAD = 64

#: The media type each recognised container is sent upstream as.
MEDIA_TYPES: dict[str, str] = {
    "wav": "audio/wav", "flac": "audio/flac", "ogg": "audio/ogg", "mp3": "audio/mpeg", "mp4": "audio/mp4",
    "webm": "audio/webm", "aiff": "audio/aiff", "amr": "audio/amr", "caf": "audio/x-caf",
}  # fmt: skip


def sniff(head: bytes) -> str | None:
    """The container's name (a key of ``MEDIA_TYPES``), or None when the bytes are none of them."""
    if head[:4] == b"RIFF" and head[8:12] in (b"WAVE", b"RF64"):
        return "wav"
    if head[:4] in (b"RF64", b"BW64") and head[8:12] == b"WAVE":
        return "wav"
    if head[:4] == b"fLaC":
        return "flac"
    if head[:4] == b"OggS":
        return "ogg"
    if head[:3] == b"ID3" or (len(head) > 1 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0 and head[1] & 0x06):
        return "mp3"
    if head[4:8] == b"ftyp":
        return "mp4"
    if head[:4] == b"\x1a\x45\xdf\xa3":
        return "webm"
    if head[:4] == b"FORM" and head[8:12] in (b"AIFF", b"AIFC"):
        return "aiff"
    if head[:6] == b"#!AMR\n" or head[:9] == b"#!AMR-WB\n":
        return "amr"
    if head[:4] == b"caff":
        return "caf"
    return None


def sniffed_media_type(audio: AudioInput) -> str:
    """The media type of the container the bytes are; the client's own type when they are none
    Heimdall recognises (the audio checks refuse those before any provider call)."""
    head = audio.rewind().read(HEAD)
    audio.rewind()
    container = sniff(head)
    return MEDIA_TYPES[container] if container else audio.content_type
