"""Draw examples/portrait.jpg: a synthetic head-and-shoulders figure with loose hair
strands over a blurred two-tone backdrop. Made here, so the repository ships no
third-party photo; rerun to regenerate it."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

W, H, SS = 640, 800, 2  # output size and supersampling factor for smooth edges


def backdrop(rng: np.random.Generator) -> Image.Image:
    y = np.linspace(0, 1, H * SS)[:, None, None]
    top, bottom = np.array([70, 110, 150]), np.array([190, 160, 120])
    img = Image.fromarray(((1 - y) * top + y * bottom).repeat(W * SS, 1).astype(np.uint8))
    draw = ImageDraw.Draw(img)
    for _ in range(40):  # out-of-focus lights
        cx, cy, r = rng.uniform(0, W * SS), rng.uniform(0, H * SS), rng.uniform(20, 90)
        colour = tuple(int(c) for c in rng.integers(120, 255, 3))
        draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=colour)
    return img.filter(ImageFilter.GaussianBlur(25))


def figure(img: Image.Image, rng: np.random.Generator) -> None:
    d = ImageDraw.Draw(img)
    s = SS
    d.ellipse((120 * s, 560 * s, 520 * s, 900 * s), fill=(40, 60, 95))  # shoulders
    d.rectangle((280 * s, 430 * s, 360 * s, 600 * s), fill=(205, 160, 130))  # neck
    d.ellipse((215 * s, 190 * s, 425 * s, 470 * s), fill=(220, 175, 145))  # face
    d.chord((195 * s, 150 * s, 445 * s, 400 * s), 180, 360, fill=(60, 38, 25))  # hair cap
    for _ in range(700):  # loose strands: thin curved polylines leaving the head
        a = rng.uniform(math.pi * 0.95, math.pi * 2.05)
        x, y = 320 + 118 * math.cos(a), 290 + 125 * math.sin(a)
        length, bend = rng.uniform(40, 170), rng.normal(0, 0.012)
        pts = []
        for _ in range(24):
            a += bend
            x += length / 24 * math.cos(a) * 0.9
            y += length / 24 * (math.sin(a) * 0.6 + 0.5)
            pts.append((x * s, y * s))
        shade = int(rng.integers(35, 95))
        d.line(pts, fill=(shade, int(shade * 0.7), int(shade * 0.45)), width=1)


def main() -> None:
    rng = np.random.default_rng(7)
    img = backdrop(rng)
    figure(img, rng)
    out = Path(__file__).with_name("portrait.jpg")
    img.resize((W, H), Image.LANCZOS).save(out, quality=90)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
