"""The Helm chart: lint, render and validate every manifest against the Kubernetes schemas for
the default values and the GPU + KEDA values, and check that what it deploys is what the project
really has (CLI commands, settings, routes, queue key names). No cluster is needed: the Helm SDK
renders in process and kubernetes-validate carries the schemas."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

import pytest

from tests.deploy.deploy import (
    CHART,
    GPU_VALUES,
    HERE,
    SCHEMAS,
    by_kind,
    check_cli,
    check_env_name,
    container_commands,
    health_routes,
    load_yaml,
    manifests,
    one,
    pod_spec,
    project_containers,
    render,
)

helm = pytest.importorskip("helm_python", reason="helm-python-sdk is not installed")
kv = pytest.importorskip("kubernetes_validate", reason="kubernetes-validate is not installed")

# The oldest Kubernetes the chart supports (Chart.yaml kubeVersion) and the newest schemas.
KUBE_VERSIONS = ["1.27", kv.latest_version()]
CRD_SCHEMAS = {
    "ScaledObject": SCHEMAS / "scaledobject-keda-v1alpha1.json",
    "ServiceMonitor": SCHEMAS / "servicemonitor-monitoring-v1.json",
}
VALUES = {"default": None, "gpu-keda": GPU_VALUES}
BROKEN = HERE / "values" / "broken-replicas.yaml"
WHOLE = {"resources", "podSecurityContext", "securityContext"}


def values_of(name: str) -> dict[str, Any] | None:
    path = VALUES[name]
    return load_yaml(path) if path else None


@pytest.fixture(scope="module", params=sorted(VALUES))
def case(request: pytest.FixtureRequest) -> tuple[str, list[dict[str, Any]]]:
    return request.param, manifests(render(values_of(request.param)))


def validation_errors(docs: list[dict[str, Any]], version: str) -> list[str]:
    """Every schema error of every manifest: Kubernetes kinds with kubernetes-validate in strict
    mode (unknown fields are errors), CRDs with the schemas in tests/deploy/schemas."""
    import jsonschema

    errors = []
    for d in docs:
        where = f"{d['kind']}/{d['metadata']['name']}"
        if d["kind"] in CRD_SCHEMAS:
            schema = json.loads(CRD_SCHEMAS[d["kind"]].read_text())
            for e in jsonschema.Draft202012Validator(schema).iter_errors(d):
                errors.append(f"{where}: {'.'.join(map(str, e.absolute_path))}: {e.message}")
            continue
        try:
            kv.validate(d, version, strict=True)
        except kv.ValidationError as e:
            errors.append(f"{where}: {'.'.join(map(str, e.absolute_path))}: {e.message}")
        except kv.SchemaNotFoundError as e:
            errors.append(f"{where}: {e.message}")
    return errors


# --- lint, render, validate -----------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(VALUES))
def test_helm_lint_passes(name: str) -> None:
    report = helm.lint(CHART, values_of(name), strict=True, kube_version="v1.27.0")
    serious = [m for m in report["messages"] if m["severity"] >= 2]
    assert not report["errors"] and not serious, report


@pytest.mark.parametrize("version", KUBE_VERSIONS)
def test_every_manifest_matches_the_kubernetes_schemas(case: Any, version: str) -> None:
    name, docs = case
    assert docs, f"{name}: nothing rendered"
    assert validation_errors(docs, version) == []


def test_both_values_files_render_what_they_promise() -> None:
    default = {d["kind"] for d in manifests(render(None))}
    gpu = {d["kind"] for d in manifests(render(values_of("gpu-keda")))}
    assert {"Deployment", "Service", "ConfigMap", "PodDisruptionBudget"} <= default
    # No CRD in the defaults: they install on a cluster without KEDA or the Prometheus Operator.
    assert not default & {"ScaledObject", "ServiceMonitor", "Secret", "Ingress"}
    assert {"ScaledObject", "ServiceMonitor", "HorizontalPodAutoscaler", "Ingress"} <= gpu
    assert "StatefulSet" in gpu  # the in-chart Redis


def test_a_broken_values_file_is_rejected() -> None:
    values = load_yaml(BROKEN)
    # At install time: values.schema.json.
    with pytest.raises(helm.HelmValuesError, match="replicas"):
        render(values)
    assert helm.lint(CHART, values)["errors"]


def test_a_broken_value_that_slips_past_the_values_schema_fails_kubernetes_validation(
    tmp_path: Path,
) -> None:
    # Without values.schema.json the same mistake renders; the manifest validation stops it.
    chart = tmp_path / "matting"
    shutil.copytree(CHART, chart)
    (chart / "values.schema.json").unlink()
    docs = manifests(render(load_yaml(BROKEN), chart=chart))
    errors = validation_errors(docs, KUBE_VERSIONS[0])
    assert any(e.startswith("Deployment/matting-api: spec.replicas:") for e in errors), errors


def test_the_validation_can_fail_on_a_crd() -> None:
    docs = manifests(render(values_of("gpu-keda")))
    scaled = one(docs, "ScaledObject")
    scaled["spec"]["triggers"][0]["metadata"]["lagCount"] = 2  # KEDA wants strings
    assert validation_errors([scaled], KUBE_VERSIONS[0])


# --- the chart deploys what the project has ------------------------------------------------
def test_containers_run_real_cli_commands(case: Any) -> None:
    _, docs = case
    containers = project_containers(docs)
    assert {c["name"] for _, c in containers} >= {"api", "worker"}
    for workload, c in containers:
        argv = c.get("command", []) + c.get("args", [])
        commands = container_commands(argv)
        assert commands, f"{workload}/{c['name']} runs no matting command: {argv}"
        for cmd in commands:
            check_cli(cmd)
    api = one(docs, "Deployment", "-api")
    assert pod_spec(api)["containers"][0]["command"] == ["matting", "serve"]
    worker = one(docs, "Deployment", "-worker")
    assert pod_spec(worker)["containers"][0]["command"] == ["matting", "worker"]


def test_every_environment_variable_is_a_real_setting(case: Any) -> None:
    _, docs = case
    for key in one(docs, "ConfigMap")["data"]:
        check_env_name(key)
    for _, c in project_containers(docs):
        for env in c.get("env", []):
            check_env_name(env["name"])


def test_settings_values_become_matting_variables() -> None:
    docs = manifests(render({"settings": {"max_batch_size": 4, "video_max_bytes": 2**33}}))
    data = one(docs, "ConfigMap")["data"]
    # Whole numbers stay whole (no 8.589934592e+09) and every value is a string.
    assert data["MATTING_MAX_BATCH_SIZE"] == "4"
    assert data["MATTING_VIDEO_MAX_BYTES"] == str(2**33)
    with pytest.raises(AssertionError, match="not a field"):
        check_env_name("MATTING_NO_SUCH_SETTING")


@pytest.mark.parametrize("key", ["redis_url", "api_keys", "api_keys_file", "port"])
def test_secret_or_chart_owned_settings_are_refused(key: str) -> None:
    with pytest.raises(helm.HelmRenderError, match=f"settings.{key} is set by the chart"):
        render({"settings": {key: "x"}})


def test_probes_hit_the_service_health_routes(case: Any) -> None:
    _, docs = case
    api = pod_spec(one(docs, "Deployment", "-api"))["containers"][0]
    assert api["startupProbe"]["httpGet"]["path"] == "/livez"
    assert api["livenessProbe"]["httpGet"]["path"] == "/livez"
    assert api["readinessProbe"]["httpGet"]["path"] == "/readyz"
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        assert api[probe]["httpGet"]["path"] in health_routes()
        assert api[probe]["httpGet"]["port"] == "http"
    port = {p["name"]: p["containerPort"] for p in api["ports"]}["http"]
    assert one(docs, "ConfigMap")["data"]["MATTING_PORT"] == str(port)

    worker = pod_spec(one(docs, "Deployment", "-worker"))["containers"][0]
    metrics_port = {p["name"]: p["containerPort"] for p in worker["ports"]}["metrics"]
    assert one(docs, "ConfigMap")["data"]["MATTING_WORKER_METRICS_PORT"] == str(metrics_port)
    assert worker["livenessProbe"]["httpGet"] == {"path": "/metrics", "port": "metrics"}


def test_workers_get_time_to_finish_their_chunk(case: Any) -> None:
    _, docs = case
    worker = pod_spec(one(docs, "Deployment", "-worker"))
    assert worker["terminationGracePeriodSeconds"] >= 300
    hook = worker["containers"][0]["lifecycle"]["preStop"]["exec"]["command"]
    assert "kill -TERM 1" in hook[-1]
    api = pod_spec(one(docs, "Deployment", "-api"))
    from service.settings import Settings

    pre_stop = int(api["containers"][0]["lifecycle"]["preStop"]["exec"]["command"][1])
    drain = Settings.model_fields["drain_timeout_s"].default
    assert api["terminationGracePeriodSeconds"] > drain + pre_stop


def test_gpus_are_in_limits_where_asked(case: Any) -> None:
    name, docs = case
    worker = pod_spec(one(docs, "Deployment", "-worker"))["containers"][0]
    assert worker["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert worker["image"].endswith("-gpu")
    api = pod_spec(one(docs, "Deployment", "-api"))["containers"][0]
    gpus = api["resources"].get("limits", {}).get("nvidia.com/gpu")
    assert gpus == (1 if name == "gpu-keda" else None)
    assert api["image"].endswith("-gpu" if gpus else "-cpu")


def test_engines_are_built_on_the_pod_gpu_not_baked() -> None:
    docs = manifests(render(values_of("gpu-keda")))
    for suffix in ("-api", "-worker"):
        spec = pod_spec(one(docs, "Deployment", suffix))
        (init,) = spec["initContainers"]
        assert init["resources"]["limits"]["nvidia.com/gpu"] == 1
        script = init["args"][0]
        built = [c[:3] for c in container_commands(["sh", "-c", script])]
        assert built == [["matting", "export", "onnx"], ["matting", "export", "tensorrt"]]
        env = {e["name"]: e.get("value") for e in spec["containers"][0]["env"]}
        assert env["MATTING_MODEL"] == "/engines/tensorrt"
        assert env["MATTING_BACKEND"] == "tensorrt"


def test_engine_build_refuses_an_export_directory_as_its_checkpoint() -> None:
    values = {"model": {"path": "/models/export", "buildEngine": {"enabled": True}}}
    with pytest.raises(helm.HelmRenderError, match=r"must be a \.safetensors file"):
        render(values)
    values["model"]["path"] = "/models/quality.safetensors"
    docs = manifests(render(values))
    (init,) = pod_spec(one(docs, "Deployment", "-worker"))["initContainers"]
    onnx = container_commands(["sh", "-c", init["args"][0]])[0]
    assert onnx[onnx.index("--checkpoint") + 1] == "/models/quality.safetensors"
    assert "--no-tta" not in onnx


def test_engine_build_follows_the_tta_setting() -> None:
    for tta, flag in ((False, True), ("false", True), (True, False)):
        values = values_of("gpu-keda")
        values.setdefault("settings", {})["tta"] = tta
        docs = manifests(render(values))
        assert one(docs, "ConfigMap")["data"]["MATTING_TTA"] == str(tta).lower()
        (init,) = pod_spec(one(docs, "Deployment", "-api"))["initContainers"]
        onnx = container_commands(["sh", "-c", init["args"][0]])[0]
        check_cli(onnx)
        assert ("--no-tta" in onnx) == flag


def test_autoscaled_deployments_leave_replicas_to_the_autoscaler() -> None:
    docs = manifests(render(values_of("gpu-keda")))
    assert "replicas" not in one(docs, "Deployment", "-api")["spec"]
    assert "replicas" not in one(docs, "Deployment", "-worker")["spec"]
    hpa = one(docs, "HorizontalPodAutoscaler")
    assert hpa["apiVersion"] == "autoscaling/v2"
    assert hpa["spec"]["scaleTargetRef"]["name"] == "matting-api"


@pytest.mark.parametrize("prefix", ["matting", "{mt}"])
def test_keda_scales_workers_on_the_queue_the_service_uses(prefix: str) -> None:
    from service.jobs.constants import Keys

    values = values_of("gpu-keda")
    assert values is not None
    values["settings"]["redis_prefix"] = prefix
    docs = manifests(render(values))
    scaled = one(docs, "ScaledObject")
    assert scaled["spec"]["scaleTargetRef"]["name"] == "matting-worker"
    triggers = {t["name"]: t["metadata"] for t in scaled["spec"]["triggers"]}
    assert set(triggers) == {"queued-jobs", "running-jobs"}
    assert "lagCount" in triggers["queued-jobs"]
    assert "pendingEntriesCount" in triggers["running-jobs"]
    worker = pod_spec(one(docs, "Deployment", "-worker"))["containers"][0]
    env = {e["name"]: e for e in worker["env"]}
    url = env["MATTING_REDIS_URL"]["value"]
    known = {
        *("address", "databaseIndex", "enableTLS", "stream", "consumerGroup"),
        *("passwordFromEnv", "lagCount", "activationLagCount", "pendingEntriesCount"),
    }
    for meta in triggers.values():
        assert set(meta) <= known, set(meta) - known
        assert meta["stream"] == Keys(prefix).stream
        assert meta["consumerGroup"] == Keys(prefix).group
        assert url.endswith(f"@{meta['address']}/{meta['databaseIndex']}")
        # KEDA reads the password from the worker's own env, which takes it from the Secret.
        assert "secretKeyRef" in env[meta["passwordFromEnv"]]["valueFrom"]


def test_external_redis_is_the_default_and_in_chart_redis_is_persistent() -> None:
    default = manifests(render(None))
    assert not by_kind(default, "StatefulSet")
    env = {e["name"]: e.get("value") for e in project_containers(default)[0][1]["env"]}
    assert env["MATTING_REDIS_URL"] == load_yaml(CHART / "values.yaml")["redis"]["url"]

    docs = manifests(render({"redis": {"enabled": True}}))
    redis = one(docs, "StatefulSet", "-redis")
    script = pod_spec(redis)["containers"][0]["args"][0]
    assert "--appendonly yes" in script
    claim = redis["spec"]["volumeClaimTemplates"][0]
    assert claim["spec"]["resources"]["requests"]["storage"]
    env = {e["name"]: e.get("value") for e in project_containers(docs)[0][1]["env"]}
    # Namespace-qualified, so that KEDA's operator reaches it from its own namespace too.
    assert env["MATTING_REDIS_URL"] == "redis://matting-redis.matting.svc:6379/0"
    assert one(docs, "Service", "-redis")["spec"]["ports"][0]["port"] == 6379


def test_redis_url_with_a_password_is_refused() -> None:
    with pytest.raises(helm.HelmRenderError, match="must not carry credentials"):
        render({"redis": {"url": "redis://:hunter2@redis.example:6379/0"}})


def test_storage_is_shared_read_write_many() -> None:
    docs = manifests(render(None))
    (pvc,) = by_kind(docs, "PersistentVolumeClaim")
    assert pvc["spec"]["accessModes"] == ["ReadWriteMany"]
    data = one(docs, "ConfigMap")["data"]
    for suffix in ("-api", "-worker"):
        spec = pod_spec(one(docs, "Deployment", suffix))
        vols = {v["name"]: v for v in spec["volumes"]}
        assert vols["jobs"]["persistentVolumeClaim"]["claimName"] == pvc["metadata"]["name"]
        mounts = {m["name"]: m["mountPath"] for m in spec["containers"][0]["volumeMounts"]}
        assert mounts["jobs"] == data["MATTING_STORAGE_DIR"]
    assert data["MATTING_WORKERS"] == "0"  # workers are pods of their own


def test_pdbs_and_service_monitor_select_the_pods(case: Any) -> None:
    name, docs = case
    pods = [d["spec"]["template"]["metadata"]["labels"] for d in by_kind(docs, "Deployment")]
    for pdb in by_kind(docs, "PodDisruptionBudget"):
        match = pdb["spec"]["selector"]["matchLabels"]
        assert sum(match.items() <= labels.items() for labels in pods) == 1
    if name == "gpu-keda":
        monitor = one(docs, "ServiceMonitor")
        ports = {p["port"] for p in monitor["spec"]["endpoints"]}
        services = by_kind(docs, "Service")
        named = {p["name"] for s in services for p in s["spec"]["ports"]}
        assert ports <= named
        assert all(e["path"] in health_routes() for e in monitor["spec"]["endpoints"])


# --- auth on a public Ingress ---------------------------------------------------------------
def test_ingress_without_api_keys_refuses_to_render() -> None:
    with pytest.raises(helm.HelmRenderError, match="without API keys"):
        render({"ingress": {"enabled": True}})


@pytest.mark.parametrize("kind", ["LoadBalancer", "NodePort"])
def test_a_public_service_without_api_keys_refuses_to_render(kind: str) -> None:
    with pytest.raises(helm.HelmRenderError, match="without API keys"):
        render({"api": {"service": {"type": kind}}})
    assert manifests(render({"api": {"service": {"type": kind}}, "auth": {"apiKeys": ["k"]}}))


def test_ingress_without_api_keys_renders_only_when_explicitly_allowed() -> None:
    docs = manifests(render({"ingress": {"enabled": True, "allowUnauthenticated": True}}))
    assert one(docs, "Ingress")
    docs = manifests(render({"ingress": {"enabled": True}, "auth": {"existingSecret": "keys"}}))
    ingress = one(docs, "Ingress")
    # The API and the web page; health and metrics stay inside the cluster.
    paths = {p["path"] for r in ingress["spec"]["rules"] for p in r["http"]["paths"]}
    assert paths == {"/v1", "/", "/static", "/openapi.json"}
    exact = {
        p["path"]
        for r in ingress["spec"]["rules"]
        for p in r["http"]["paths"]
        if p["pathType"] == "Exact"
    }
    assert exact == {"/", "/openapi.json"}  # "/" as Prefix would publish /metrics too
    # A key of blanks would be no key at all: the values schema refuses it.
    with pytest.raises(helm.HelmValuesError, match="apiKeys"):
        render({"ingress": {"enabled": True}, "auth": {"apiKeys": ["  "]}})


def test_values_are_documented_in_the_chart_readme() -> None:
    readme = (CHART / "README.md").read_text()
    values = load_yaml(CHART / "values.yaml")
    missing = []

    def walk(node: dict[str, Any], prefix: str, depth: int) -> None:
        for key, value in node.items():
            path = f"{prefix}{key}"
            # Maps of Kubernetes objects (resources, security contexts) are documented whole.
            if isinstance(value, dict) and value and depth < 2 and key not in WHOLE:
                walk(value, f"{path}.", depth + 1)
            elif not re.search(rf"`{re.escape(path)}`", readme):
                missing.append(path)

    walk(values, "", 0)
    assert not missing, f"values missing from helm/matting/README.md: {missing}"
