"""Helpers shared by the deployment tests: what the project really offers (CLI commands,
settings, routes) and small parsers for what docker/ and helm/ say about it."""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import click

ROOT = Path(__file__).resolve().parents[2]
DOCKER = ROOT / "docker"
CHART = ROOT / "helm" / "matting"
GPU_VALUES = CHART / "ci" / "gpu-keda-values.yaml"
HERE = Path(__file__).resolve().parent
SCHEMAS = HERE / "schemas"

# Environment variables in the images and pods that are not settings, and why they exist.
NON_SETTING_ENV = {
    "PATH",  # the virtualenv first
    "PYTHONUNBUFFERED",  # logs reach `docker logs` / `kubectl logs` at once
    "PYTHONDONTWRITEBYTECODE",  # the root filesystem is read-only in pods
    "PIP_NO_CACHE_DIR",  # build stage only
    "PIP_DISABLE_PIP_VERSION_CHECK",  # build stage only
    "DEBIAN_FRONTEND",  # apt-get in the build
    "NVIDIA_DRIVER_CAPABILITIES",  # what the NVIDIA runtime mounts into the container
    "REDIS_PASSWORD",  # from a secretKeyRef; expanded into MATTING_REDIS_URL by the kubelet
}


# --- the project ----------------------------------------------------------------------------
@cache
def setting_env_names() -> frozenset[str]:
    """MATTING_<FIELD> for every field of service.settings.Settings, read at test time."""
    from service.settings import Settings

    prefix = Settings.model_config.get("env_prefix", "")
    return frozenset(f"{prefix}{name}".upper() for name in Settings.model_fields)


def check_env_name(name: str) -> None:
    """A MATTING_* name must be a real setting; any other name must be a known non-setting."""
    if name.startswith("MATTING_"):
        assert name in setting_env_names(), (
            f"{name} is not a field of service.settings.Settings "
            f"(known: {', '.join(sorted(setting_env_names()))})"
        )
    else:
        assert name in NON_SETTING_ENV, f"{name} is neither a MATTING_ setting nor a known variable"


def check_cli(argv: list[str]) -> click.Command:
    """Parse argv (["matting", "export", "onnx", "--out", "x"]) with the real click command
    tree of matting.cli, as the shell would hand it over; fail on an unknown command or option
    or a bad value. Returns the leaf command."""
    from matting.cli import cli

    assert argv and argv[0] == "matting", f"{argv}: not a `matting` command"
    cmd: click.Command = cli
    path = ["matting"]
    args = list(argv[1:])
    while isinstance(cmd, click.Group):
        assert args, f"{' '.join(path)} needs a subcommand: one of {sorted(cmd.commands)}"
        name = args.pop(0)
        sub = cmd.commands.get(name)
        assert sub is not None, (
            f"`{' '.join([*path, name])}` is not a command: {' '.join(path)} has "
            f"{', '.join(sorted(cmd.commands))}"
        )
        cmd, path = sub, [*path, name]
    try:
        cmd.make_context(" ".join(path), args)
    except click.ClickException as e:
        raise AssertionError(f"`{shlex.join(argv)}`: {e.format_message()}") from None
    return cmd


def matting_commands_in_shell(script: str) -> list[list[str]]:
    """The `matting ...` commands of a small sh script (split on ;, &&, || and newlines)."""
    out = []
    for part in re.split(r"&&|\|\||;|\n", script):
        words = shlex.split(part)
        if words and words[0] == "matting":
            out.append(words)
    return out


def container_commands(argv: list[str]) -> list[list[str]]:
    """The matting commands a container runs: its argv itself, or those inside `sh -c`."""
    if argv[:2] == ["sh", "-c"]:
        return matting_commands_in_shell(" ".join(argv[2:]))
    return [argv]


@cache
def health_routes() -> frozenset[str]:
    """Paths of the service's health and metrics router (no app, no model needed)."""
    from service.routes import health

    return frozenset(r.path for r in health.router.routes)  # type: ignore[attr-defined]


