"""Patch gather, scatter, bilinear window sampling and selection."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from matting.ops import (
    PatchIndex,
    gather_patches,
    half_resolution,
    sample_windows,
    scatter_patches,
    select_all,
    select_band,
    select_topk,
    window_coords,
)


def _index(rows: list[tuple[int, int, int]]) -> PatchIndex:
    t = torch.tensor(rows, dtype=torch.int64)
    return PatchIndex(t[:, 0], t[:, 1], t[:, 2])


def test_gather_then_scatter_all_is_identity() -> None:
    x = torch.randn(2, 5, 24, 36)
    index = select_all(2, 6, 9, x.device)
    patches = gather_patches(x, index, 4)
    assert patches.shape == (2 * 6 * 9, 5, 4, 4)
    rebuilt = scatter_patches(torch.zeros_like(x), patches, index)
    assert torch.equal(rebuilt, x)


def test_gather_then_scatter_subset_touches_only_those_patches() -> None:
    x = torch.randn(2, 3, 16, 20)
    y = torch.randn(2, 3, 16, 20)
    index = _index([(0, 0, 0), (1, 3, 4), (0, 2, 1)])
    out = scatter_patches(y, gather_patches(x, index, 4), index)
    expected = y.clone()
    for b, r, c in index.stack().tolist():
        expected[b, :, 4 * r : 4 * r + 4, 4 * c : 4 * c + 4] = x[
            b, :, 4 * r : 4 * r + 4, 4 * c : 4 * c + 4
        ]
    assert torch.equal(out, expected)
    assert not torch.equal(out, y)  # the scatter returned a new tensor and left y alone


def test_gather_with_context_reads_zero_outside() -> None:
    x = torch.randn(1, 2, 12, 8)
    index = _index([(0, 0, 0), (0, 2, 1), (0, 1, 1)])
    got = gather_patches(x, index, 4, context=2)
    padded = F.pad(x, (2, 2, 2, 2))
    for i, (_, r, c) in enumerate(index.stack().tolist()):
        assert torch.equal(got[i], padded[0, :, 4 * r : 4 * r + 8, 4 * c : 4 * c + 8])


def test_sample_windows_matches_interpolate() -> None:
    """Bilinear windows equal slices of the zero-padded resized image at
    upsampling, downsampling, identity and odd ratios."""
    for (h, w), (oh, ow) in [
        ((6, 10), (24, 40)),
        ((32, 16), (16, 8)),
        ((9, 7), (9, 7)),
        ((5, 7), (40, 28)),
        ((17, 3), (8, 12)),
    ]:
        x = torch.rand(2, 4, h, w)
        ref = F.pad(F.interpolate(x, (oh, ow), mode="bilinear", align_corners=False), (3, 8, 3, 8))
        n = 40
        b = torch.randint(0, 2, (n,))
        r = torch.randint(0, (oh + 1) // 2, (n,))
        c = torch.randint(0, (ow + 1) // 2, (n,))
        rows, cols = window_coords(r, 2, 3), window_coords(c, 2, 3)
        got = sample_windows(x, (oh, ow), b, rows, cols)
        for i in range(n):
            exp = ref[b[i], :, 2 * r[i] : 2 * r[i] + 8, 2 * c[i] : 2 * c[i] + 8]
            torch.testing.assert_close(got[i], exp, rtol=0, atol=1e-6)


def test_half_resolution_is_the_bilinear_half() -> None:
    x = torch.rand(2, 3, 12, 20)
    ref = F.interpolate(x, (6, 10), mode="bilinear", align_corners=False)
    torch.testing.assert_close(half_resolution(x, 3), ref, rtol=0, atol=1e-6)


def test_select_topk_picks_the_highest_cells() -> None:
    score = torch.rand(3, 1, 7, 9)
    index = select_topk(score, 5)
    assert index.num_patches == 15
    for b in range(3):
        mine = index.row[index.batch == b] * 9 + index.col[index.batch == b]
        best = score[b, 0].flatten().argsort(descending=True)[:5]
        assert set(mine.tolist()) == set(best.tolist())
    assert select_topk(score, 10_000).num_patches == 3 * 63  # capped at the grid


def test_select_band_is_the_dilated_transition() -> None:
    alpha = torch.zeros(1, 1, 6, 6)
    alpha[0, 0, 2, 3] = 0.5  # one transition cell
    alpha[0, 0, 5, 0] = 1.0  # opaque: not transition
    cells = {tuple(rc) for rc in select_band(alpha, 0.01, 0.99, 1).stack()[:, 1:].tolist()}
    assert cells == {(r, c) for r in (1, 2, 3) for c in (2, 3, 4)}
    assert select_band(alpha, 0.01, 0.99, 0).num_patches == 1


def test_gather_outside_the_image_is_zero_even_next_to_inf() -> None:
    x = torch.full((1, 1, 4, 4), float("inf"))
    got = gather_patches(x, _index([(0, 0, 0)]), 4, context=2)
    assert torch.isinf(got[0, 0, 2:6, 2:6]).all()
    assert not torch.isnan(got).any()
    assert float(got[0, 0, :2].abs().sum()) == 0.0


def _cells(index) -> set[tuple[int, int, int]]:  # type: ignore[no-untyped-def]
    return set(map(tuple, index.stack().tolist()))


@pytest.mark.parametrize("k", [0, 1, 7, 62, 63])
def test_threshold_selection_is_the_topk(k: int) -> None:
    """The exported selection (no TopK) picks the same cells as a sort."""
    from matting.ops.selection import select_by_threshold

    score = torch.rand(3, 1, 7, 9)
    score[1, 0, -1] = -1.0  # padding row
    got = select_by_threshold(score, torch.tensor(k))
    assert got.num_patches == 3 * k
    for b in range(3):  # a valid top-k: nothing left out scores above what was taken
        taken = torch.zeros(7, 9, dtype=torch.bool)
        mine = got.batch == b
        taken[got.row[mine], got.col[mine]] = True
        assert int(taken.sum()) == k
        if 0 < k < 63:
            assert score[b, 0][taken].min() >= score[b, 0][~taken].max()
    # At k=62 the last pick in image 1 is among its 9 padding cells tied at -1;
    # elsewhere nothing ties at the k-th place, so the cells are those of a sort.
    if k != 62:
        assert _cells(got) == _cells(select_topk(score, k))


def test_threshold_selection_with_ties_takes_exactly_k() -> None:
    from matting.ops.selection import select_by_threshold

    score = torch.zeros(2, 1, 6, 6)
    score[0, 0, 0, :3] = 0.5  # three clear winners, then 33 tied zeros
    score[1, 0, 2, 2] = 1e-9  # a winner closer to the tie than float spacing at 1.0
    got = select_by_threshold(score, torch.tensor(10))
    assert got.num_patches == 20
    b0 = {(r, c) for b, r, c in _cells(got) if b == 0}
    assert {(0, 0), (0, 1), (0, 2)} <= b0 and len(b0) == 10
    assert sum(1 for b, _, _ in _cells(got) if b == 1) == 10
