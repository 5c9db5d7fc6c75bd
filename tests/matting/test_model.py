"""The whole model: input checks, refinement modes, coarse scale, presets."""

from __future__ import annotations

import pytest
import torch

from matting.config import ModelConfig, preset
from matting.models import build_model
from matting.ops import coarse_scale


@pytest.mark.parametrize(
    ("h", "w", "f"),
    [(512, 512, 1), (1080, 1920, 4), (2160, 3840, 8), (4320, 7680, 16), (750, 1000, 2), (1, 1, 1)],
)
def test_coarse_scale(h: int, w: int, f: int) -> None:
    assert coarse_scale(h, w, 512) == f


def test_coarse_scale_rejects_empty() -> None:
    with pytest.raises(ValueError):
        coarse_scale(0, 10, 512)


def test_model_rejects_bad_inputs() -> None:
    model = build_model(preset("realtime")).eval()
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
        model(torch.rand(1, 4, 32, 32))
    with pytest.raises(ValueError, match="float"):
        model(torch.zeros(1, 3, 32, 32, dtype=torch.uint8))
    with pytest.raises(ValueError, match="without a background"):
        model(torch.rand(1, 3, 32, 32), torch.rand(1, 3, 32, 32))
    with pytest.raises(ValueError, match="unknown refine mode"):
        model(torch.rand(1, 3, 32, 32), refine_mode="bogus")  # type: ignore[arg-type]


def test_background_model_needs_plate() -> None:
    model = build_model(preset("realtime-bgm")).eval()
    with pytest.raises(ValueError, match="background plate"):
        model(torch.rand(1, 3, 32, 32))
    with pytest.raises(ValueError, match="must match"):
        model(torch.rand(1, 3, 32, 32), torch.rand(1, 3, 32, 36))


def test_topk_budget_and_modes() -> None:
    model = build_model(preset("realtime")).eval()
    image = torch.rand(2, 3, 64, 96)  # grid of 16 x 24 = 384 cells per image
    with torch.no_grad():
        assert model(image, num_patches=7).patches.shape == (14, 3)
        # 4% of 384 cells, rounded up.
        assert model(image).patches.shape == (2 * 16, 3)
        assert model(image, refine_fraction=1.0).patches.shape == (2 * 384, 3)
        assert model(image, refine_mode="none").patches.shape == (0, 3)
        assert model(image, refine_mode="full").patches.shape == (0, 3)
        band = model(image, refine_mode="band").patches
    assert band.shape[1] == 3 and band.dtype == torch.int64


def test_config_validation() -> None:
    with pytest.raises(ValueError, match="config_version"):
        ModelConfig(config_version=99)
    with pytest.raises(ValueError):
        ModelConfig(backbone="vgg")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="band_low"):
        ModelConfig(band_low=0.9, band_high=0.5)
    with pytest.raises(ValueError, match="unknown model preset"):
        preset("huge")
    cfg = preset("quality")
    assert ModelConfig.model_validate_json(cfg.model_dump_json()) == cfg


def _small_coarse(name: str = "realtime") -> ModelConfig:
    """A config whose coarse stage shrinks even tiny test images (f > 1)."""
    return preset(name).model_copy(update={"coarse_long_side": 32})


def test_model_sparse_all_equals_dense_through_the_whole_wiring() -> None:
    """Padding, feature order, coarse scale f > 1, batch > 1 and the crop."""
    model = build_model(_small_coarse()).eval()
    image = torch.rand(2, 3, 75, 101)  # f = 4, padded to 76 x 104
    with torch.no_grad():
        sparse = model(image, refine_fraction=1.0)
        dense = model(image, refine_mode="full")
    assert sparse.patches.shape[0] == 2 * 19 * 26
    torch.testing.assert_close(sparse.foreground, dense.foreground, rtol=0, atol=1e-5)
    torch.testing.assert_close(sparse.alpha, dense.alpha, rtol=0, atol=1e-5)


