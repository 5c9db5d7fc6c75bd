"""Folder layouts, backgrounds, zip pairing, batch mixture and augmentation."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from matting.errors import InputError
from tests.training.conftest import write_pairs
from training import augment
from training.config import DataSource, TrainConfig, load_config
from training.data.mixture import allocate, build_mixture, open_source
from training.data.sources import (
    Backgrounds,
    DrawParams,
    SegmentationSource,
    SyntheticSource,
    epoch_pick,
    guess_kind,
    paste_over,
)
from training.steps import prepare

PARAMS = DrawParams(seed=0, crop=32, scale_min=0.75, scale_max=1.5, seg_band=2, trimap_radius=1)


def _cfg(tmp_path: Path, sources: list[DataSource], batch: int = 4) -> TrainConfig:
    return TrainConfig(data=sources, crop=32, batch_size=batch, output=tmp_path / "run")


def test_epoch_pick_is_a_permutation_per_pass() -> None:
    first = [epoch_pick(0, 1, i, 7) for i in range(7)]
    second = [epoch_pick(0, 1, i, 7) for i in range(7, 14)]
    assert sorted(first) == sorted(second) == list(range(7))
    assert first != second  # a new order each epoch


def test_allocate_shares() -> None:
    assert allocate([3, 1], 8) == [0] * 6 + [1] * 2
    assert allocate([1, 1, 1], 4).count(0) >= 1 and len(allocate([1, 1, 1], 4)) == 4
    assert allocate([100, 1], 4) == [0, 0, 0, 1]  # every source gets a slot
    with pytest.raises(ValueError):
        allocate([], 4)


def test_segmentation_source_and_split(tmp_path: Path) -> None:
    root = write_pairs(tmp_path / "seg", "images", "masks", 4, (40, 30), 0)
    (tmp_path / "out.txt").write_text("# held out\n001\n\n003\n")
    src = SegmentationSource(root, None, tmp_path / "out.txt")
    assert [name for name, _, _ in src.items] == ["000", "002"]
    s = src.draw(np.random.default_rng(0), PARAMS, 0)
    assert s.fg.shape == (3, 32, 32) and s.alpha.shape == (1, 32, 32)
    assert set(torch.unique(s.alpha).tolist()) <= {0.0, 1.0}
    assert not s.exact and not s.layers
    edge = s.semantic == 1  # transition class on the mask edge only
    assert edge.any() and (s.semantic[s.alpha[0] == 1] != 0).all()


def test_layouts_and_errors(tmp_path: Path) -> None:
    fg = write_pairs(tmp_path / "fgset", "fg", "alpha", 3, (36, 36), 2)
    bgs = write_pairs(tmp_path / "bgs", "images", "masks", 2, (60, 60), 3)
    ia = write_pairs(tmp_path / "ia", "image", "alpha", 2, (36, 36), 4)
    video = tmp_path / "vm"
    for clip in ("0000", "0001"):
        write_pairs(tmp_path / "tmpclip" / clip, "fgr", "pha", 2, (30, 40), 5)
        (video / "fgr").mkdir(parents=True, exist_ok=True)
        (video / "pha").mkdir(parents=True, exist_ok=True)
        (tmp_path / "tmpclip" / clip / "fgr").rename(video / "fgr" / clip)
        (tmp_path / "tmpclip" / clip / "pha").rename(video / "pha" / clip)
    sources = [
        DataSource(kind="foreground", path=fg, backgrounds=bgs),
        DataSource(kind="image_alpha", path=ia),
        DataSource(kind="video", path=video, backgrounds=bgs),
        DataSource(kind="synthetic", backgrounds=bgs, generated_backgrounds=0.5),
    ]
    mix = build_mixture(_cfg(tmp_path, sources))
    assert len(mix.sources[2]) == 4  # two clips of two frames
    batch = mix.batch(0)
    assert batch.fg.shape == (4, 3, 32, 32) and batch.semantic.dtype == torch.int64
    assert batch.exact.tolist() == [True] * 4
    assert batch.layers.tolist() == [True, False, True, True]
    again = mix.batch(0)  # a batch is a pure function of the step
    assert torch.equal(batch.fg, again.fg) and torch.equal(batch.alpha, again.alpha)
    assert not torch.equal(batch.fg, mix.batch(1).fg)

    (ia / "image" / "extra.jpg").write_bytes((ia / "image" / "000.jpg").read_bytes())
    with pytest.raises(InputError, match="in image/ have no match in alpha/"):
        build_mixture(_cfg(tmp_path, [DataSource(kind="image_alpha", path=ia)]))
    with pytest.raises(InputError, match="expected a sub-folder"):
        build_mixture(_cfg(tmp_path, [DataSource(kind="segmentation", path=fg)]))
    Image.new("L", (5, 5)).save(ia / "alpha" / "extra.png")
    with pytest.raises(InputError, match="label is 5x5"):
        src = build_mixture(_cfg(tmp_path, [DataSource(kind="image_alpha", path=ia)], 1))
        for step in range(3):
            src.batch(step)


def test_guess_kind() -> None:
    a = np.zeros((10, 10), np.float32)
    assert guess_kind(a) == "nonsalient"
    a[2:8, 2:8] = 1.0
    assert guess_kind(a) == "opaque"
    a[2:8, 2:8] = 0.3
    assert guess_kind(a) == "transparent"


def test_config_resolves_paths_and_reports_errors(tmp_path: Path) -> None:
    cfg_path = tmp_path / "sub" / "c.toml"
    cfg_path.parent.mkdir()
    cfg_path.write_text("output = 'r'\n[[data]]\nkind = 'segmentation'\npath = '../data'\n")
    cfg = load_config(cfg_path)
    assert cfg.output == tmp_path / "sub" / "r"
    assert cfg.data[0].path == tmp_path / "sub" / "../data"
    for text, needle in [
        ("[[data]]\nkind = 'segmentation'\n", "needs a path"),
        ("trainer = 'mlb'\n[[data]]\nkind = 'synthetic'\n", "teacher"),
        ("model = { backbone = 'vgg' }\n[[data]]\nkind = 'synthetic'\n", "backbone"),
        ("steps = [\n", "not valid TOML"),
        ("", "data"),
    ]:
        cfg_path.write_text(text)
        with pytest.raises(InputError, match=needle):
            load_config(cfg_path)
    with pytest.raises(InputError, match="no such config"):
        load_config(tmp_path / "missing.toml")


def test_affine_identity_and_flip() -> None:
    x = torch.rand(2, 3, 8, 8)
    eye = torch.tensor([[1.0, 0, 0], [0, 1, 0]]).expand(2, 2, 3)
    assert torch.allclose(augment.warp(x, eye), x, atol=1e-5)
    flip = torch.tensor([[-1.0, 0, 0], [0, 1, 0]]).expand(2, 2, 3)
    assert torch.allclose(augment.warp(x, flip), x.flip(-1), atol=1e-5)
    classes = torch.randint(0, 3, (2, 8, 8))
    assert torch.equal(augment.warp_classes(classes, eye), classes)
    gen = torch.Generator().manual_seed(0)
    m = augment.affine_matrices(gen, 64)
    scale = m[:, :, :2].det().abs().sqrt()  # 1 / zoom
    assert ((scale > 1 / 1.16) & (scale < 1 / 0.84)).all()


def test_photometric_changes_stay_in_range_and_hue_keeps_grey() -> None:
    gen = torch.Generator().manual_seed(1)
    x = torch.rand(4, 3, 16, 16)
    for y in (augment.color_jitter(x, gen), augment.degrade(x, gen, p=1.0)):
        assert y.shape == x.shape and y.min() >= 0 and y.max() <= 1
    grey = torch.full((1, 3, 2, 2), 0.4)
    assert torch.allclose(augment.rotate_hue(grey, torch.tensor([1.0])), grey, atol=1e-6)
    red = torch.tensor([1.0, 0.0, 0.0]).view(1, 3, 1, 1)
    turned = augment.rotate_hue(red, torch.tensor([2 * np.pi / 3]))  # 120 degrees: red -> green
    assert torch.allclose(turned.flatten(), torch.tensor([0.0, 1.0, 0.0]), atol=1e-5)
    blurred = augment.gaussian_blur(x, torch.full((4,), 1.0))
    assert torch.allclose(blurred.mean(dim=(2, 3)), x.mean(dim=(2, 3)), atol=0.02)


def test_prepare_composites_layers_and_keeps_photos(tmp_path: Path) -> None:
    seg = write_pairs(tmp_path / "seg", "images", "masks", 3, (40, 40), 6)
    sources = [DataSource(kind="segmentation", path=seg), DataSource(kind="synthetic")]
    batch = build_mixture(_cfg(tmp_path, sources, 2)).batch(0)
    p = prepare(batch, torch.Generator().manual_seed(0), strong=False, seg_band=2)
    # Layered sample: I = alpha F + (1 - alpha) B exactly; photo: the warped photo.
    comp = p.alpha[1] * p.fg[1] + (1 - p.alpha[1]) * p.bg[1]
    assert torch.allclose(p.image[1], comp, atol=1e-6)
    assert torch.allclose(p.image[0], p.fg[0])
    # No alpha loss on the segmentation mask's uncertain edge.
    assert (p.weight[0, 0][p.semantic[0] == 1] == 0).all()
    assert (p.weight[1] == 1).all()


def test_paste_over_is_the_compositing_equation() -> None:
    fg = torch.full((3, 2, 2), 0.8)
    bg = torch.full((3, 2, 2), 0.2)
    alpha = torch.tensor([[[1.0, 0.0], [0.5, 0.25]]])
    got = paste_over(fg, bg, alpha)
    want = torch.tensor([[0.8, 0.2], [0.5, 0.35]]).expand(3, 2, 2)
    torch.testing.assert_close(got, want)


def test_pasted_people_keep_their_pixels_over_a_new_scene(tmp_path: Path) -> None:
    root = write_pairs(tmp_path / "seg", "images", "masks", 4, (48, 64), 7)
    plain = SegmentationSource(root, None, None)
    pasted = SegmentationSource(root, None, None, paste=1.0)
    for ordinal in range(4):
        a = plain.draw(np.random.default_rng(ordinal), PARAMS, ordinal)
        b = pasted.draw(np.random.default_rng(ordinal), PARAMS, ordinal)
        assert torch.equal(a.alpha, b.alpha) and torch.equal(a.semantic, b.semantic)
        assert torch.equal(b.fg, b.bg) and not b.layers and not b.exact
        m = a.alpha[0] > 0.5
        inner = torch.nn.functional.max_pool2d((~m).float()[None, None], 3, 1, 1)[0, 0] == 0
        outer = torch.nn.functional.max_pool2d(m.float()[None, None], 3, 1, 1)[0, 0] == 0
        assert inner.any() and outer.any()
        torch.testing.assert_close(b.fg[:, inner], a.fg[:, inner])  # the person as photographed
        assert (b.fg[:, outer] - a.fg[:, outer]).abs().mean() > 0.05  # somewhere else


def test_held_out_stems_are_never_backgrounds(tmp_path: Path) -> None:
    root = write_pairs(tmp_path / "seg", "images", "masks", 4, (48, 64), 8)
    held = tmp_path / "held.txt"
    held.write_text("001\n003\n")
    src = open_source(DataSource(kind="synthetic", backgrounds=root, backgrounds_exclude=held))
    assert isinstance(src, SyntheticSource)
    assert sorted(p.stem for p in src.backgrounds.files) == ["000", "002"]
    assert sorted(src.backgrounds.masks) == ["000", "002"]
    with pytest.raises(InputError, match="no background images"):
        Backgrounds.from_folder(root, {"000", "001", "002", "003"})
    with pytest.raises(ValueError, match="paste applies"):
        DataSource(kind="synthetic", paste=0.5)
