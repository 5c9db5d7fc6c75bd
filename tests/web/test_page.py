"""The page at / in a real headless Chromium against real servers on loopback.

Image flow: drop an image, compare the alpha the page shows with the API's own
answer for the same file, replace the background (colour, then an image), download.
Video flow, on the real /v1/videos routes, queue and worker with auth on: submit a
clip with the key and follow it to 100% and a playable result (over the events
stream, and by polling when that request fails on the network); cancel a running job.
Auth: the page asks for the key, sends it, and says when it is wrong.
Screenshots go to $MATTING_SCREENSHOT_DIR (else a pytest temporary directory).
"""

from __future__ import annotations

import base64
import contextlib
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple
from urllib.parse import parse_qsl, urlsplit

import numpy as np
import pytest

from service.routes.web import STATIC_DIR
from tests.service.conftest import LiveServer, start_server, tiny_settings
from tests.web import media
from tests.web.conftest import DESKTOP, PHONE

KEY = "s3cret-key"
VIDEO_KEY = "secret-key"
VIDEO_AUTH = {"Authorization": f"Bearer {VIDEO_KEY}"}
TIMEOUT_MS = 30_000

_READ_CANVAS = """(id) => {
  const c = document.getElementById(id);
  const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
  let s = '';
  for (let i = 0; i < d.length; i += 8192) {
    s += String.fromCharCode.apply(null, d.subarray(i, i + 8192));
  }
  return [c.width, c.height, btoa(s)];
}"""

_MAKE_DROP = """([b64, name, type]) => {
  const bytes = Uint8Array.from(atob(b64), (ch) => ch.charCodeAt(0));
  const dt = new DataTransfer();
  dt.items.add(new File([bytes], name, { type }));
  return dt;
}"""

# Every form control has a label (its own <label>, a wrapping one or aria-label).
_UNLABELLED = """() => [...document.querySelectorAll('input, select, textarea, button')]
  .filter((el) => !(el.labels && el.labels.length) && !el.getAttribute('aria-label')
    && !(el.tagName === 'BUTTON' && el.textContent.trim()))
  .map((el) => el.id || el.outerHTML)"""


# ---------------------------------------------------------------- servers


@pytest.fixture(scope="module")
def image_server(
    tiny_model: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveServer]:
    """Auth off, no video jobs: the image flow on its own."""
    tmp = tmp_path_factory.mktemp("web-image")
    server = start_server(tiny_settings(tiny_model, tmp, video_jobs=False, storage_dir=tmp / "j"))
    yield server
    server.stop()


