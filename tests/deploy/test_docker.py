"""docker/: the Dockerfiles and compose files, parsed (no docker engine needed) and checked
against what the project really has: CLI commands, settings, health routes, the torch pin, the
package data a non-editable install carries."""

from __future__ import annotations

import fnmatch
import re
import shlex
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.deploy.deploy import (
    DOCKER,
    ROOT,
    check_cli,
    check_env_name,
    dockerfiles,
    health_routes,
    load_yaml,
    parse_dockerfile,
)

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    tomllib = pytest.importorskip("tomli")

IMAGES = sorted(dockerfiles())  # "cpu", "gpu"
# What an image may be built from: the package sources and metadata, and the healthcheck.
ALLOWED_SOURCES = {"pyproject.toml", "README.md", "matting", "service", "export", "training"}
COMPOSE = DOCKER / "compose.yaml"
COMPOSE_GPU = DOCKER / "compose.gpu.yaml"


def pyproject() -> dict[str, Any]:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def torch_pin() -> str:
    (pin,) = [d for d in pyproject()["project"]["dependencies"] if d.startswith("torch")]
    return pin.replace(" ", "")


# --- Dockerfiles ----------------------------------------------------------------------------
def test_both_images_exist() -> None:
    assert IMAGES == ["cpu", "gpu"]


@pytest.mark.parametrize("image", IMAGES)
def test_image_runs_as_a_numeric_non_root_user(image: str) -> None:
    df = dockerfiles()[image]
    user = df.last("USER")
    assert user is not None, "the final stage has no USER"
    uid = user.value.split(":")[0]
    # Numeric, so that Kubernetes' runAsNonRoot can verify it; and the chart's runAsUser.
    assert uid.isdigit() and int(uid) != 0, user.value
    values = load_yaml(ROOT / "helm" / "matting" / "values.yaml")
    assert values["podSecurityContext"]["runAsUser"] == int(uid)


@pytest.mark.parametrize("image", IMAGES)
def test_healthcheck_hits_livez(image: str) -> None:
    df = dockerfiles()[image]
    check = df.last("HEALTHCHECK")
    assert check is not None
    argv = check.exec_form
    assert argv and argv[:2] == ["python", "/opt/matting/healthcheck.py"]
    assert argv[2] == "/livez" and "/livez" in health_routes()
    # The script it runs is the one copied into the image.
    copies = [c.value for c in df.all("COPY", df.final_stage)]
    assert "docker/healthcheck.py /opt/matting/healthcheck.py" in copies
    assert float(check.flags()["start-period"].rstrip("s")) >= 60  # first model export


@pytest.mark.parametrize("image", IMAGES)
def test_default_command_is_a_real_cli_command(image: str) -> None:
    df = dockerfiles()[image]
    entry, cmd = df.last("ENTRYPOINT"), df.last("CMD")
    assert cmd is not None and cmd.exec_form, "CMD must be exec form (PID 1 gets SIGTERM)"
    argv = ((entry.exec_form or []) if entry else []) + cmd.exec_form
    assert argv == ["matting", "serve"]
    check_cli(argv)


@pytest.mark.parametrize("image", IMAGES)
def test_image_copies_only_sources_never_secrets_or_engines(image: str) -> None:
    df = dockerfiles()[image]
    for copy in df.all("COPY") + df.all("ADD"):
        assert copy.op == "COPY", "ADD can fetch URLs and unpack archives: use COPY"
        words = [w for w in shlex.split(copy.value) if not w.startswith("--")]
        sources = words[:-1]
        if "--from=" in copy.value:
            assert sources == ["/opt/venv"], copy.value  # the build stage's virtualenv only
            continue
        for src in sources:
            top = src.rstrip("/").split("/")[0]
            assert top in ALLOWED_SOURCES or src == "docker/healthcheck.py", src
    ignore = (DOCKER / f"Dockerfile.{image}.dockerignore").read_text().splitlines()
    # Whatever a developer has lying in the copied folders stays out.
    for pattern in ("**/*.engine", "**/*.plan", "**/*.onnx", "**/.env", "**/*.key", "**/secrets"):
        assert pattern in ignore, f"{pattern} missing from Dockerfile.{image}.dockerignore"