def test_band_mode_selects_the_band_of_the_coarse_alpha() -> None:
    """Wire the coarse alpha to the image's red channel, then draw a ramp whose
    band can be worked out by hand."""
    cfg = _small_coarse()
    model = build_model(cfg).eval()
    last = model.coarse.decoder.convs[-1]  # its input ends with the 3 image channels
    assert isinstance(last, torch.nn.Conv2d)
    with torch.no_grad():
        last.weight[0].zero_()
        last.bias[0] = 0.0
        last.weight[0, -3, 1, 1] = 1.0  # alpha = red, centre tap
    x = torch.arange(96, dtype=torch.float32)
    image = torch.zeros(1, 3, 64, 96)
    image[0, 0] = ((x - 40) / 16).clamp(0, 1)  # red ramps over columns 40..56
    with torch.no_grad():
        out = model(image, refine_mode="band")  # f = 4: coarse 16 x 24 = the patch grid
    # Coarse column c averages pixels 4c..4c+3: columns 10..13 hold red in
    # (0.09 .. 0.84), inside (0.01, 0.99); 9 is 0 and 14 is 1. Dilation by one
    # cell widens the band to columns 9..14 on every row.
    expected = {(r, c) for r in range(16) for c in range(9, 15)}
    assert {tuple(p) for p in out.patches[:, 1:].tolist()} == expected


def test_topk_never_spends_patches_on_padding() -> None:
    model = build_model(_small_coarse()).eval()
    image = torch.rand(1, 3, 257, 100)  # f = 16: padded to 272 rows, 3 patch rows pure padding
    with torch.no_grad():
        out = model(image, num_patches=65 * 25)
    assert int(out.patches[:, 1].max()) * 4 < 257
    assert int(out.patches[:, 2].max()) * 4 < 100


def test_semantic_head_fuses_alpha_and_returns_logits() -> None:
    from matting.models.semantic import fuse_alpha, semantic_map

    cfg = ModelConfig(semantic_head=True, aspp_channels=16, decoder_channels=(16, 16, 8))
    model = build_model(cfg).eval()
    out = model(torch.rand(2, 3, 70, 90), refine_mode="none")
    assert out.coarse_semantic is not None
    assert out.coarse_semantic.shape == (2, 3, 70, 90)
    plain = build_model(cfg.model_copy(update={"semantic_head": False}))
    assert plain(torch.rand(1, 3, 32, 32), refine_mode="none").coarse_semantic is None
    # U = 0 or 1 decides alone, U = 0.5 keeps the matte, halfway mixes by hand.
    u = torch.tensor([0.0, 1.0, 0.5, 0.75]).view(1, 1, 1, 4)
    m = torch.tensor([0.3, 0.3, 0.3, 0.2]).view(1, 1, 1, 4)
    assert torch.allclose(fuse_alpha(u, m), torch.tensor([0.0, 1.0, 0.3, 0.475]).view(1, 1, 1, 4))
    logits = torch.tensor([0.0, 0.0, 100.0]).view(1, 3, 1, 1)
    assert torch.allclose(semantic_map(logits), torch.ones(1, 1, 1, 1))


def test_coarse_long_side_override_changes_coarse_size() -> None:
    model = build_model(ModelConfig(aspp_channels=16, decoder_channels=(16, 16, 8))).eval()
    x = torch.rand(1, 3, 64, 64)
    assert model(x, refine_mode="none").coarse_alpha.shape[-1] == 64
    assert model(x, refine_mode="none", coarse_long_side=32).coarse_alpha.shape[-1] == 32


