"""The local engine's models: what each declares it can serve, and how the split weights are joined."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from heimdall.config import GatewayConfig
from heimdall.core.errors import HeimdallError, InvalidRequest
from heimdall.core.types import AudioInput, TranscriptionRequest
from heimdall.providers import local_models
from heimdall.providers.local import LocalProvider
from heimdall.providers.local_models import MODELS, WeightsMissing
from heimdall.routing import Router
from tests.support.speech import FILES


def _route(model: str, language: str | None) -> tuple[LocalProvider, HeimdallError | None]:
    provider = LocalProvider(max_audio_seconds=4 * 3600)
    router = Router(GatewayConfig(), {"local": provider})
    request = TranscriptionRequest(model=model, language=language)
    with FILES["hello"].open("rb") as file:
        audio = AudioInput(file, "hello.wav", "audio/wav", FILES["hello"].stat().st_size)
        try:
            router.transcribe(request, audio)
        except HeimdallError as exc:
            return provider, exc
    return provider, None


def test_english_only_model_refuses_another_language_before_loading_anything() -> None:
    provider, error = _route("local/tiny.en", "de")
    assert isinstance(error, InvalidRequest)
    assert error.param == "language"
    assert not provider.loaded  # refused from the declaration, no model loaded, nothing decoded


def test_models_declare_languages_word_timestamps_and_speed() -> None:
    assert MODELS["tiny.en"].languages == frozenset({"en"})
    assert MODELS["base"].languages is None  # any of Whisper's languages, detected when not named
    assert all(m.word_timestamps for m in MODELS.values())
    assert MODELS["tiny.en"].realtime_factor < MODELS["base"].realtime_factor
    caps = LocalProvider(max_audio_seconds=4 * 3600).capabilities("base")
    assert caps.languages is None
    assert caps.word_timestamps


def test_split_weights_are_joined_whole_and_readable_by_anyone(tmp_path: Path) -> None:
    model = MODELS["base"].weights(tmp_path)
    parts = [local_models._recorded_file(d, s)[0] for d, s in zip(local_models.BASE_PARTS, ("part1", "part2"))]
    joined = model / "model.bin"
    assert joined.stat().st_size == sum(p.stat().st_size for p in parts)
    assert joined.stat().st_mode & stat.S_IROTH
    assert {p.name for p in model.iterdir()} == {"model.bin", *local_models.BASE_FILES}
    assert MODELS["base"].weights(tmp_path) == model  # joined once


def test_a_damaged_part_is_refused_and_leaves_no_model(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    damaged = tmp_path / "model.bin.part2"
    damaged.write_bytes(b"not the weights")
    real = local_models._recorded_file

    def recorded(distribution: str, suffix: str) -> tuple[Path, str]:
        path, digest = real(distribution, suffix)
        return (damaged, digest) if suffix.endswith("part2") else (path, digest)

    monkeypatch.setattr(local_models, "_recorded_file", recorded)
    with pytest.raises(WeightsMissing):
        MODELS["base"].weights(tmp_path / "models")
    assert not list((tmp_path / "models").rglob("model.bin"))


def test_an_unwritable_model_directory_is_a_503_naming_the_setting(tmp_path: Path) -> None:
    from heimdall.core.errors import EngineUnavailable
    from heimdall.providers.local import LocalEngineOptions

    blocked = tmp_path / "file"
    blocked.write_text("a file where the model directory should be")
    provider = LocalProvider(LocalEngineOptions(model_dir=str(blocked / "models")), max_audio_seconds=3600)
    with pytest.raises(EngineUnavailable) as caught:
        provider._whisper(MODELS["base"])
    assert caught.value.status_code == 503
    assert "model_dir" in caught.value.message
