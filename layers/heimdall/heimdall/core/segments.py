"""Segments (subtitle cues) built from word timings, for providers that return words only.

Cues lie on word boundaries and cover each word once; a cue ends at a sentence end, at a pause,
or before it grows too long to read.
"""

from __future__ import annotations

from heimdall.core.types import Segment, Word

PAUSE_SECONDS = 0.8
MAX_CUE_SECONDS = 7.0
MAX_CUE_CHARS = 84
# Latin sentence ends, the ellipsis, and the CJK full stop, question and exclamation marks.
SENTENCE_END = (".", "?", "!", "\u2026", "\u3002", "\uff1f", "\uff01")


def segments_from_words(words: list[Word]) -> list[Segment]:
    segments: list[Segment] = []
    current: list[Word] = []

    def close() -> None:
        if current:
            text = " ".join(w.word for w in current)
            segments.append(Segment(id=len(segments), start=current[0].start, end=current[-1].end, text=text))
            current.clear()

    for word in words:
        if current:
            previous = current[-1]
            too_long = (
                word.end - current[0].start > MAX_CUE_SECONDS
                or sum(len(w.word) + 1 for w in current) + len(word.word) > MAX_CUE_CHARS
            )
            if previous.word.endswith(SENTENCE_END) or word.start - previous.end >= PAUSE_SECONDS or too_long:
                close()
        current.append(word)
    close()
    return segments