# --- Dockerfiles ----------------------------------------------------------------------------
@dataclass
class Instruction:
    op: str  # upper case: FROM, RUN, COPY, ...
    value: str  # the rest of the line, continuation lines joined
    stage: int  # index of the FROM stage it belongs to

    @property
    def exec_form(self) -> list[str] | None:
        """The JSON array of CMD/ENTRYPOINT/RUN exec form (after HEALTHCHECK options too)."""
        text = self.value
        if self.op == "HEALTHCHECK":
            text = text[text.index("CMD") + 3 :] if "CMD" in text else ""
        text = text.strip()
        if text.startswith("["):
            return [str(x) for x in json.loads(text)]
        return None

    def flags(self) -> dict[str, str]:
        """--name=value options before the arguments (COPY --from=..., HEALTHCHECK --interval)."""
        return dict(re.findall(r"--([a-z-]+)=(\S+)", self.value.split(" CMD ")[0]))

    def env(self) -> dict[str, str]:
        """ENV KEY=VALUE pairs (and the legacy `ENV KEY VALUE` form)."""
        words = shlex.split(self.value)
        if words and "=" not in words[0]:
            return {words[0]: " ".join(words[1:])}
        return dict(w.split("=", 1) for w in words)


@dataclass
class Dockerfile:
    path: Path
    instructions: list[Instruction] = field(default_factory=list)

    @property
    def final_stage(self) -> int:
        return max(i.stage for i in self.instructions)

    def all(self, op: str, stage: int | None = None) -> list[Instruction]:
        return [i for i in self.instructions if i.op == op and (stage is None or i.stage == stage)]

    def last(self, op: str) -> Instruction | None:
        found = self.all(op, self.final_stage)
        return found[-1] if found else None


def parse_dockerfile(path: Path) -> Dockerfile:
    """Instructions with continuation lines joined and comments dropped; enough for checking
    what the project's Dockerfiles say (no heredocs, no parser directives besides `# syntax`)."""
    df = Dockerfile(path)
    stage = -1
    pending = ""
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if pending and line.startswith("#"):  # a comment inside a continued instruction
            continue
        if line.endswith("\\"):
            pending += line[:-1].strip() + " "
            continue
        line = (pending + line).strip()
        pending = ""
        op, _, rest = line.partition(" ")
        op = op.upper()
        if op == "FROM":
            stage += 1
        df.instructions.append(Instruction(op, rest.strip(), max(stage, 0)))
    assert not pending, f"{path}: the last instruction ends with a continuation"
    return df


def dockerfiles() -> dict[str, Dockerfile]:
    """{"cpu": ..., "gpu": ...}: docker/Dockerfile.<flavor> (not their .dockerignore files)."""
    paths = [p for p in sorted(DOCKER.glob("Dockerfile.*")) if p.suffix != ".dockerignore"]
    return {p.name.split(".", 1)[1]: parse_dockerfile(p) for p in paths}


# --- the chart ------------------------------------------------------------------------------
def load_yaml(path: Path) -> Any:
    import yaml

    return yaml.safe_load(path.read_text())


def render(values: dict[str, Any] | None = None, chart: Path = CHART) -> dict[str, str]:
    """helm template with the Helm SDK: {template path: rendered text}."""
    import helm_python as helm

    helm.disable_logging()
    with helm.Chart.load(chart) as ch:
        return ch.render(values, name="matting", namespace="matting")


def manifests(rendered: dict[str, str]) -> list[dict[str, Any]]:
    """Every Kubernetes object of a render (NOTES.txt and empty documents left out)."""
    import yaml

    docs = []
    for name, text in sorted(rendered.items()):
        if name.endswith("NOTES.txt"):
            continue
        docs += [d for d in yaml.safe_load_all(text) if d]
    return docs


def by_kind(docs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [d for d in docs if d["kind"] == kind]


def one(docs: list[dict[str, Any]], kind: str, name_suffix: str = "") -> dict[str, Any]:
    found = [d for d in by_kind(docs, kind) if d["metadata"]["name"].endswith(name_suffix)]
    assert len(found) == 1, f"expected one {kind} named *{name_suffix}, got {len(found)}"
    return found[0]


def pod_spec(doc: dict[str, Any]) -> dict[str, Any]:
    return doc["spec"]["template"]["spec"]


def project_containers(docs: list[dict[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
    """(workload name, container) for every container of the api and worker workloads (the
    project's image; the in-chart Redis is not one of them)."""
    out = []
    for d in docs:
        component = d["metadata"]["labels"].get("app.kubernetes.io/component")
        if d["kind"] != "Deployment" or component not in ("api", "worker"):
            continue
        spec = pod_spec(d)
        for c in spec.get("initContainers", []) + spec["containers"]:
            out.append((d["metadata"]["name"], c))
    return out
