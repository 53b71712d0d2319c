"""Generated model names — made of the characters that matter in URLs, headers and paths — sent as
the ``model`` field and as the deployment id in the path, to a gateway with every provider's fake:
no 5xx, every response header printable ASCII, a name refused exactly when it breaks the rule, and
no fake ever sees a path other than its own (the name as one percent-encoded segment at most).

`make test` runs a short seeded pass; `make fuzz` a long random one (HEIMDALL_FUZZ_EXAMPLES).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from urllib.parse import parse_qsl, quote, unquote

import httpx
import pytest
from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st

from heimdall.api.app import create_app
from heimdall.core.names import name_problem
from tests.support.servers import serve
from tests.support.speech import FILES
from tests.support.upstreams import Upstreams

EXAMPLES = int(os.environ.get("HEIMDALL_FUZZ_EXAMPLES", "25")) * 2
SEED = os.environ.get("HEIMDALL_FUZZ_SEED", "20261124")
AUDIO = FILES["hello"].read_bytes()
PROVIDERS = ["openai", "azure", "groq", "mistral", "elevenlabs", "deepgram", "gemini", "openai-compatible", "opnai"]
_SEGMENT = r"[A-Za-z0-9._~%-]+"  # what quote(name, safe="") can produce: one segment, nothing reserved
OWN_PATH = {
    "openai": "/v1/audio/transcriptions",
    "azure": rf"/openai/deployments/{_SEGMENT}/audio/transcriptions",
    "groq": "/openai/v1/audio/transcriptions",
    "mistral": "/v1/audio/transcriptions",
    "elevenlabs": "/v1/speech-to-text",
    "deepgram": "/v1/listen",
    "gemini": rf"/v1beta/models/{_SEGMENT}:generateContent",
    "compatible": "/v1/audio/transcriptions",
}
OWN_QUERY = {"azure": {"api-version"}, "deepgram": {"model", "smart_format", "punctuate", "utterances",
                                                   "language", "detect_language"}}  # fmt: skip
#: The characters that change URLs, headers and paths, and the ones model ids are made of.
PIECES = st.sampled_from(
    ["/", ".", "..", "?", "#", "%", "%2F", "%2e", "&", "=", ";", ":", "@", "+", "~", "\\", " ", "\t", "\r\n",
     "\n", "\x00", "\x7f", "\u00e9", "\u2603", "\u202e", "whisper", "-1", "_", "v3", "x" * 60]
)  # fmt: skip
NAMES = st.builds(
    lambda provider, pieces: (f"{provider}/" if provider else "") + "".join(pieces),
    st.sampled_from([*PROVIDERS, None]),
    st.lists(PIECES, min_size=1, max_size=8),
)


@pytest.fixture(scope="module")
def gateway(upstreams: Upstreams) -> Iterator[str]:
    with serve(create_app(upstreams.config())) as url:
        yield url


def _fuzz_settings(test: object) -> object:
    configured = settings(max_examples=EXAMPLES, deadline=None, database=None, suppress_health_check=list(HealthCheck))(
        test
    )
    return configured if SEED == "random" else seed(int(SEED))(configured)


@pytest.mark.parametrize("where", ["field", "path"])
def test_generated_names_never_reshape_a_request_or_a_header(gateway: str, fakes: Upstreams, where: str) -> None:
    tried: list[str] = []

    @_fuzz_settings  # type: ignore[misc]
    @given(name=NAMES)
    def one(name: str) -> None:
        fakes.reset()
        if where == "path" and name in (".", ".."):
            return  # the client's URL library resolves these before sending; no request is made with them
        tried.append(name)
        if where == "field":
            response = httpx.post(
                f"{gateway}/v1/audio/transcriptions",
                files={"file": ("a.wav", AUDIO, "audio/wav")},
                data={"model": name},
                timeout=30,
            )
        else:
            response = httpx.post(
                f"{gateway}/openai/openai/deployments/{quote(name, safe='')}/audio/transcriptions",
                files={"file": ("a.wav", AUDIO, "audio/wav")},
                timeout=30,
            )
        assert response.status_code in (200, 400, 404), (name, response.text[:300])
        for header, value in response.headers.items():
            assert value.isascii() and value.isprintable(), (name, header, value)
        refused = response.status_code == 400 and response.json()["error"]["code"] == "invalid_model"
        sent_name = name.strip() if where == "field" else name  # form fields are stripped, as OpenAI does
        if sent_name:  # (an empty field is a missing model)
            assert refused == (name_problem(sent_name) is not None), (name, response.text[:300])
        for fake_name, fake in fakes.fakes.items():
            for sent in fake.requests:
                assert re.fullmatch(OWN_PATH[fake_name], sent.raw_path), (name, sent.raw_path)
                if fake_name == "azure":  # a dot segment would be resolved by the URL, not sent
                    assert unquote(sent.raw_path.split("/")[3]) not in (".", "..")
                keys = {key for key, _ in parse_qsl(sent.raw_query, keep_blank_values=True)}
                assert keys <= OWN_QUERY.get(fake_name, set()), (name, sent.raw_query)

    one()
    assert len(tried) >= min(EXAMPLES, 20)
