"""The service over real HTTP: a real uvicorn on a loopback port, a real client."""

from __future__ import annotations

import asyncio
import base64
import concurrent.futures
import io
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image
from prometheus_client.parser import text_string_to_metric_families

from tests.service import images
from tests.service.conftest import LiveServer, start_server, tiny_settings

JPEG = {"Content-Type": "image/jpeg"}


def _image(response: httpx.Response) -> Image.Image:
    img = Image.open(io.BytesIO(response.content))
    img.load()
    return img


def _error(response: httpx.Response, status: int, match: str = "") -> dict[str, str]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    error = response.json()["error"]
    assert set(error) == {"type", "message"} and error["message"]
    assert match.lower() in error["message"].lower(), error
    return error


@pytest.mark.parametrize(
    ("output", "fmt", "mode", "media"),
    [
        ("rgba", "png", "RGBA", "image/png"),
        ("rgba", "webp", "RGBA", "image/webp"),
        ("alpha", "png", "L", "image/png"),
        ("foreground", "png", "RGB", "image/png"),
        ("composite", "jpeg", "RGB", "image/jpeg"),
        ("composite", "png", "RGB", "image/png"),
    ],
)
def test_each_output(live: LiveServer, output: str, fmt: str, mode: str, media: str) -> None:
    with live.client() as c:
        r = c.post(
            "/v1/matte",
            params={"output": output, "format": fmt},
            content=images.photo(),
            headers=JPEG,
        )
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == media
    img = _image(r)
    assert img.mode == mode and img.size == (128, 96)
    assert r.headers["x-matting-size"] == "128x96"
    timing = dict(part.split(";dur=") for part in r.headers["server-timing"].split(", "))
    assert set(timing) == {"decode", "queue", "infer", "encode", "total"}
    assert all(float(v) >= 0 for v in timing.values())
    assert int(r.headers["x-matting-batch-size"]) >= 1


def test_rgba_alpha_is_the_alpha_output(live: LiveServer) -> None:
    with live.client() as c:
        body = images.photo(seed=5)
        rgba = _image(c.post("/v1/matte", content=body, headers=JPEG))
        alpha = _image(c.post("/v1/matte", params={"output": "alpha"}, content=body))
    # The same model on the same pixels: the cut-out's alpha channel is the matte.
    diff = np.abs(np.asarray(rgba)[..., 3].astype(int) - np.asarray(alpha).astype(int))
    assert diff.max() <= 1


def test_composite_over_colour_and_over_an_image(live: LiveServer) -> None:
    with live.client() as c:
        r = c.post(
            "/v1/matte",
            params={"output": "composite", "background_color": "#00ff00"},
            content=images.photo(),
            headers=JPEG,
        )
        assert r.status_code == 200
        backdrop = images.encode(Image.new("RGB", (40, 30), (255, 0, 255)), "PNG")
        r2 = c.post(
            "/v1/matte",
            params={"output": "composite"},
            files={"image": ("p.jpg", images.photo()), "background": ("b.png", backdrop)},
        )
    assert r2.status_code == 200, r2.text
    green, magenta = np.asarray(_image(r)), np.asarray(_image(r2))
    assert green.shape == magenta.shape == (96, 128, 3)
    # Where the matte is transparent, the backdrop shows through: only the
    # backdrops differ between the two answers, so every difference is in the
    # channels where green and magenta differ, and there must be some.
    diff = green.astype(int) - magenta.astype(int)
    assert (diff[..., 1] >= 0).all() and (diff[..., 0] <= 0).all()


def test_json_variant(live: LiveServer) -> None:
    with live.client() as c:
        r = c.post("/v1/matte/json", params={"output": "alpha"}, content=images.photo())
    assert r.status_code == 200 and r.headers["content-type"] == "application/json"
    body = r.json()
    assert body["media_type"] == "image/png" and (body["width"], body["height"]) == (128, 96)
    img = Image.open(io.BytesIO(base64.b64decode(body["image"])))
    assert img.mode == "L" and img.size == (128, 96)
    assert set(body["timings_ms"]) == {"decode", "queue", "infer", "encode", "total"}