@pytest.fixture(scope="module")
def auth_server(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    tmp = tmp_path_factory.mktemp("web-auth")
    settings = tiny_settings(tiny_model, tmp, api_keys=KEY, video_jobs=False, storage_dir=tmp / "j")
    server = start_server(settings)
    yield server
    server.stop()


# ---------------------------------------------------------------- helpers


@contextlib.contextmanager
def open_page(browser: Any, url: str, viewport: dict[str, int] = DESKTOP) -> Iterator[Any]:
    """A fresh context (so a fresh sessionStorage) on url; fails on any script error."""
    context = browser.new_context(viewport=viewport, accept_downloads=True)
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    # Script errors fail the test; the browser's own note on an HTTP error answer
    # (which the page handles and shows) does not.
    page.on(
        "console",
        lambda m: (
            errors.append(m.text)
            if m.type == "error" and not m.text.startswith("Failed to load resource")
            else None
        ),
    )
    try:
        page.goto(url)
        yield page
        assert not errors, errors
    finally:
        context.close()


def wait_until(page: Any, expression: str, timeout_s: float = TIMEOUT_MS / 1000) -> None:
    """Poll a JS expression (wait_for_function evaluates strings, which the page's CSP forbids)."""
    deadline = time.monotonic() + timeout_s
    while not page.evaluate(expression):
        assert time.monotonic() < deadline, f"timed out waiting for {expression}"
        page.wait_for_timeout(50)


def canvas(page: Any, element_id: str) -> np.ndarray:
    width, height, data = page.evaluate(_READ_CANVAS, element_id)
    return np.frombuffer(base64.b64decode(data), np.uint8).reshape(height, width, 4)


def drop(page: Any, selector: str, data: bytes, name: str, mime: str) -> None:
    """Drop a file on the element, as a drag from the desktop would."""
    transfer = page.evaluate_handle(_MAKE_DROP, [base64.b64encode(data).decode(), name, mime])
    page.dispatch_event(selector, "drop", {"dataTransfer": transfer})


def api_matte(server: LiveServer, image: bytes, output: str, **headers: str) -> np.ndarray:
    with server.client(headers=headers) as client:
        r = client.post(
            f"/v1/matte?output={output}&format=png",
            content=image,
            headers={"Content-Type": "image/png"},
        )
    assert r.status_code == 200, r.text
    return media.decode(r.content)


def expected_over(rgba: np.ndarray, background: np.ndarray) -> np.ndarray:
    a = rgba[..., 3:4].astype(np.float64) / 255
    return rgba[..., :3] * a + background * (1 - a)


def assert_fits(page: Any, width: int) -> None:
    """Nothing wider than the viewport: no sideways scrolling on a phone."""
    assert page.evaluate("document.documentElement.scrollWidth") <= width


def screenshot(page: Any, path: Path, viewport: dict[str, int]) -> None:
    page.set_viewport_size(viewport)
    page.wait_for_timeout(100)  # let the layout settle after a resize
    assert_fits(page, viewport["width"])
    page.screenshot(path=str(path), full_page=True)


# ---------------------------------------------------------------- no browser


def test_page_and_static_files_are_served(image_server: LiveServer) -> None:
    with image_server.client() as client:
        page = client.get("/")
        assert page.status_code == 200
        assert page.headers["content-type"].startswith("text/html")
        assert "script-src 'self'" in page.headers["content-security-policy"]
        for name, kind in (("app.js", "text/javascript"), ("style.css", "text/css")):
            r = client.get(f"/static/{name}")
            assert r.status_code == 200 and r.headers["content-type"].startswith(kind)
        for bad in ("/static/index.htm", "/static/..%2Fapp.py", "/static/secret.txt"):
            r = client.get(bad)
            assert r.status_code == 404 and r.json()["error"]["type"] == "HTTPError"
        # The page is not part of the API's schema.
        assert "/" not in client.get("/openapi.json").json()["paths"]
    # Shipped as they are and self-contained: nothing from another origin.
    for name in ("index.html", "app.js", "style.css"):
        text = (STATIC_DIR / name).read_text(encoding="utf-8")
        assert not re.search(r"(https?:)?//[a-z0-9.-]+\.[a-z]{2,}", text, re.I), name


# ---------------------------------------------------------------- image flow


def test_image_flow(browser: Any, image_server: LiveServer, shots: Path) -> None:
    image = media.disc_on_gradient()
    want_alpha = api_matte(image_server, image, "alpha")
    want_rgba = api_matte(image_server, image, "rgba")
    assert want_alpha.shape == (120, 160)

    with open_page(browser, image_server.url) as page:
        assert page.evaluate(_UNLABELLED) == []
        # The key form stays hidden: auth is off. The video section says it is not offered.
        assert page.locator("#auth").is_hidden()
        page.locator("#video-unavailable").wait_for()

        # Keyboard: skip link, then the image picker, whose drop zone shows the focus.
        page.keyboard.press("Tab")
        page.keyboard.press("Tab")
        assert page.evaluate("document.activeElement.id") == "image-file"
        outline = page.evaluate(
            "getComputedStyle(document.getElementById('image-drop')).outlineStyle"
        )
        assert outline == "solid"

        drop(page, "#image-drop", image, "disc.png", "image/png")
        page.locator("#image[data-state=done]").wait_for()
        assert "Done: 160 × 120" in page.locator("#image-status").inner_text()

        # The alpha the page shows is the API's own answer for the same file.
        shown = canvas(page, "alpha-canvas")
        assert shown.shape == (120, 160, 4)
        assert (shown[..., 3] == 255).all()
        np.testing.assert_array_equal(shown[..., 0], want_alpha)
        # The original sits under the result.
        before = canvas(page, "before-canvas")[..., :3].astype(int)
        assert np.abs(before - media.decode(image)).max() <= 1

        # Before/after slider: a range input, moved with the keyboard.
        page.focus("#split")
        for _ in range(10):
            page.keyboard.press("ArrowLeft")
        assert page.input_value("#split") == "40"
        assert page.locator("#split-out").inner_text() == "40%"
        split = page.evaluate(
            "getComputedStyle(document.getElementById('stage')).getPropertyValue('--split')"
        )
        assert split.strip() == "40%"

        # A colour background, composited on the page's canvas.
        page.fill("#bg-color", "#00ff00")
        assert page.is_checked("input[name=bg][value=color]")
        shown = canvas(page, "after-canvas").astype(np.float64)
        want = expected_over(want_rgba, np.array([0, 255, 0]))
        assert (shown[..., 3] == 255).all()
        assert np.abs(shown[..., :3] - want).max() <= 2.0
        screenshot(page, shots / "image-desktop.png", DESKTOP)
        screenshot(page, shots / "image-phone.png", PHONE)
        page.set_viewport_size(DESKTOP)

        # What is downloaded is what is shown (PNG is lossless: exactly the canvas).
        with page.expect_download() as info:
            page.click("#download")
        saved = Path(info.value.path()).read_bytes()
        assert info.value.suggested_filename == "disc-cutout.png"
        np.testing.assert_array_equal(media.decode(saved), canvas(page, "after-canvas"))

        # An image background, scaled to cover.
        page.set_input_files(
            "#bg-file",
            files=[
                {"name": "red.png", "mimeType": "image/png", "buffer": media.solid((255, 0, 0))}
            ],
        )
        page.locator("#image[data-background=image]").wait_for()
        shown = canvas(page, "after-canvas").astype(np.float64)
        want = expected_over(want_rgba, np.array([255, 0, 0]))
        assert np.abs(shown[..., :3] - want).max() <= 2.0

        # The alpha view, downloaded as WebP.
        page.check("input[name=view][value=alpha]")
        assert page.locator("#alpha-canvas").is_visible()
        assert page.locator("#after-canvas").is_hidden()
        assert page.locator("#download").inner_text() == "Download alpha matte"
        page.select_option("#format", "image/webp")
        with page.expect_download() as info:
            page.click("#download")
        saved = Path(info.value.path()).read_bytes()
        assert saved[:4] == b"RIFF" and saved[8:12] == b"WEBP"
        assert info.value.suggested_filename == "disc-alpha.webp"
        assert media.decode(saved).shape[:2] == (120, 160)
        screenshot(page, shots / "image-alpha-desktop.png", DESKTOP)


def test_image_errors_are_shown(browser: Any, image_server: LiveServer) -> None:
    with open_page(browser, image_server.url) as page:
        page.set_input_files(
            "#image-file",
            files=[{"name": "notes.png", "mimeType": "image/png", "buffer": b"hello"}],
        )
        page.locator("#image[data-state=error]").wait_for()
        status = page.locator("#image-status")
        assert "Could not cut out notes.png" in status.inner_text()
        assert "(415)" in status.inner_text() or "(400)" in status.inner_text()
        assert status.get_attribute("aria-live") == "polite"


# ---------------------------------------------------------------- auth


def test_auth_asks_for_the_key_and_sends_it(
    browser: Any, auth_server: LiveServer, shots: Path
) -> None:
    image = media.disc_on_gradient()
    want_alpha = api_matte(auth_server, image, "alpha", Authorization=f"Bearer {KEY}")
    with open_page(browser, auth_server.url) as page:
        key = page.get_by_role("textbox", name="API key")
        key.wait_for()
        assert key.get_attribute("type") == "password"

        key.fill("wrong-key")
        key.press("Enter")
        status = page.locator("#auth-status")
        page.locator("#auth-status", has_text="refused").wait_for()
        assert "unknown API key" in status.inner_text()
        assert "error" in (status.get_attribute("class") or "")
        assert page.evaluate("sessionStorage.length") == 0
        screenshot(page, shots / "auth-phone.png", PHONE)
        page.set_viewport_size(DESKTOP)

        key.fill(KEY)
        page.click("text=Use key")
        page.locator("#auth-status", has_text="accepted").wait_for()
        assert page.evaluate("sessionStorage.getItem('matting.apiKey')") == KEY
        assert page.evaluate("localStorage.length") == 0
        assert key.is_hidden()  # the form folds away, leaving a way to forget the key
        assert page.get_by_role("button", name="Forget key").is_visible()

        with page.expect_request("**/v1/matte?*") as sent:
            page.set_input_files(
                "#image-file", files=[{"name": "d.png", "mimeType": "image/png", "buffer": image}]
            )
        assert sent.value.headers["authorization"] == f"Bearer {KEY}"
        page.locator("#image[data-state=done]").wait_for()
        np.testing.assert_array_equal(canvas(page, "alpha-canvas")[..., 0], want_alpha)

        # A key that stops working (rotated) brings the form back with the reason.
        page.evaluate("sessionStorage.setItem('matting.apiKey', 'rotated')")
        page.set_input_files(
            "#image-file", files=[{"name": "e.png", "mimeType": "image/png", "buffer": image}]
        )
        page.locator("#image[data-state=error]").wait_for()
        assert "(401)" in page.locator("#image-status").inner_text()
        assert "unknown API key" in status.inner_text()
        assert page.evaluate("document.activeElement.id") == "api-key"

        page.get_by_role("button", name="Forget key").click()
        page.locator("#auth-status", has_text="Enter the API key").wait_for()
        assert page.evaluate("sessionStorage.length") == 0
        assert key.is_visible()


# ---------------------------------------------------------------- video flow


@pytest.fixture(scope="module")
def video_server(
    tiny_model: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveServer]:
    """The real /v1/videos routes, with the app's own redis-server and in-process worker
    (ONNX on the tiny model) and auth on. Chunks of 2 frames: progress moves in small
    steps and a cancel takes effect at once."""
    tmp = tmp_path_factory.mktemp("web-video")
    settings = tiny_settings(
        tiny_model,
        tmp,
        api_keys=VIDEO_KEY,
        video_jobs=True,
        chunk_frames=2,
        workers=1,
        storage_dir=tmp / "jobs",
    )
    server = start_server(settings)
    try:
        with server.client(headers=VIDEO_AUTH) as client:
            assert "/v1/videos" in client.get("/openapi.json").json()["paths"]
            assert client.get("/v1/videos/" + "0" * 32).status_code == 404
        with server.client() as client:  # the key is needed
            assert client.get("/v1/videos/" + "0" * 32).status_code == 401
        yield server
    finally:
        server.stop()


def api_job(server: LiveServer, job_id: str) -> dict[str, Any]:
    with server.client(headers=VIDEO_AUTH) as client:
        r = client.get(f"/v1/videos/{job_id}")
    assert r.status_code == 200, r.text
    job: dict[str, Any] = r.json()
    return job


def enter_key(page: Any, key: str) -> None:
    """The page asks for the key (auth is on); give it."""
    box = page.get_by_role("textbox", name="API key")
    box.wait_for()
    box.fill(key)
    page.keyboard.press("Enter")
    page.locator("#auth-status", has_text="accepted").wait_for()


class ApiRequest(NamedTuple):
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]


