#!/usr/bin/env bash
# `make build`: `sam build` for the Lambda runtime template.yaml names (RUNTIME, e.g. python3.12).
# The layer's .pyc files only count when the interpreter that compiled them is the runtime's (a
# python3.11 build leaves cpython-311 files that python3.12 ignores, and Lambda's code directory is
# read-only, so every cold start would compile again). So: in a container when a container runtime
# answers (SAM's build image for the runtime); else with that interpreter from PATH; else say what
# to install. Only shell builtins are used besides sam and docker.
set -euo pipefail
runtime="${1:?usage: build.sh RUNTIME [sam build options...]}"
shift

if ! command -v sam >/dev/null 2>&1; then
  echo "make build: the AWS SAM CLI is not installed: pip install aws-sam-cli (or your package manager's aws-sam-cli)" >&2
  exit 1
fi
if command -v docker >/dev/null 2>&1 && docker info >/dev/null 2>&1; then
  echo "make build: building in a container for $runtime (sam build --use-container)"
  exec sam build --use-container "$@"
fi
if "$runtime" -c 'import sys' >/dev/null 2>&1; then # runs, not merely on PATH (a pyenv shim may not)
  echo "make build: no container runtime answers; building with $(command -v "$runtime") for $runtime"
  export PYTHON="$runtime" # layers/heimdall/Makefile compiles the layer with it
  exec sam build "$@"
fi
echo "make build: cannot build for the $runtime runtime: no container runtime answers (docker info fails) and" >&2
echo "  there is no $runtime on PATH. Start Docker (SAM then builds in its $runtime image), or install" >&2
echo "  Python ${runtime#python} (e.g. pyenv install ${runtime#python}, apt-get install $runtime, uv python install ${runtime#python})" >&2
echo "  and put $runtime on PATH." >&2
exit 1