def test_greyscale_png_cmyk_jpeg_and_exif_rotation(live: LiveServer) -> None:
    with live.client() as c:
        grey = c.post("/v1/matte", content=images.greyscale_png(80, 100))
        cmyk = c.post("/v1/matte", content=images.cmyk_jpeg(64, 96), headers=JPEG)
        rotated = c.post("/v1/matte", content=images.exif_rotated_jpeg(64, 96), headers=JPEG)
    for r, size in ((grey, (100, 80)), (cmyk, (96, 64)), (rotated, (64, 96))):
        assert r.status_code == 200, r.text
        assert _image(r).size == size  # rotated: stored 96x64, shown upright as 64x96


def test_max_side_downscales(live: LiveServer) -> None:
    with live.client() as c:
        r = c.post("/v1/matte", params={"max_side": 64}, content=images.photo(96, 128))
    assert r.status_code == 200 and _image(r).size == (64, 48)


def test_multipart_upload(live: LiveServer) -> None:
    with live.client() as c:
        r = c.post("/v1/matte", files={"image": ("photo.jpg", images.photo(), "image/jpeg")})
    assert r.status_code == 200 and _image(r).size == (128, 96)


@pytest.mark.parametrize(
    ("body", "headers", "status", "match"),
    [
        (images.truncated_jpeg(), JPEG, 400, "truncated or corrupt"),
        (b"just some text, not an image\n", {"Content-Type": "image/png"}, 415, "not a recognised"),
        (b"", JPEG, 400, "empty body"),
        (images.bomb_png(), {"Content-Type": "image/png"}, 413, "30000x30000"),
        (images.gif(), {"Content-Type": "image/gif"}, 415, "unsupported image type GIF"),
        (images.photo(), {"Content-Type": "application/json"}, 415, "content type"),
        (images.photo(), {"Content-Type": "text/plain"}, 415, "content type"),
    ],
    ids=["truncated-jpeg", "text", "empty", "bomb", "gif", "json-type", "text-type"],
)
def test_bad_inputs_get_a_json_4xx(
    live: LiveServer, body: bytes, headers: dict[str, str], status: int, match: str
) -> None:
    with live.client() as c:
        _error(c.post("/v1/matte", content=body, headers=headers), status, match)


def test_bad_options_and_multipart(live: LiveServer) -> None:
    with live.client() as c:
        photo = images.photo()
        _error(
            c.post("/v1/matte", params={"output": "rgba", "format": "jpeg"}, content=photo),
            400,
            "jpeg",
        )
        _error(c.post("/v1/matte", params={"output": "mask"}, content=photo), 422, "output")
        _error(c.post("/v1/matte", params={"max_side": 0}, content=photo), 422, "max_side")
        _error(
            c.post(
                "/v1/matte",
                params={"output": "composite", "background_color": "nope"},
                content=photo,
            ),
            400,
            "colour",
        )
        _error(c.post("/v1/matte", files={"picture": ("a.jpg", photo)}), 400, "unknown form fields")
        _error(c.post("/v1/matte", data={"image": "text"}, files={"x": ("", b"")}), 400, "")
        bad = {"Content-Type": "multipart/form-data; boundary=zzz"}
        _error(c.post("/v1/matte", content=b"--zzz\r\ngarbage", headers=bad), 400, "")
        # A plate goes only to background-guided models.
        _error(
            c.post("/v1/matte", files={"image": ("a.jpg", photo), "plate": ("b.jpg", photo)}),
            400,
            "plate",
        )


def test_body_over_the_byte_limit_is_413(tiny_model: Path, tmp_path: Path) -> None:
    server = start_server(tiny_settings(tiny_model, tmp_path, max_request_bytes=4096))
    try:
        with server.client() as c:
            big = images.photo(400, 400, fmt="PNG")
            assert len(big) > 4096
            _error(c.post("/v1/matte", content=big), 413, "larger than the limit")
            assert c.post("/v1/matte", content=images.photo(32, 32)).status_code == 200
    finally:
        server.stop()


def test_unknown_route_and_method_are_json(live: LiveServer) -> None:
    with live.client() as c:
        _error(c.get("/nope"), 404)
        _error(c.get("/v1/matte"), 405)