@pytest.mark.parametrize("image", IMAGES)
def test_image_installs_the_project_with_the_serve_extra(image: str) -> None:
    df = dockerfiles()[image]
    # The build stage installs the copied project (its own pyproject.toml) into /opt/venv ...
    copies = [c.value for c in df.all("COPY", 0)]
    assert "pyproject.toml README.md ./" in copies
    runs = [r.value for r in df.all("RUN", 0)]
    assert any(re.search(r'pip install "\.\[serve\]"', r) for r in runs), runs
    # ... and the final stage takes that virtualenv, not the sources.
    final = [c.value for c in df.all("COPY", df.final_stage)]
    assert "--from=build /opt/venv /opt/venv" in final
    assert all("pip install" not in r.value for r in df.all("RUN", df.final_stage))


@pytest.mark.parametrize("image", IMAGES)
def test_torch_is_installed_first_with_the_project_pin(image: str) -> None:
    df = dockerfiles()[image]
    runs = [r.value for r in df.all("RUN")]
    (torch,) = [r for r in runs if "torch" in r]
    assert torch_pin() in torch.replace('"', ""), f"the pyproject pin is {torch_pin()}"
    # torch first, so the project install finds it satisfied and fetches no other build.
    serve = next(i for i, r in enumerate(runs) if ".[serve]" in r)
    assert runs.index(torch) < serve
    if image == "cpu":  # no CUDA wheel in the CPU image
        assert "--index-url https://download.pytorch.org/whl/cpu" in torch


def test_gpu_image_is_cuda_runtime_with_tensorrt() -> None:
    df = dockerfiles()["gpu"]
    args = dict(a.value.split("=", 1) for a in df.all("ARG") if "=" in a.value)
    base = args["BASE_IMAGE"]
    assert base.startswith(("nvidia/cuda:", "nvcr.io/nvidia/")) and "runtime" in base
    assert all(f.value.split()[0] == "${BASE_IMAGE}" for f in df.all("FROM"))
    assert args["TENSORRT_PIP"].strip('"').startswith("tensorrt-cu12==")
    assert "cuda:12." in base  # the same CUDA major as the TensorRT wheels
    (trt,) = [r.value for r in df.all("RUN") if "${TENSORRT_PIP}" in r.value]
    assert '--extra-index-url "${NVIDIA_INDEX_URL}"' in trt
    assert args["NVIDIA_INDEX_URL"] == "https://pypi.nvidia.com"


@pytest.mark.parametrize("image", IMAGES)
def test_image_environment_is_real_settings(image: str) -> None:
    df = dockerfiles()[image]
    env: dict[str, str] = {}
    for e in df.all("ENV"):
        env.update(e.env())
    for name in env:
        check_env_name(name)
    final = {k: v for e in df.all("ENV", df.final_stage) for k, v in e.env().items()}
    assert final["MATTING_HOST"] == "0.0.0.0"  # reachable from outside the container
    assert final["MATTING_WORKERS"] == "0"  # workers are separate containers


def test_the_dockerfile_parser_sees_continuations_and_exec_forms(tmp_path: Path) -> None:
    path = tmp_path / "Dockerfile"
    path.write_text(
        "FROM a AS b\nENV X=1 \\\n    # note\n    Y=2\nFROM c\n"
        'HEALTHCHECK --interval=5s CMD ["python", "h.py", "/livez"]\nCMD ["matting", "nope"]\n'
    )
    df = parse_dockerfile(path)
    assert df.all("ENV")[0].env() == {"X": "1", "Y": "2"}
    assert df.last("HEALTHCHECK").exec_form == ["python", "h.py", "/livez"]  # type: ignore[union-attr]
    with pytest.raises(AssertionError, match="not a command"):
        check_cli(df.last("CMD").exec_form)  # type: ignore[union-attr, arg-type]


def test_package_data_covers_the_files_an_image_needs() -> None:
    """The images install the project non-editable: a non-Python file inside a package reaches
    them only when [tool.setuptools.package-data] names it."""
    package_data = pyproject()["tool"]["setuptools"].get("package-data", {})
    missing = []
    for package in ("matting", "service", "export"):
        for path in sorted((ROOT / package).rglob("*")):
            if path.is_dir() or path.suffix in (".py", ".pyc") or "__pycache__" in path.parts:
                continue
            rel = path.relative_to(ROOT / package).as_posix()
            owner = package
            patterns = package_data.get(owner, []) + package_data.get("*", [])
            if not any(fnmatch.fnmatch(rel, p) for p in patterns):
                missing.append(f"{package}/{rel}")
    assert not missing, f"not in [tool.setuptools.package-data], so not in the images: {missing}"