def record_api_requests(page: Any) -> list[ApiRequest]:
    """Every /v1/ request the page makes, in order (aborted ones too)."""
    seen: list[ApiRequest] = []

    def note(request: Any) -> None:
        url = urlsplit(request.url)
        if url.path.startswith("/v1/"):
            query = dict(parse_qsl(url.query))
            seen.append(ApiRequest(request.method, url.path, query, request.headers))

    page.on("request", note)
    return seen


def job_id_of(requests: list[ApiRequest]) -> str:
    for r in requests:
        if m := re.fullmatch(r"/v1/videos/([0-9a-f]+)(/.*)?", r.path):
            return m.group(1)
    raise AssertionError(f"no job request in {requests}")


def assert_all_keyed(requests: list[ApiRequest]) -> None:
    for r in requests:
        assert r.headers.get("authorization") == f"Bearer {VIDEO_KEY}", (r.method, r.path)


def pick_clip(page: Any, clip: bytes, name: str = "clip.mp4") -> None:
    page.locator("#video-form").wait_for()
    page.set_input_files(
        "#video-file", files=[{"name": name, "mimeType": "video/mp4", "buffer": clip}]
    )


def run_video_flow(page: Any, clip: bytes, ext: str = "webm") -> dict[str, Any]:
    """Pick a clip, process it, wait for the result; answers what the page showed."""
    page.locator("#video-form").wait_for()
    # Record every progress value the bar shows, to see it move live.
    page.evaluate(
        """() => {
      window.seenProgress = [];
      const bar = document.getElementById('video-progress');
      const seen = () => window.seenProgress.push(Number(bar.getAttribute('aria-valuenow')));
      const only = { attributes: true, attributeFilter: ['aria-valuenow'] };
      new MutationObserver(seen).observe(bar, only);
    }"""
    )
    pick_clip(page, clip)
    page.click("#video-submit")
    page.locator(
        "#video:is([data-state=succeeded], [data-state=failed], [data-state=error],"
        " [data-state=cancelled])"
    ).wait_for(timeout=60_000)
    status = page.locator("#video-status").inner_text()
    assert page.locator("#video").get_attribute("data-state") == "succeeded", status
    bar = page.locator("#video-progress")
    assert bar.get_attribute("role") == "progressbar"
    assert bar.get_attribute("aria-valuenow") == "100"
    assert page.locator("#video-percent").inner_text() == "100%"
    wait_until(page, "document.getElementById('video-player').readyState >= 2")
    player = page.evaluate(
        """() => { const v = document.getElementById('video-player');
          return { src: v.src, resultUrl: v.dataset.resultUrl, width: v.videoWidth,
                   height: v.videoHeight, error: v.error && v.error.code }; }"""
    )
    assert player["src"].startswith("blob:") and player["error"] is None
    assert re.fullmatch(r"/v1/videos/[0-9a-f]+/result", player["resultUrl"])
    # It plays: time moves. (Paused again, the screenshots show a frame, not a spinner.)
    played = page.evaluate(
        """async () => {
          const v = document.getElementById('video-player');
          await v.play();
          await new Promise((done) => setTimeout(done, 300));
          v.pause();
          return v.currentTime;
        }"""
    )
    assert played > 0
    link = page.locator("#video-download")
    assert link.is_visible() and link.get_attribute("download") == f"clip-matte.{ext}"
    return {**player, "seen": page.evaluate("window.seenProgress"), "status": status}