def test_flip_average_averages_the_coarse_stage_with_its_mirror() -> None:
    from matting.ops.padding import box_downsample, pad_to_multiple

    torch.manual_seed(0)
    cfg = ModelConfig(
        semantic_head=True, aspp_channels=16, decoder_channels=(16, 16, 8), coarse_long_side=32
    )
    flipped = build_model(cfg.model_copy(update={"flip_average": True})).eval()
    plain = build_model(cfg).eval()
    plain.load_state_dict(flipped.state_dict())
    x = torch.rand(2, 3, 48, 64)
    out = flipped(x, refine_mode="none")
    # By hand: the same padded, shrunk input the network builds (f = 2, align 4).
    small = box_downsample(pad_to_multiple(x, 4), 2)
    a, b = plain.coarse(small), plain.coarse(small.flip(-1))
    expected = 0.5 * (a.alpha + b.alpha.flip(-1))
    assert torch.allclose(out.coarse_alpha, expected[:, :, :24, :32], atol=1e-6)
    assert out.coarse_semantic is not None and b.semantic is not None
    logits = 0.5 * (a.semantic + b.semantic.flip(-1))  # type: ignore[operator]
    assert torch.allclose(out.coarse_semantic, logits[:, :, :24, :32], atol=1e-5)
    # Not an identity: the mirror pass changes the result of an asymmetric network.
    assert not torch.allclose(out.coarse_alpha, plain(x, refine_mode="none").coarse_alpha)
    # A call may turn it off; training mode leaves it off (flips are augmentation there).
    off = flipped(x, refine_mode="none", flip_average=False)
    assert torch.equal(off.coarse_alpha, plain(x, refine_mode="none").coarse_alpha)
    flipped.train(), plain.train()
    torch.manual_seed(1)
    t1 = flipped(x, refine_mode="none").coarse_alpha
    torch.manual_seed(1)
    t2 = plain(x, refine_mode="none").coarse_alpha
    assert torch.equal(t1, t2)


def test_flip_average_of_a_mirrored_image_is_the_mirrored_result() -> None:
    """With mirror averaging, mirroring the input mirrors the coarse output (up to
    the stride phase of the padding, so use a width that needs none)."""
    torch.manual_seed(0)
    cfg = ModelConfig(aspp_channels=16, decoder_channels=(16, 16, 8), flip_average=True)
    model = build_model(cfg).eval()
    x = torch.rand(1, 3, 64, 64)
    a = model(x, refine_mode="none").coarse_alpha
    b = model(x.flip(-1), refine_mode="none").coarse_alpha
    assert torch.allclose(a, b.flip(-1), atol=1e-5)


def test_coarse_scales_average_the_levels_on_the_finest_grid() -> None:
    import torch.nn.functional as F

    from matting.ops.padding import box_downsample, pad_to_multiple

    torch.manual_seed(0)
    cfg = ModelConfig(
        semantic_head=True, aspp_channels=16, decoder_channels=(16, 16, 8), coarse_long_side=32
    )
    multi = build_model(cfg.model_copy(update={"coarse_scales": (1.0, 2.0, 1.5)})).eval()
    plain = build_model(cfg).eval()
    plain.load_state_dict(multi.state_dict())
    x = torch.rand(2, 3, 80, 100)
    out = multi(x, refine_mode="none")
    # By hand: sides 32, 48, 64 give factors 4, 4, 2; padding suits the largest
    # (4), the factor-4 pass counts twice, and the mean lives on the factor-2 grid.
    padded = pad_to_multiple(x, 4)
    a, b = plain.coarse(box_downsample(padded, 4)), plain.coarse(box_downsample(padded, 2))
    up = F.interpolate(a.alpha, size=b.alpha.shape[-2:], mode="bilinear", align_corners=False)
    expected = (2 * up + b.alpha) / 3
    assert out.coarse_alpha.shape[-2:] == (40, 50)
    assert torch.allclose(out.coarse_alpha, expected, atol=1e-6)
    assert out.coarse_semantic is not None and a.semantic is not None
    logits = (2 * F.interpolate(a.semantic, size=(40, 50), mode="bilinear") + b.semantic) / 3
    assert torch.allclose(out.coarse_semantic, logits, atol=1e-5)
    assert not torch.allclose(out.alpha, plain(x, refine_mode="none").alpha)
    # A call may pass one scale; training mode runs one pass whatever the config says.
    one = multi(x, refine_mode="none", coarse_scales=(1.0,))
    assert torch.equal(one.coarse_alpha, plain(x, refine_mode="none").coarse_alpha)
    multi.train(), plain.train()
    torch.manual_seed(1)
    t1 = multi(x, refine_mode="none").coarse_alpha
    torch.manual_seed(1)
    assert torch.equal(t1, plain(x, refine_mode="none").coarse_alpha)


def test_coarse_scales_that_snap_alike_cost_one_pass() -> None:
    from matting.models.network import coarse_levels

    assert coarse_levels([8, 4, 4], 1100, 128) == [(8, 1), (4, 2)]
    assert coarse_levels([8], 1100, 128) == [(8, 1)]


