"""Model and deployment names: the one shape a client's model text may have.

A name travels far: into upstream URLs (Azure's deployment path, Gemini's model path, Deepgram's
query), into the ``x-heimdall-model`` response header, into log lines and key patterns. So it is
held to the characters real model ids use (``whisper-1``, ``gpt-4o-mini-transcribe``,
``gemini-2.5-flash``, ``Systran/faster-whisper-large-v3``, ``nova-3:general``) and checked once,
before authorization and routing. Anything else is refused, never repaired: ``..`` parts, ``?``,
``#``, ``%``-escapes, whitespace, control and non-ASCII characters.
"""

from __future__ import annotations

import re

MAX_NAME_CHARS = 256
#: ASCII letters and digits, and - . _ ~ : @ + (URL-unreserved, plus the separators model ids use).
_PART = re.compile(r"[A-Za-z0-9._~:@+-]+")
RULE = (
    "a model name is ASCII letters, digits and - . _ ~ : @ + in parts joined by single '/', "
    f"with no '.' or '..' part, at most {MAX_NAME_CHARS} characters"
)


def name_problem(name: str) -> str | None:
    """What is wrong with ``name`` as a model, deployment or alias name (None when it is fine).

    The answer never quotes the name: it may be anything, and it ends up in messages and logs."""
    if not name:
        return "it is empty"
    if len(name) > MAX_NAME_CHARS:
        return f"it is longer than {MAX_NAME_CHARS} characters"
    for part in name.split("/"):
        if not part:
            return "it has an empty part"
        if not _PART.fullmatch(part):
            return "it has a character outside the allowed set"
        if part in (".", ".."):
            return "it has a '.' or '..' part"
    return None