def assert_moved_live(seen: list[int]) -> None:
    """The bar went through values between 0 and 100, never backwards."""
    assert any(0 < v < 100 for v in seen), seen
    assert seen == sorted(seen), seen


def test_video_flow(browser: Any, video_server: LiveServer, shots: Path) -> None:
    """Auth on: the page asks for the key, submits, follows the events to 100% and plays
    the result; every request it makes carries the key."""
    frames = 60  # about two seconds of work: the events show steps on the way
    with open_page(browser, video_server.url) as page:
        requests = record_api_requests(page)
        enter_key(page, VIDEO_KEY)
        assert page.locator("#video-unavailable").is_hidden()
        seen = run_video_flow(page, media.mp4_clip(frames=frames))
        assert (seen["width"], seen["height"]) == (96, 64)
        assert_moved_live(seen["seen"])
        screenshot(page, shots / "video-desktop.png", DESKTOP)
        screenshot(page, shots / "video-phone.png", PHONE)

    job_id = job_id_of(requests)
    calls = [(r.method, r.path) for r in requests]
    assert ("GET", f"/v1/videos/{job_id}/events") in calls
    assert ("GET", f"/v1/videos/{job_id}/result") in calls
    assert_all_keyed(requests)
    (post,) = [r for r in requests if r.method == "POST"]
    assert post.path == "/v1/videos" and post.query == {"output": "webm"}
    assert post.headers["content-type"] == "video/mp4"
    assert re.fullmatch(r"[0-9a-f]{32}", post.headers["idempotency-key"])

    job = api_job(video_server, job_id)
    assert job["state"] == "succeeded" and job["output"] == "webm"
    assert job["frames_done"] == job["frames_total"] == frames


