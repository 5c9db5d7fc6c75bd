"""No secret in an image, a chart default, a rendered manifest or a log line: a scan for
secret-looking values (which must itself catch planted ones), and canary secrets given to the
chart that must surface only, encoded, in its Secret."""

from __future__ import annotations

import base64
import re
from pathlib import Path

import pytest

from tests.deploy.deploy import CHART, DOCKER, GPU_VALUES, ROOT, load_yaml, manifests, render

helm = pytest.importorskip("helm_python", reason="helm-python-sdk is not installed")

# A value is a reference, not a secret, when it names a variable ($(VAR), ${VAR}, $VAR) or a
# file (./keys.txt, /run/secrets/keys).
_VALUE = r"""["']?(?![$./])([^\s"'\]\[{}]{4,})"""
PATTERNS = {
    "credentials in a URL": re.compile(r"[a-z][a-z0-9+.-]*://[^/\s:@]*:(?![$\"])[^@\s/]+@"),
    "password or token value": re.compile(
        # MATTING_API_KEYS and redis-password count; checksum/secret and existingSecretKey do not.
        r"(?i)(?<![a-z0-9/.])(password|passwd|secret|token|api[_-]?keys?)[ \t]*[:=][ \t]*" + _VALUE
    ),
    "redis requirepass": re.compile(r"requirepass[ \t]+" + _VALUE),
    "private key": re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----"),
    "cloud or forge token": re.compile(
        r"\b(AKIA[0-9A-Z]{16}|gh[pousr]_[A-Za-z0-9]{30,}|sk-[A-Za-z0-9]{20,}|xox[abprs]-[\w-]{10,})"
    ),
}


def find_secrets(text: str) -> list[str]:
    return [f"{what}: {m.group(0)!r}" for what, p in PATTERNS.items() for m in p.finditer(text)]


@pytest.mark.parametrize(
    "text",
    [
        "MATTING_REDIS_URL: redis://:hunter22@redis:6379/0",
        "url: rediss://default:s3cr3t-pw@cache.example:6380",
        "password: hunter22",
        'MATTING_API_KEYS: "k-0123456789"',
        "api_key=abcd1234efgh",
        "requirepass hunter22",
        "-----BEGIN RSA PRIVATE KEY-----",
        "aws: AKIAABCDEFGHIJKLMNOP",
        "--from-literal=redis-password=hunter22",
    ],
)
def test_the_scan_finds_planted_secrets(text: str) -> None:
    assert find_secrets(text), text


@pytest.mark.parametrize(
    "text",
    [
        'value: "redis://:$(REDIS_PASSWORD)@matting-redis:6379/0"',
        'password: ""',
        "MATTING_API_KEYS: ${MATTING_API_KEYS:-}",
        'requirepass "$REDIS_PASSWORD"',
        "apiKeys: []",
        "existingSecretKey: redis-password",
        "checksum/secret: 01ba4719c80b6fe911b091a7c05124b64eeece964e09c058ef8f9805daca546b",
        '--from-literal=redis-password="$(openssl rand -hex 32)"',
        "--from-file=api-keys=./api-keys.txt",
        "secret:\n    secretName: matting-api-keys",
    ],
)
def test_the_scan_leaves_references_alone(text: str) -> None:
    assert find_secrets(text) == []


def deploy_files() -> list[Path]:
    files = [p for p in DOCKER.rglob("*") if p.is_file()]
    files += [p for p in CHART.rglob("*") if p.is_file()]
    files += [ROOT / "README.md"]  # its Deploy section
    return files


def test_no_secret_in_images_chart_or_docs() -> None:
    found = {}
    for path in deploy_files():
        hits = find_secrets(path.read_text())
        if hits:
            found[str(path.relative_to(ROOT))] = hits
    assert not found


@pytest.mark.parametrize("values", [None, GPU_VALUES], ids=["default", "gpu-keda"])
def test_no_secret_in_rendered_manifests(values: Path | None) -> None:
    rendered = render(load_yaml(values) if values else None)
    assert not [d for d in manifests(rendered) if d["kind"] == "Secret"]
    for name, text in rendered.items():
        assert find_secrets(text) == [], name


def test_given_secrets_surface_only_encoded_in_the_secret() -> None:
    key, password = "canary-api-key-5f1c", "canarypassword7e2a"
    rendered = render(
        {
            "auth": {"apiKeys": [key, "second-key"]},
            "redis": {"enabled": True, "auth": {"password": password}},
            "ingress": {"enabled": True},
            "worker": {"keda": {"enabled": True}},
        }
    )
    for name, text in rendered.items():  # NOTES.txt included: it is printed on install
        assert key not in text and password not in text, name
    docs = manifests(rendered)
    (secret,) = [d for d in docs if d["kind"] == "Secret"]
    decoded = {k: base64.b64decode(v).decode() for k, v in secret["data"].items()}
    assert decoded == {"api-keys": f"{key}\nsecond-key", "redis-password": password}
    encoded = {v for v in secret["data"].values()}
    for d in docs:
        if d["kind"] != "Secret":
            text = str(d)
            assert not any(e in text for e in encoded), d["metadata"]["name"]
    # The pods get the password through secretKeyRef and the keys as a mounted file.
    for d in docs:
        if d["kind"] not in ("Deployment", "StatefulSet"):
            continue
        for c in d["spec"]["template"]["spec"]["containers"]:
            for env in c.get("env", []):
                if env["name"] == "REDIS_PASSWORD":
                    assert env["valueFrom"]["secretKeyRef"]["name"] == secret["metadata"]["name"]


def test_secret_settings_never_print() -> None:
    """What the service logs or shows about its settings and its queue holds no secret."""
    from service.jobs.queue import JobQueue
    from service.settings import Settings

    canary = "canarypw9d3"
    s = Settings(api_keys=f"{canary},other", redis_url=f"redis://:{canary}@redis:6379/0")
    for shown in (repr(s), str(s), s.model_dump_json()):
        assert canary not in shown
    queue = JobQueue.from_url(s.redis_url.get_secret_value())  # type: ignore[union-attr]
    assert canary not in queue.url and canary not in repr(queue.keys)
    # The chart and compose only ever pass secrets through these two settings, both masked.
    values = load_yaml(CHART / "values.yaml")
    assert values["auth"]["apiKeys"] == [] and values["redis"]["auth"]["password"] == ""
    assert "SecretStr" in str(Settings.model_fields["api_keys"].annotation)
    assert "SecretStr" in str(Settings.model_fields["redis_url"].annotation)