# --- compose --------------------------------------------------------------------------------
def compose() -> dict[str, Any]:
    return load_yaml(COMPOSE)


def test_compose_has_redis_api_worker_and_prometheus() -> None:
    services = compose()["services"]
    assert set(services) == {"redis", "api", "worker", "prometheus"}
    redis = services["redis"]
    # Persistent: the append-only file on a named volume.
    assert "--appendonly" in redis["command"] and "yes" in redis["command"]
    assert any(v.endswith(":/data") for v in redis["volumes"])
    assert set(compose()["volumes"]) >= {v.split(":")[0] for v in redis["volumes"]}
    for name in ("api", "worker"):
        build = services[name]["build"]
        assert (COMPOSE.parent / build["context"] / build["dockerfile"]).resolve().is_file()
        assert services[name]["depends_on"]["redis"]["condition"] == "service_healthy"


def test_compose_commands_are_real_cli_commands() -> None:
    services = compose()["services"]
    assert services["api"]["command"] == ["matting", "serve"]
    assert services["worker"]["command"] == ["matting", "worker"]
    for name in ("api", "worker"):
        check_cli(services[name]["command"])


@pytest.mark.parametrize("path", [COMPOSE, COMPOSE_GPU], ids=lambda p: p.name)
def test_compose_environment_is_real_settings(path: Path) -> None:
    for service in load_yaml(path)["services"].values():
        for name in service.get("environment", {}):
            check_env_name(name)


def test_compose_healthchecks_hit_real_routes() -> None:
    services = compose()["services"]
    api = services["api"]["healthcheck"]["test"]
    assert api[:3] == ["CMD", "python", "/opt/matting/healthcheck.py"]
    assert api[3] in health_routes()
    worker = services["worker"]["healthcheck"]["test"]
    env = services["worker"]["environment"]
    assert worker[3:] == ["/metrics", env["MATTING_WORKER_METRICS_PORT"]]


def test_compose_workers_are_separate_and_share_storage() -> None:
    services = compose()["services"]
    api, worker = services["api"], services["worker"]
    assert api["environment"]["MATTING_WORKERS"] == "0"
    for s in (api, worker):
        assert s["environment"]["MATTING_REDIS_URL"].startswith("redis://redis:6379")
        storage = s["environment"]["MATTING_STORAGE_DIR"]
        assert any(v.split(":")[1] == storage for v in s["volumes"]), storage
    # A scale-down lets the worker finish its chunk.
    assert worker["stop_grace_period"] in ("10m", "600s")


def test_compose_publishes_only_on_loopback() -> None:
    # Without API keys the API is open: never publish it on every interface by default.
    for name, service in compose()["services"].items():
        for port in service.get("ports", []):
            assert str(port).startswith("127.0.0.1:"), f"{name}: {port}"


def test_prometheus_scrapes_api_and_workers() -> None:
    services = compose()["services"]
    mount = next(v for v in services["prometheus"]["volumes"] if "prometheus.yml" in v)
    config = load_yaml(COMPOSE.parent / mount.split(":")[0])
    jobs = {
        c["dns_sd_configs"][0]["names"][0]: (c["dns_sd_configs"][0]["port"], c["metrics_path"])
        for c in config["scrape_configs"]
    }
    api_port = int(services["api"]["environment"]["MATTING_PORT"])
    worker_port = int(services["worker"]["environment"]["MATTING_WORKER_METRICS_PORT"])
    assert jobs == {"api": (api_port, "/metrics"), "worker": (worker_port, "/metrics")}
    assert "/metrics" in health_routes()


def test_compose_gpu_override_uses_the_gpu_image() -> None:
    services = load_yaml(COMPOSE_GPU)["services"]
    assert set(services) <= set(compose()["services"])
    for service in services.values():
        assert service["build"]["dockerfile"] == "docker/Dockerfile.gpu"
        (device,) = service["deploy"]["resources"]["reservations"]["devices"]
        assert device["driver"] == "nvidia" and "gpu" in device["capabilities"]