def test_video_flow_polls_when_the_events_stream_fails(
    browser: Any, video_server: LiveServer
) -> None:
    """The events request fails on the network: the page asks for the status once a
    second instead. Also the composite output on a chosen colour (an MP4 that plays)."""
    with open_page(browser, video_server.url) as page:
        requests = record_api_requests(page)
        page.route("**/v1/videos/*/events", lambda route: route.abort("failed"))
        enter_key(page, VIDEO_KEY)
        page.select_option("#video-output", "composite")
        assert page.locator("#video-color").is_visible()
        page.fill("#video-color", "#112233")
        seen = run_video_flow(page, media.mp4_clip(frames=120), ext="mp4")
        assert (seen["width"], seen["height"]) == (96, 64)
        assert_moved_live(seen["seen"])

    job_id = job_id_of(requests)
    calls = [(r.method, r.path) for r in requests]
    assert ("GET", f"/v1/videos/{job_id}/events") in calls
    assert calls.count(("GET", f"/v1/videos/{job_id}")) >= 2, calls
    assert_all_keyed(requests)
    (post,) = [r for r in requests if r.method == "POST"]
    assert post.query == {"output": "composite", "background_color": "#112233"}
    job = api_job(video_server, job_id)
    assert job["state"] == "succeeded" and job["output"] == "composite"


