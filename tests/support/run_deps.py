"""Run a command as if only ``make run``'s install were present.

The test environment holds the dev extra too (boto3, moto, openai...), so a gateway started from it
could import a package that ``make run`` never installs. ``run_deps_only`` writes a ``sitecustomize``
that makes every top-level module outside the closure of ``heimdall[local,serve]`` unimportable, and
returns the ``PYTHONPATH`` that loads it.
"""

from __future__ import annotations

import importlib.metadata as metadata
import json
import os
import re
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name


def run_extras() -> tuple[str, ...]:
    """The extras the Makefile's run target installs (its first ``pip install -e '.[...]'``)."""
    makefile = (Path(__file__).resolve().parents[2] / "Makefile").read_text()
    match = re.search(r"\$\(VENV\)/\.run-deps:.*?pip install [^\n]*-e '\.\[([a-z,-]+)\]'", makefile, re.DOTALL)
    assert match is not None, "the Makefile's run-deps rule no longer installs -e '.[extras]'"
    return tuple(match.group(1).split(","))


_BLOCKER = """
import sys

_BLOCKED = frozenset({blocked})


class _NotInstalledByMakeRun:
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in _BLOCKED:
            raise ModuleNotFoundError(f"No module named {{name!r}} (not installed by make run)", name=name)
        return None


sys.meta_path.insert(0, _NotInstalledByMakeRun())
"""


def run_closure(root: str = "heimdall") -> set[str]:
    """Canonical names of every distribution ``pip install root[run extras]`` brings in."""
    seen: set[str] = set()
    pending: list[tuple[str, tuple[str, ...]]] = [(root, run_extras())]
    while pending:
        name, wanted = pending.pop()
        seen.add(canonicalize_name(name))
        try:
            requirements = metadata.requires(name) or []
        except metadata.PackageNotFoundError:
            continue  # not installed here, so nothing of it can be imported anyway
        for text in requirements:
            requirement = Requirement(text)
            environments = [{"extra": extra} for extra in wanted] or [{"extra": ""}]
            if requirement.marker and not any(requirement.marker.evaluate(env) for env in environments):
                continue
            if canonicalize_name(requirement.name) not in seen:
                pending.append((requirement.name, tuple(requirement.extras)))
    return seen


def run_deps_only(directory: Path) -> str:
    """A ``PYTHONPATH`` entry under which only ``make run``'s packages (and the standard library) import."""
    closure = run_closure()
    blocked = sorted(
        module
        for module, distributions in metadata.packages_distributions().items()
        if not any(canonicalize_name(d) in closure for d in distributions)
    )
    (directory / "sitecustomize.py").write_text(_BLOCKER.format(blocked=json.dumps(blocked)))
    return os.pathsep.join(filter(None, [str(directory), os.environ.get("PYTHONPATH")]))
