"""Screenshots of the web page with a real model on a real photo (for people, not CI).

    python examples/web_screenshots.py --out shots/

Serves the app on loopback (the shipped model on PyTorch, video jobs on an embedded
redis-server), drives Debian's Chromium through Playwright: the image flow on
examples/portrait.jpg over a generated backdrop, the alpha view, and a video job on a
short pan across the same photo, each at desktop and phone widths.
"""

from __future__ import annotations

import argparse
import tempfile
import threading
import time
from fractions import Fraction
from pathlib import Path

import av
import httpx
import numpy as np
from PIL import Image

HERE = Path(__file__).resolve().parent
DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 390, "height": 844}
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
]


def pan_clip(photo: Path, path: Path, frames: int = 36, size: tuple[int, int] = (400, 320)) -> None:
    """An H.264 clip that pans slowly across the photo: real content, a moving camera."""
    rgb = np.asarray(Image.open(photo).convert("RGB"))
    h, w = size
    scale = max(h / rgb.shape[0], (w + frames * 2) / rgb.shape[1])
    big = np.asarray(
        Image.fromarray(rgb).resize((round(rgb.shape[1] * scale), round(rgb.shape[0] * scale)))
    )
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=Fraction(12))
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        for t in range(frames):
            top = (big.shape[0] - h) // 2
            frame = np.ascontiguousarray(big[top : top + h, 2 * t : 2 * t + w])
            for p in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                out.mux(p)
        for p in stream.encode(None):
            out.mux(p)


def backdrop(path: Path) -> None:
    yy, xx = np.mgrid[0:480, 0:640].astype(np.float32)
    sky = np.dstack([90 + xx / 8, 150 + yy / 6, 230 - yy / 10]).clip(0, 255).astype(np.uint8)
    Image.fromarray(sky).save(path)


def serve(settings: object) -> tuple[str, object]:
    import uvicorn

    from service.app import create_app

    app = create_app(settings)  # type: ignore[arg-type]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning"))
    threading.Thread(target=server.run, daemon=True).start()
    while not server.started:
        time.sleep(0.05)
    port = server.servers[0].sockets[0].getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 300
    while httpx.get(f"{url}/readyz").status_code != 200:  # the model loads and warms up
        if time.monotonic() > deadline:
            raise RuntimeError("the service did not turn ready")
        time.sleep(0.2)
    return url, server


def shoot(page: object, path: Path, viewport: dict[str, int]) -> None:
    page.set_viewport_size(viewport)  # type: ignore[attr-defined]
    page.wait_for_timeout(200)  # type: ignore[attr-defined]
    page.screenshot(path=str(path), full_page=True)  # type: ignore[attr-defined]
    print(path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--model", default=None, help="checkpoint (default: the shipped one)")
    parser.add_argument("--image", type=Path, default=HERE / "portrait.jpg")
    parser.add_argument("--chromium", default="/usr/bin/chromium")
    args = parser.parse_args()

    from playwright.sync_api import sync_playwright

    from matting.inference import default_checkpoint
    from service.settings import Settings

    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        clip, sky = tmp / "pan.mp4", tmp / "sky.png"
        pan_clip(args.image, clip)
        backdrop(sky)
        settings = Settings(
            model=str(args.model or default_checkpoint()),
            device="cpu",
            storage_dir=tmp / "jobs",
            warmup_sizes=["256x256"],
            chunk_frames=12,
        )
        url, server = serve(settings)
        try:
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=args.chromium, args=CHROMIUM_ARGS)
                page = browser.new_page(viewport=DESKTOP)
                page.set_default_timeout(120_000)
                page.goto(url)
                page.locator("#video-form").wait_for()
                page.set_input_files("#image-file", str(args.image))
                page.locator("#image[data-state=done]").wait_for()
                page.set_input_files("#bg-file", str(sky))
                page.locator("#image[data-background=image]").wait_for()
                shoot(page, args.out / "image-desktop.png", DESKTOP)
                shoot(page, args.out / "image-phone.png", PHONE)
                page.set_viewport_size(DESKTOP)
                page.check("input[name=view][value=alpha]")
                shoot(page, args.out / "image-alpha-desktop.png", DESKTOP)
                page.set_input_files("#video-file", str(clip))
                page.click("#video-submit")
                page.locator("#video[data-state=succeeded]").wait_for()
                page.evaluate(
                    """async () => { const v = document.getElementById('video-player');
                      await new Promise((ok) => v.readyState >= 2 ? ok() : v.onloadeddata = ok);
                      v.currentTime = 1.5; await new Promise((ok) => v.onseeked = ok);
                      await new Promise((ok) => setTimeout(ok, 500)); }"""
                )
                shoot(page, args.out / "video-desktop.png", DESKTOP)
                shoot(page, args.out / "video-phone.png", PHONE)
                browser.close()
        finally:
            server.should_exit = True  # type: ignore[attr-defined]
            time.sleep(1.0)


if __name__ == "__main__":
    main()