def test_coarse_passes_below_the_floor_are_dropped_but_never_the_finest() -> None:
    from matting.models.network import coarse_levels

    # 800 / 8 = 100 px is below the floor (half of a 256 side): that pass goes.
    assert coarse_levels([8, 4, 4], 800, 128) == [(4, 2)]
    assert coarse_levels([8, 4, 4], 1025, 128) == [(8, 1), (4, 2)]
    assert coarse_levels([2, 2], 200, 128) == [(2, 2)]  # the finest stays
    # Traced sizes are symbolic: every pass runs, the dropped ones weighted 0.
    t8, t4 = torch.tensor(8), torch.tensor(4)
    levels = coarse_levels([t8, t4, t4], torch.tensor(800), 128)
    assert [float(w) for _, w in levels] == [0.0, 1.0, 1.0]


def test_a_dropped_pass_leaves_the_output_of_the_others() -> None:
    torch.manual_seed(0)
    cfg = ModelConfig(aspp_channels=16, decoder_channels=(16, 16, 8), coarse_long_side=64)
    model = build_model(cfg).eval()
    x = torch.rand(1, 3, 100, 60)
    # Sides 48 and 64 both need factor 2 (50 px); 32 needs 4, 25 px <= 64 / 2: dropped.
    multi = model(x, coarse_scales=(0.5, 0.75, 1.0))
    one = model(x, coarse_scales=(1.0,))
    assert torch.equal(multi.coarse_alpha, one.coarse_alpha)
    # Side 128 (factor 1) adds a finer pass, whose grid the output takes.
    finer = model(x, coarse_scales=(1.0, 2.0)).coarse_alpha
    assert finer.shape[-2:] == (100, 60) and one.coarse_alpha.shape[-2:] == (50, 30)


def test_coarse_scales_are_checked_and_pad_for_the_largest_factor() -> None:
    from matting.runtime.base import patch_grid

    with pytest.raises(ValueError, match="coarse_scales"):
        ModelConfig(coarse_long_side=64, coarse_scales=(0.25,))  # side 16 < 32
    with pytest.raises(ValueError, match="coarse_scales"):
        ModelConfig(coarse_scales=(0.0,))
    with pytest.raises(ValueError):
        ModelConfig(coarse_scales=())
    cfg = ModelConfig(coarse_long_side=256, coarse_scales=(1.5, 0.75, 1.0))
    assert cfg.coarse_sides() == (192, 256, 384)
    assert cfg.coarse_sides(128) == (96, 128, 192)
    # 1004 px: side 192 needs factor 8, so 1004 pads to 1008 where factor 4 needs 1004.
    assert patch_grid(1004, 600, cfg) == (252, 150)
    assert patch_grid(1004, 600, ModelConfig(coarse_long_side=256)) == (251, 150)


def test_clamp01_passes_gradient_only_in_training() -> None:
    from matting.models.layers import clamp01

    x = torch.tensor([-0.5, 0.5, 1.5], requires_grad=True)
    y = clamp01(x, straight_through=True)
    assert y.tolist() == [0.0, 0.5, 1.0]
    # A loss that pulls every value toward 0.5 reaches the values outside the range.
    ((y - 0.5) * torch.tensor([-1.0, 1.0, 1.0])).sum().backward()
    assert x.grad is not None and x.grad.tolist() == [-1.0, 1.0, 1.0]
    x.grad = None
    clamp01(x, straight_through=False).sum().backward()
    assert x.grad.tolist() == [0.0, 1.0, 0.0]


def test_clamp01_never_pushes_a_value_further_out_of_range() -> None:
    from matting.models.layers import clamp01

    x = torch.tensor([-0.5, 0.0, 0.5, 1.0, 1.5], requires_grad=True)
    # Descent on -sum(y) asks every value to grow: 1.5 must not grow on (the drift
    # that made raw coarse alpha reach 33000), -0.5 may (it moves toward 0).
    (-clamp01(x, straight_through=True)).sum().backward()
    assert x.grad is not None and x.grad.tolist() == [-1.0, -1.0, -1.0, -1.0, 0.0]
    x.grad = None
    clamp01(x, straight_through=True).sum().backward()
    assert x.grad.tolist() == [0.0, 1.0, 1.0, 1.0, 1.0]