def test_video_flow_cancel(browser: Any, video_server: LiveServer) -> None:
    """Cancel while the worker is on the job: the page and the API both say cancelled."""
    with open_page(browser, video_server.url) as page:
        requests = record_api_requests(page)
        enter_key(page, VIDEO_KEY)
        pick_clip(page, media.mp4_clip(frames=120), "long.mp4")
        page.click("#video-submit")
        # The worker is on it: the page shows how many frames it has done.
        page.locator("#video[data-state=running] #video-detail", has_text="of 120").wait_for()
        page.click("#video-cancel")
        page.locator("#video[data-state=cancelled]").wait_for()
        assert "cancelled" in page.locator("#video-status").inner_text()
        assert page.locator("#video-cancel").is_hidden()
        assert page.locator("#video-submit").is_enabled()
        assert page.locator("#video-result").is_hidden()

    job_id = job_id_of(requests)
    assert ("DELETE", f"/v1/videos/{job_id}") in [(r.method, r.path) for r in requests]
    assert_all_keyed(requests)
    job = api_job(video_server, job_id)
    assert job["state"] == "cancelled", job
    assert job["frames_done"] < job["frames_total"] == 120
    with video_server.client(headers=VIDEO_AUTH) as client:
        r = client.get(f"/v1/videos/{job_id}/result")
    assert r.status_code == 409 and r.json()["error"]["type"] == "JobNotReadyError"