def test_auth_on(tiny_model: Path, tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    keys.write_text("file-key\n\n")
    server = start_server(
        tiny_settings(tiny_model, tmp_path, api_keys="env-key, other", api_keys_file=keys)
    )
    try:
        with server.client() as c:
            photo = images.photo()
            _error(c.post("/v1/matte", content=photo), 401, "api key")
            _error(
                c.post("/v1/matte", content=photo, headers={"X-API-Key": "wrong"}), 401, "unknown"
            )
            _error(c.post("/v1/matte/json", content=photo), 401)
            for headers in (
                {"Authorization": "Bearer env-key"},
                {"Authorization": "bearer other"},
                {"X-API-Key": "file-key"},
            ):
                assert c.post("/v1/matte", content=photo, headers=headers).status_code == 200
            # Health and metrics stay open; so does nothing else.
            for path in ("/livez", "/readyz", "/metrics"):
                assert c.get(path).status_code == 200
            for path in ("/openapi.json", "/docs", "/redoc"):
                assert c.get(path).status_code in (401, 404), path
            assert c.get("/openapi.json", headers={"X-API-Key": "other"}).status_code == 200
    finally:
        server.stop()


def test_auth_off_means_open(live: LiveServer) -> None:
    with live.client() as c:
        assert c.post("/v1/matte", content=images.photo(32, 32)).status_code == 200
        assert c.get("/openapi.json").status_code == 200


def _hold_inference(server: LiveServer) -> concurrent.futures.Future[object]:
    """Occupy the backend with a large image submitted straight to the batcher
    (no HTTP, no deadline) and return once it is computing."""
    batcher, loop = server.state.batcher, server.state.loop
    assert batcher is not None and loop is not None
    big = np.random.default_rng(9).integers(0, 256, (3000, 4000, 3), dtype=np.uint8)
    held = asyncio.run_coroutine_threadsafe(batcher.submit(big), loop)
    deadline = time.monotonic() + 30
    while batcher.in_flight == 0:
        assert time.monotonic() < deadline, "the large image never reached the backend"
        time.sleep(0.002)
    return held


def test_queue_full_is_503_with_retry_after(tiny_model: Path, tmp_path: Path) -> None:
    server = start_server(
        tiny_settings(tiny_model, tmp_path, max_queue=1, max_batch_size=1, max_delay_ms=0)
    )
    try:
        held = _hold_inference(server)
        batcher = server.state.batcher
        assert batcher is not None
        queued = threading.Thread(
            target=lambda: server.client().post("/v1/matte", content=images.photo(), headers=JPEG)
        )
        queued.start()
        while batcher.depth == 0:
            time.sleep(0.005)
        with server.client() as c:
            r = c.post("/v1/matte", content=images.photo(), headers=JPEG)
        error = _error(r, 503, "queue is full")
        assert error["type"] == "QueueFullError"
        assert int(r.headers["retry-after"]) >= 1
        held.result(timeout=60)
        queued.join()
        with server.client() as c:  # the queue drained: served again
            assert c.post("/v1/matte", content=images.photo(), headers=JPEG).status_code == 200
    finally:
        server.stop()


def test_deadline_exceeded_is_504(tiny_model: Path, tmp_path: Path) -> None:
    server = start_server(
        tiny_settings(tiny_model, tmp_path, request_timeout_s=0.15, max_batch_size=1)
    )
    try:
        held = _hold_inference(server)  # several seconds of work ahead of us
        with server.client() as c:
            r = c.post("/v1/matte", content=images.photo(), headers=JPEG)
        assert _error(r, 504, "deadline")["type"] == "DeadlineExceededError"
        held.result(timeout=60)
    finally:
        server.stop()


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[s.name, tuple(sorted(s.labels.items()))] = s.value
    return out


def test_metrics_move(live: LiveServer) -> None:
    with live.client() as c:
        before = _samples(c.get("/metrics").text)
        assert c.post("/v1/matte", content=images.photo(), headers=JPEG).status_code == 200
        assert c.post("/v1/matte", content=b"", headers=JPEG).status_code == 400
        after = _samples(c.get("/metrics").text)

    def delta(name: str, **labels: str) -> float:
        key = (name, tuple(sorted(labels.items())))
        return after.get(key, 0.0) - before.get(key, 0.0)

    assert delta("matting_requests_total", endpoint="/v1/matte", status="200") == 1
    assert delta("matting_requests_total", endpoint="/v1/matte", status="400") == 1
    assert delta("matting_request_duration_seconds_count", endpoint="/v1/matte") == 2
    assert delta("matting_batch_size_count") == 1
    assert delta("matting_inference_duration_seconds_count") == 1
    assert delta("matting_queue_wait_seconds_count") == 1
    assert ("matting_queue_depth", ()) in after
    assert after["matting_ready", ()] == 1
    info = [k for k in after if k[0] == "matting_model_info"]
    assert info and dict(info[0][1])["backend"] == "onnxruntime"
    # Unknown paths share one label, so scanning cannot grow the series.
    assert all(dict(k[1]).get("endpoint") != "/nope" for k in after)


def _broken_models(tiny_model: Path, tmp: Path) -> dict[str, tuple[Path, str]]:
    """Models the service must refuse to serve, with what the refusal says."""
    import shutil

    from matting.checkpoint import save_checkpoint
    from matting.config import preset
    from matting.models.network import build_model
    from tests.export.conftest import TINY
    from tests.matting.test_checkpoint import _rewrite

    out: dict[str, tuple[Path, str]] = {"missing": (tmp / "nowhere", "manifest")}
    corrupt = tmp / "corrupt.safetensors"
    corrupt.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json" + bytes(64))
    out["corrupt-checkpoint"] = (corrupt, "corrupt")
    # The tiny model's header over ResNet-18 weights (checksum made to match).
    tiny = tmp / "tiny.safetensors"
    save_checkpoint(tiny, build_model(TINY))
    other = tmp / "other.safetensors"
    weights = {k: v.contiguous() for k, v in build_model(preset("resnet18")).state_dict().items()}
    _rewrite(tiny, other, weights)
    out["other-architecture"] = (other, "another architecture")
    tampered = tmp / "tampered"
    shutil.copytree(tiny_model, tampered)
    with open(tampered / "model.fp32.onnx", "r+b") as f:
        f.seek(300)
        f.write(b"\x00\x01\x02\x03")
    out["tampered-onnx"] = (tampered, "sha256")
    return out


@pytest.mark.parametrize(
    "case", ["missing", "corrupt-checkpoint", "other-architecture", "tampered-onnx"]
)
def test_a_model_that_cannot_load_is_never_served(
    tiny_model: Path, tmp_path: Path, case: str
) -> None:
    model, match = _broken_models(tiny_model, tmp_path)[case]
    server = start_server(tiny_settings(model, tmp_path), wait_ready=False)
    try:
        with server.client() as c:
            deadline = time.monotonic() + 60
            while server.state.load_error is None:
                assert not server.state.ready, "a broken model was served"
                assert time.monotonic() < deadline
                time.sleep(0.02)
            ready = c.get("/readyz")
            assert ready.status_code == 503 and ready.json()["status"] == "failed"
            assert match.lower() in ready.json()["detail"].lower(), ready.json()
            assert c.get("/livez").status_code == 503
            _error(c.post("/v1/matte", content=images.photo()), 503, match)
    finally:
        server.stop()


def test_shutdown_drains_in_flight_requests(tiny_model: Path, tmp_path: Path) -> None:
    server = start_server(tiny_settings(tiny_model, tmp_path))
    results: list[int] = []

    def send() -> None:
        with server.client() as c:
            r = c.post("/v1/matte", content=images.photo(1600, 2400, seed=2), headers=JPEG)
            results.append(r.status_code)

    t = threading.Thread(target=send)
    t.start()
    batcher = server.state.batcher
    assert batcher is not None
    while batcher.in_flight == 0 and t.is_alive():
        time.sleep(0.005)
    server.stop()  # as on SIGTERM: stop accepting, finish what is running
    t.join()
    assert results == [200]


def test_a_client_that_leaves_mid_upload_costs_nothing(live: LiveServer) -> None:
    """Half a body, then the socket closes: no 5xx is counted, the server goes on."""
    import socket
    from urllib.parse import urlsplit

    def count_5xx() -> float:
        with live.client() as c:
            samples = _samples(c.get("/metrics").text)
        return sum(
            v
            for (n, labels), v in samples.items()
            if n == "matting_requests_total" and dict(labels)["status"].startswith("5")
        )

    before = count_5xx()
    url = urlsplit(live.url)
    with socket.create_connection((url.hostname, url.port)) as s:
        s.sendall(
            b"POST /v1/matte HTTP/1.1\r\nHost: x\r\nContent-Type: image/jpeg\r\n"
            b"Content-Length: 100000\r\n\r\n" + b"\xff\xd8\xff" + bytes(1000)
        )
    time.sleep(0.5)
    with live.client() as c:
        assert c.post("/v1/matte", content=images.photo(32, 32)).status_code == 200
    assert count_5xx() == before
