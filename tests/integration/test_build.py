"""`make build` builds for the runtime template.yaml names: the layer's bytecode is that Python's
(cpython-312 for python3.12), a wrong interpreter is refused, and the build runs in a container when
one answers, else with the runtime's Python from PATH, else says what to install."""

from __future__ import annotations

import glob
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
LAYER = REPO / "layers" / "heimdall"


def layer_runtime_version() -> str:
    match = re.search(r"^RUNTIME_VERSION := (3\.\d+)$", (LAYER / "Makefile").read_text(), re.MULTILINE)
    assert match is not None
    return match.group(1)


VERSION = layer_runtime_version()


def interpreter_for(version: str) -> str | None:
    """A Python ``version`` that runs: from PATH, else one pyenv has installed."""
    home = Path.home()
    candidates = [
        shutil.which(f"python{version}"),
        *sorted(glob.glob(f"{home}/.pyenv/versions/{version}.*/bin/python{version}")),
    ]
    for candidate in filter(None, candidates):
        probe = subprocess.run([candidate, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
                               capture_output=True, text=True, timeout=30)  # fmt: skip
        if probe.returncode == 0 and probe.stdout.strip() == version:
            return candidate
    return None


def build_layer(artifacts: Path, python: str, requirements: Path) -> subprocess.CompletedProcess[str]:
    """The layer's build exactly as `sam build` runs it (its makefile builder), with the given requirements."""
    return subprocess.run(
        ["make", "--no-print-directory", "-C", str(LAYER), "build-HeimdallLayer", f"ARTIFACTS_DIR={artifacts}",
         f"PYTHON={python}", f"REQUIREMENTS={requirements}"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip


def test_the_template_the_layer_build_and_make_build_name_one_runtime() -> None:
    template = (REPO / "template.yaml").read_text()
    runtimes = set(re.findall(r"^\s*Runtime: (\S+)", template, re.MULTILINE))
    runtimes |= set(re.findall(r"CompatibleRuntimes: \[(\S+)\]", template))
    assert runtimes == {f"python{VERSION}"}
    planned = subprocess.run(["make", "-n", "build"], cwd=REPO, capture_output=True, text=True, timeout=30).stdout
    assert f"scripts/build.sh python{VERSION}" in planned


def test_the_layers_bytecode_is_the_runtimes(tmp_path: Path) -> None:
    python = interpreter_for(VERSION)
    if python is None:
        pytest.skip(f"no Python {VERSION} on this machine to build the layer with")
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("")  # the dependencies' wheels come from PyPI; the package itself is what is compiled here
    result = build_layer(tmp_path / "artifacts", python, requirements)
    assert result.returncode == 0, result.stderr
    package = tmp_path / "artifacts" / "python" / "heimdall"
    ask = "import importlib.util, sys; sys.stdout.write(importlib.util.MAGIC_NUMBER.hex())"
    magic = subprocess.run([python, "-c", ask], capture_output=True, text=True, timeout=30).stdout
    tag = f"cpython-{VERSION.replace('.', '')}"
    sources = sorted(package.rglob("*.py"))
    assert len(sources) > 20
    for source in sources:
        compiled = source.parent / "__pycache__" / f"{source.stem}.{tag}.pyc"
        header = compiled.read_bytes()[:8]
        assert header[:4].hex() == magic, compiled
        assert int.from_bytes(header[4:8], "little") == 0b01  # hash-based, unchecked: the code directory is read-only
    assert {p.name.split(".")[1] for p in package.rglob("*.pyc")} == {tag}


@pytest.mark.skipif(sys.version_info[:2] == tuple(map(int, VERSION.split("."))), reason="this Python is the runtime's")
def test_another_python_is_refused_with_what_to_do(tmp_path: Path) -> None:
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("")
    result = build_layer(tmp_path / "artifacts", sys.executable, requirements)
    assert result.returncode != 0
    assert f"is not Python {VERSION}" in result.stderr
    assert "make build" in result.stderr
    assert not (tmp_path / "artifacts").exists()


FAKE_SAM = '#!/bin/bash\necho "$*|${PYTHON:-}" > "$SAM_LOG"\n'


@pytest.mark.parametrize(
    ("docker", "python", "sam_called_with"),
    [
        (0, True, "build --use-container|"),
        (1, True, f"build|python{VERSION}"),
        (None, True, f"build|python{VERSION}"),
        (1, False, None),
    ],
    ids=["container-answers", "daemon-down-python-on-path", "no-docker-python-on-path", "neither"],
)
def test_make_build_uses_a_container_else_the_runtimes_python_else_says_what_to_install(
    tmp_path: Path, docker: int | None, python: bool, sam_called_with: str | None
) -> None:
    """The choice, with stand-ins for sam, docker and the interpreter on an otherwise empty PATH."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    tools = {"sam": FAKE_SAM}
    if docker is not None:
        tools["docker"] = f"#!/bin/bash\nexit {docker}\n"
    if python:
        tools[f"python{VERSION}"] = "#!/bin/bash\nexit 0\n"
    for name, script in tools.items():
        (bin_dir / name).write_text(script)
        (bin_dir / name).chmod(0o755)
    log = tmp_path / "sam.log"
    result = subprocess.run(
        ["/bin/bash", str(REPO / "scripts" / "build.sh"), f"python{VERSION}"],
        env={"PATH": str(bin_dir), "SAM_LOG": str(log)}, capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    if sam_called_with is None:
        assert result.returncode == 1
        assert not log.exists()
        assert f"no python{VERSION} on PATH" in result.stderr
        assert "Start Docker" in result.stderr
    else:
        assert result.returncode == 0, result.stderr
        assert log.read_text().strip() == sam_called_with


def test_make_build_without_sam_says_how_to_get_it(tmp_path: Path) -> None:
    result = subprocess.run(["/bin/bash", str(REPO / "scripts" / "build.sh"), f"python{VERSION}"],
                            env={"PATH": str(tmp_path)}, capture_output=True, text=True, timeout=30)  # fmt: skip
    assert result.returncode == 1
    assert "pip install aws-sam-cli" in result.stderr
