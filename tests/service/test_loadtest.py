"""The load generator against real servers it starts (a tiny random model on torch, CPU)."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from matting.checkpoint import save_checkpoint
from matting.models.network import build_model
from service import loadtest
from tests.export.conftest import TINY


@pytest.mark.timeout(120)
def test_compare_batching_report(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    model = tmp_path / "tiny.safetensors"
    save_checkpoint(model, build_model(TINY).eval())
    # The servers inherit the environment: keep their cache here and their warm-up small.
    monkeypatch.setenv("MATTING_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("MATTING_WARMUP_SIZES", '["96x96"]')
    out = tmp_path / "report.json"
    argv = ["--model", str(model), "--compare-batching", "--clients", "2", "--requests", "12"]
    argv += ["--size", "96", "--warmup", "2", "--memory-checkpoints", "6,12"]
    argv += ["--progress-every", "6", "--json", str(out)]
    report = loadtest.main(argv)

    assert json.loads(out.read_text()) == report
    off, on = report["results"]
    assert (off["label"], on["label"]) == ("batching off", "batching on")
    for r in (off, on):
        assert r["completed"] + sum(r["errors"].values()) == 12
        assert r["errors"] == {}
        assert r["stopped_by"] == "requests"
        assert r["throughput_rps"] > 0
        lat = r["latency_ms"]
        assert 0 < lat["p50"] <= lat["p90"] <= lat["p99"] <= lat["max"]
        assert set(r["server_timing_median_ms"]) == {"decode", "queue", "infer", "encode", "total"}
        assert [m["after"] for m in r["memory_mib"]] == [6, 12, "end"]
        for m in r["memory_mib"]:
            assert m["VmHWM"] >= m["VmRSS"] > 0
    assert off["mean_batch_size"] == 1  # MATTING_MAX_BATCH_SIZE=1 reached the server
    assert 1 <= on["mean_batch_size"] <= 2  # two clients
    assert report["throughput_ratio_on_off"] == on["throughput_rps"] / off["throughput_rps"]
    printed = capsys.readouterr()
    assert "throughput on/off" in printed.out and "loopback HTTP" in printed.out
    assert "[batching on] 12/12 requests" in printed.err


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("http://10.1.2.3:80", "refusing 10.1.2.3: the load test only targets loopback"),
        ("http://example.com", "refusing example.com"),
        ("ftp://127.0.0.1", "not an http(s) URL"),
    ],
)
def test_refuses_non_loopback(
    url: str, message: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def no_network(*_a: object, **_k: object) -> None:
        raise AssertionError("a request was sent")

    monkeypatch.setattr(httpx.AsyncClient, "send", no_network)
    monkeypatch.setattr(httpx, "get", no_network)
    monkeypatch.setattr(loadtest.subprocess, "Popen", no_network)
    with pytest.raises(SystemExit) as exit_info:
        loadtest.main(["--url", url, "--requests", "1"])
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize("url", ["http://127.0.0.1:8000/", "http://127.9.9.9", "http://[::1]:1"])
def test_accepts_loopback(url: str) -> None:
    assert loadtest.loopback_url(url) == url.rstrip("/")
    assert loadtest.loopback_url("http://localhost:8000") == "http://localhost:8000"
