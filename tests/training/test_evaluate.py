"""Evaluation on dataset folders: scoring, layouts, baseline, report and `matting eval`."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from scipy import ndimage

from matting import metrics
from matting.errors import InputError, MattingError
from training.evaluate import (
    blurred_mask_baseline,
    edge_band,
    evaluate_folder,
    find_dataset,
    read_label,
    read_trimap,
    score_matting,
    score_segmentation,
)

# --------------------------------------------------------------------------- helpers


def save(path: Path, arr: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path)


def soft_edge(h: int, w: int) -> np.ndarray:
    """uint8 matte: a vertical step at w // 2 blurred with sigma 2, the baseline's own blur."""
    step = np.zeros((h, w))
    step[:, w // 2 :] = 1.0
    return np.round(ndimage.gaussian_filter(step, 2.0) * 255).astype(np.uint8)


def make_matting(root: Path, sizes: dict[str, tuple[int, int]], trimap: bool = False) -> Path:
    """image/NAME.png whose red channel is the ground truth alpha/NAME.png (lossless)."""
    rng = np.random.default_rng(1)
    for name, (h, w) in sizes.items():
        gt = soft_edge(h, w)
        rgb = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        rgb[..., 0] = gt
        save(root / "image" / f"{name}.png", rgb)
        save(root / "alpha" / f"{name}.png", gt)
        if trimap:
            tri = np.where(gt >= 128, 255, 0).astype(np.uint8)
            tri[:, w // 2 - 3 : w // 2 + 3] = 128
            save(root / "trimap" / f"{name}.png", tri)
    return root


def square_mask(h: int, w: int, top: int, size: int) -> np.ndarray:
    mask = np.zeros((h, w), dtype=np.uint8)
    mask[top : top + size, top : top + size] = 255
    return mask


def make_segmentation(root: Path) -> dict[tuple[int, int], np.ndarray]:
    """images/NAME.jpg + masks/NAME.png; returns the alpha a fake model gives per image size."""
    rng = np.random.default_rng(2)
    alphas = {}
    for name, (h, w) in {"a": (16, 20), "b": (18, 24)}.items():
        mask = square_mask(h, w, 4, 8)
        save(root / "images" / f"{name}.jpg", rng.integers(0, 256, (h, w, 3), dtype=np.uint8))
        save(root / "masks" / f"{name}.png", mask)
        alphas[(h, w)] = np.clip(mask / 255.0 + rng.normal(0, 0.2, (h, w)), 0, 1)
    return alphas


def perfect(rgb: np.ndarray) -> np.ndarray:
    return rgb[..., 0].astype(np.float32) / 255.0


def hard(rgb: np.ndarray) -> np.ndarray:
    return (rgb[..., 0] >= 128).astype(np.float32)


# --------------------------------------------------------------------------- scoring


def test_score_segmentation_by_hand() -> None:
    mask = square_mask(10, 10, 3, 4)  # 16 foreground pixels, rows and columns 3..6
    pred = mask / 255.0
    pred[2, 4] = 1.0  # just above the square: distance 1, inside a band of 1
    pred[0, 0] = 0.5  # far corner: distance sqrt(18) to the square
    # Band of 1: the square's 12 border pixels and the 16 edge-adjacent background ones.
    assert edge_band(mask >= 128, 1).sum() == 28
    s = score_segmentation(pred, mask, band=1)
    assert s["iou"] == pytest.approx(16 / 18)  # 0.5 counts as foreground
    assert s["mse_outside_band"] == pytest.approx(0.25 / 72)
    assert s["mse"] == pytest.approx(1.25 / 100)
    assert s["sad"] == pytest.approx(1.5 / 1000)
    # Band 0 excludes nothing; band 7 covers the whole image (the region is empty: 0).
    assert score_segmentation(pred, mask, band=0)["mse_outside_band"] == pytest.approx(1.25 / 100)
    assert score_segmentation(pred, mask, band=7)["mse_outside_band"] == 0.0
    # A float 0/1 mask means the same as 0/255.
    assert score_segmentation(pred, mask / 255.0, band=1) == pytest.approx(s)


def test_score_segmentation_edge_cases() -> None:
    empty = np.zeros((6, 5), dtype=np.uint8)
    s = score_segmentation(np.zeros((6, 5)), empty)
    assert s == {"iou": 1.0, "mse_outside_band": 0.0, "mse": 0.0, "sad": 0.0}
    assert not edge_band(np.ones((4, 4), dtype=bool), 3).any()  # one class: no edge
    with pytest.raises(ValueError, match="band"):
        score_segmentation(np.zeros((6, 5)), empty, band=-1)
    with pytest.raises(ValueError, match="same shape"):
        score_segmentation(np.zeros((6, 4)), empty)


def test_score_matting_matches_metrics_and_region_rule() -> None:
    gt = np.array([[0.0, 0.05, 0.5], [0.95, 0.9, 1.0]])
    pred = np.full((2, 3), 0.1)
    s = score_matting(pred, gt)
    for k, v in metrics.evaluate(pred, gt).items():
        assert s[k] == v
    # 0.05 < alpha < 0.95 strictly: only 0.5 and 0.9 are in the transition region.
    assert s["trans_sad"] == pytest.approx((0.4 + 0.8) / 1000)
    assert s["trans_mse"] == pytest.approx((0.4**2 + 0.8**2) / 2)
    # With a trimap its unknown band (128) is the region instead.
    trimap = np.array([[0, 128, 128], [255, 255, 128]], dtype=np.uint8)
    t = score_matting(pred, gt, trimap)
    assert t["trans_sad"] == pytest.approx((0.05 + 0.4 + 0.9) / 1000)
    assert t["trans_mse"] == pytest.approx((0.05**2 + 0.4**2 + 0.9**2) / 3)
    assert t["sad"] == s["sad"]


def test_blurred_mask_baseline() -> None:
    alpha = np.zeros((9, 9), dtype=np.float32)
    alpha[:, 4:] = 0.6  # binarised to 1 from 0.5 up
    b = blurred_mask_baseline(alpha, sigma=1.0)
    assert b.shape == (9, 9) and b.min() >= 0.0 and b.max() <= 1.0
    assert b[4, 0] < 0.01 and b[4, 8] > 0.99 and 0.0 < b[4, 4] < 1.0
    assert np.array_equal(blurred_mask_baseline(alpha, sigma=0.0), alpha >= 0.5)


def test_label_readers(tmp_path: Path) -> None:
    Image.fromarray(np.array([[0, 65535, 32896]], dtype=np.uint16)).save(tmp_path / "a16.png")
    assert read_label(tmp_path / "a16.png") == pytest.approx(np.array([[0, 1.0, 128 / 255]]))
    save(tmp_path / "rgb.png", np.full((2, 2, 3), 255, dtype=np.uint8))
    assert read_label(tmp_path / "rgb.png").dtype == np.float32
    save(tmp_path / "tri.png", np.array([[0, 128, 200]], dtype=np.uint8))
    with pytest.raises(InputError, match="200"):
        read_trimap(tmp_path / "tri.png")
    (tmp_path / "junk.png").write_bytes(b"not a png")
    with pytest.raises(InputError, match=r"junk\.png"):
        read_label(tmp_path / "junk.png")


# --------------------------------------------------------------------------- folders


def test_matting_folder_baseline_and_beats(tmp_path: Path) -> None:
    root = make_matting(tmp_path / "m", {"a": (16, 20), "b": (18, 24), "c": (12, 16)})
    good = evaluate_folder(perfect, root, baseline=True, progress=False)
    assert good.layout == "matting" and [r.name for r in good.rows] == ["a", "b", "c"]
    assert good.mean["sad"] == 0.0 and good.mean["trans_mse"] == 0.0
    assert good.mean["baseline_sad"] > 0.0
    assert good.beats_baseline == {"sad": True, "trans_mse": True}
    assert good.settings == {"region": "0.05 < alpha < 0.95", "baseline_sigma": 2.0}

    # A hard mask loses to its own blur here: the ground truth is that blur.
    bad = evaluate_folder(hard, root, baseline=True, progress=False)
    assert bad.beats_baseline == {"sad": False, "trans_mse": False}
    gt = read_label(root / "alpha" / "b.png")
    row = bad.rows[1].metrics
    assert row["sad"] == pytest.approx(score_matting((gt >= 0.5).astype(np.float32), gt)["sad"])
    blurred = blurred_mask_baseline(gt >= 0.5)
    assert row["baseline_trans_mse"] == pytest.approx(score_matting(blurred, gt)["trans_mse"])
    assert bad.mean["sad"] == pytest.approx(np.mean([r.metrics["sad"] for r in bad.rows]))

    plain = evaluate_folder(hard, root, progress=False)  # baseline off by default
    assert plain.beats_baseline is None
    assert not any(k.startswith("baseline_") for k in plain.mean)


def test_matting_folder_with_trimaps(tmp_path: Path) -> None:
    root = make_matting(tmp_path / "m", {"a": (16, 20)}, trimap=True)
    report = evaluate_folder(hard, root, progress=False)
    gt = read_label(root / "alpha" / "a.png")
    tri = read_trimap(root / "trimap" / "a.png")
    hard_alpha = (gt >= 0.5).astype(np.float32)
    assert report.rows[0].metrics == pytest.approx(score_matting(hard_alpha, gt, tri))
    assert report.settings["region"] == "trimap unknown"


def test_segmentation_folder(tmp_path: Path) -> None:
    root = tmp_path / "s"
    alphas = make_segmentation(root)
    report = evaluate_folder(
        lambda rgb: alphas[rgb.shape[:2]], root, band=2, baseline=True, progress=False
    )
    assert report.layout == "segmentation" and report.beats_baseline is None
    assert report.settings == {"band": 2}
    for row, (hw, alpha) in zip(report.rows, alphas.items(), strict=True):
        mask = square_mask(*hw, 4, 8)
        assert row.metrics == pytest.approx(score_segmentation(alpha, mask, band=2), abs=1e-6)
    assert list(report.mean) == ["iou", "mse_outside_band", "mse", "sad"]
    assert report.mean["iou"] == pytest.approx(np.mean([r.metrics["iou"] for r in report.rows]))


def test_names_subset(tmp_path: Path) -> None:
    root = make_matting(tmp_path / "m", {"a": (16, 20), "b": (18, 24), "c": (12, 16)})
    report = evaluate_folder(perfect, root, names=["c", "a", "c"], progress=False)
    assert [r.name for r in report.rows] == ["c", "a"]
    with pytest.raises(InputError, match=r"2 name\(s\) not found.*x, y"):
        evaluate_folder(perfect, root, names=["a", "x", "y"], progress=False)
    with pytest.raises(InputError, match="empty"):
        evaluate_folder(perfect, root, names=[], progress=False)


def test_report_json_and_table(tmp_path: Path) -> None:
    root = make_matting(tmp_path / "m", {"a": (16, 20), "long_name": (12, 16)})
    report = evaluate_folder(hard, root, baseline=True, progress=False)
    doc = json.loads(json.dumps(report.to_json()))
    assert doc["layout"] == "matting" and doc["count"] == 2
    assert doc["beats_baseline"] == {"sad": False, "trans_mse": False}
    assert [im["name"] for im in doc["images"]] == ["a", "long_name"]
    assert set(doc["images"][0]) == {"name", *report.mean}
    assert doc["mean"]["baseline_sad"] == report.mean["baseline_sad"]

    table = report.to_table()
    lines = table.splitlines()
    header = lines[1]
    assert header.split() == ["name", "sad", "mse", "mad", "grad", "conn", "trans_sad", "trans_mse"]
    rows = {ln.split()[0]: ln for ln in lines if ln.split()[0] in ("a", "long_name", "mean")}
    assert set(rows) == {"a", "long_name", "mean"}
    assert all(len(ln) == len(header) for ln in rows.values())  # aligned columns
    assert f"{report.mean['sad']:.5f}" in rows["mean"]
    assert any(ln.startswith("baseline") for ln in lines)
    assert "sad not better" in lines[-1] and "trans_mse not better" in lines[-1]


# --------------------------------------------------------------------------- errors


def test_folder_errors(tmp_path: Path) -> None:
    def fails(root: Path, match: str, predict: Callable = perfect) -> None:
        with pytest.raises(InputError, match=match):
            evaluate_folder(predict, root, progress=False)

    fails(tmp_path / "nope", "no such folder")
    (tmp_path / "file").write_text("x")
    fails(tmp_path / "file", "not a folder")
    (tmp_path / "odd" / "pics").mkdir(parents=True)
    fails(tmp_path / "odd", r"unknown dataset layout; expected image/ \(or images/\).*pics/")

    empty = tmp_path / "empty"
    (empty / "images").mkdir(parents=True)
    (empty / "masks").mkdir()
    fails(empty, "dataset is empty")

    root = make_matting(tmp_path / "m", {"a": (16, 20), "b": (18, 24), "c": (12, 16)})
    (root / "alpha" / "b.png").unlink()
    (root / "alpha" / "c.png").unlink()
    fails(root, r"2 image\(s\) in .* have no alpha/NAME.png: b, c")

    root = make_matting(tmp_path / "t", {"a": (16, 20), "b": (18, 24)}, trimap=True)
    (root / "trimap" / "a.png").unlink()
    fails(root, "have no trimap/NAME.png: a")

    root = make_matting(tmp_path / "size", {"a": (16, 20)})
    save(root / "alpha" / "a.png", np.zeros((16, 21), dtype=np.uint8))
    fails(root, r"a.png is 20x16 pixels but .*a.png is 21x16")

    both = make_matting(tmp_path / "both", {"a": (16, 20)})
    (both / "masks").mkdir()
    (both / "images").mkdir()
    fails(both, "both alpha/ and masks/")


def test_predict_failures(tmp_path: Path) -> None:
    root = make_matting(tmp_path / "m", {"a": (16, 20)})

    def oom(rgb: np.ndarray) -> np.ndarray:
        raise RuntimeError("CUDA out of memory.\nTried to allocate 2 GiB")

    with pytest.raises(MattingError, match=r"a.png: prediction failed \(CUDA out of memory.\)$"):
        evaluate_folder(oom, root, progress=False)
    with pytest.raises(ValueError, match="shape"):
        evaluate_folder(lambda rgb: np.zeros((4, 4)), root, progress=False)
    assert find_dataset(root).samples[0].trimap is None


# --------------------------------------------------------------------------- CLI


def run_cli(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "matting.cli", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_cli_eval(tmp_path: Path) -> None:
    ck = tmp_path / "ck.safetensors"
    init = run_cli("checkpoint", "init", "-o", ck)
    assert init.returncode == 0, init.stderr
    root = make_matting(tmp_path / "data", {"x1": (48, 64), "x2": (48, 64), "x3": (48, 64)})
    split = tmp_path / "split.txt"
    split.write_text("x1\n\n# held out\nx3\n")
    out = tmp_path / "report.json"
    args = ["eval", "--checkpoint", ck, "--data", root, "--device", "cpu", "--json", out]
    proc = run_cli(*args, "--split-file", split, "--precision", "fp32", "-q")
    assert proc.returncode == 0, proc.stderr
    names = [ln.split()[0] for ln in proc.stdout.splitlines() if ln.strip()]
    assert "x1" in names and "x3" in names and "x2" not in names
    assert "mean" in names and "baseline" in names
    doc = json.loads(out.read_text())
    assert doc["checkpoint"] == str(ck) and doc["count"] == 2
    assert [im["name"] for im in doc["images"]] == ["x1", "x3"]
    assert set(doc["beats_baseline"]) == {"sad", "trans_mse"}

    bad = run_cli("eval", "--checkpoint", ck, "--data", tmp_path / "missing")
    assert bad.returncode == 1 and "Traceback" not in bad.stderr
    lines = [ln for ln in bad.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and "no such folder" in lines[0]
