"""Tests for matting.videoio with real codecs on tiny clips made here with PyAV.

Input: 64x48, 12 frames at 12 fps, H.264 with a moving square (keyframe every 4 frames and
B-frames, so seeking and reordering are exercised); one variant carries 1 s of AAC sine tone.
"""

from __future__ import annotations

import zipfile
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from matting import videoio
from matting.errors import InputError
from matting.videoio import (
    Kind,
    SegmentError,
    VideoCodecError,
    concat_segments,
    open_writer,
    probe,
    read_back,
    read_frames,
)

W, H, N, FPS = 64, 48, 12, Fraction(12)
EXT = {"prores": "mov", "webm": "webm", "pngzip": "zip", "composite": "mp4"}


def _make_clip(path: Path, audio: bool, video: bool = True, frames: int = N) -> Path:
    out = av.open(str(path), "w")
    # Every stream must exist before the first mux writes the header.
    if video:
        v = out.add_stream("libx264", rate=FPS)
        v.width, v.height, v.pix_fmt = W, H, "yuv420p"
        v.options = {"g": "4", "keyint_min": "4", "bf": "2", "preset": "ultrafast"}
    if audio:
        a = out.add_stream("aac", rate=48000)
        a.layout = "mono"
    out.start_encoding()  # header even when nothing is muxed (the zero-frame case)
    if video:
        for i in range(frames):
            img = np.full((H, W, 3), 30, np.uint8)
            img[10:26, 4 * i : 4 * i + 16] = (255, 128, 0)
            frame = av.VideoFrame.from_ndarray(img, format="rgb24")
            frame.pts = i
            for p in v.encode(frame):
                out.mux(p)
        for p in v.encode():
            out.mux(p)
    if audio:
        sr = 48000
        tone = (0.3 * np.sin(2 * np.pi * 440 * np.arange(sr) / sr)).astype(np.float32)
        for k in range(0, sr, 1024):
            af = av.AudioFrame.from_ndarray(tone[None, k : k + 1024].copy(), "flt", "mono")
            af.sample_rate, af.pts = sr, k
            for p in a.encode(af):
                out.mux(p)
        for p in a.encode():
            out.mux(p)
    out.close()
    return path


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("clips")
    return {
        "plain": _make_clip(d / "plain.mp4", audio=False),
        "audio": _make_clip(d / "audio.mp4", audio=True),
    }


def _matte(i: int) -> tuple[np.ndarray, np.ndarray]:
    """Frame i: horizontal alpha gradient plus a hard-edged disc that moves with i."""
    alpha = np.tile(np.linspace(0, 1, W, dtype=np.float32), (H, 1))
    yy, xx = np.mgrid[:H, :W]
    alpha[(yy - 24) ** 2 + (xx - 10 - 3 * i) ** 2 < 100] = 1.0
    fg = np.empty((H, W, 3), np.float32)
    fg[..., 0], fg[..., 1], fg[..., 2] = 0.8, np.linspace(0, 1, H)[:, None], i / N
    return alpha, fg


def _q8(x: np.ndarray) -> np.ndarray:
    return np.rint(np.clip(x, 0, 1) * 255).astype(np.int16)


def _write(kind: str, path: Path, frames: range = range(N), **kw: object) -> Path:
    with open_writer(kind, path, W, H, FPS, **kw) as w:  # type: ignore[arg-type]
        for i in frames:
            w.write(*_matte(i))
    return path


def _write_segments(kind: str, d: Path, sizes: list[int], **kw: object) -> list[Path]:
    """Consecutive frames split into one file per segment, as the chunked video job does."""
    paths, start = [], 0
    for k, n in enumerate(sizes):
        paths.append(_write(kind, d / f"seg{k}.{EXT[kind]}", range(start, start + n), **kw))
        start += n
    return paths


def test_probe_clip(clips: dict[str, Path]) -> None:
    info = probe(clips["audio"])
    assert (info.width, info.height, info.fps, info.frame_count) == (W, H, FPS, N)
    assert info.codec == "h264" and info.has_audio and info.frame_count_source == "container"
    assert info.duration_s == pytest.approx(1.0, abs=0.05)
    assert not probe(clips["plain"]).has_audio


def test_probe_errors(clips: dict[str, Path], tmp_path: Path) -> None:
    data = clips["plain"].read_bytes()
    cases = {
        "text.mp4": b"hello, this is not a video\n" * 20,
        "truncated.mp4": data[: len(data) // 2],
        "empty.mp4": b"",
    }
    for name, blob in cases.items():
        (tmp_path / name).write_bytes(blob)
        with pytest.raises(InputError):
            probe(tmp_path / name)
    with pytest.raises(InputError, match="no video stream"):
        probe(_make_clip(tmp_path / "sound.m4a", audio=True, video=False))
    with pytest.raises(InputError):  # FFmpeg drops the empty track: "no video stream"
        probe(_make_clip(tmp_path / "zero.mp4", audio=False, frames=0))
    with pytest.raises(InputError, match="no such file"):
        probe(tmp_path / "missing.mp4")


def test_read_frames_resume_matches_straight_read(clips: dict[str, Path]) -> None:
    straight = list(read_frames(clips["plain"]))
    assert len(straight) == N
    assert all(
        f.shape == (H, W, 3) and f.dtype == np.uint8 and f.flags.c_contiguous for f in straight
    )
    assert not np.array_equal(straight[0], straight[5])  # the square moves
    chunks = [f for s in range(0, N, 5) for f in read_frames(clips["plain"], start=s, count=5)]
    middle = list(read_frames(clips["plain"], start=5))
    assert len(chunks) == N and len(middle) == N - 5
    for a, b in zip(chunks, straight, strict=True):
        np.testing.assert_array_equal(a, b)
    for a, b in zip(middle, straight[5:], strict=True):
        np.testing.assert_array_equal(a, b)
    assert list(read_frames(clips["plain"], start=N)) == []


@pytest.mark.parametrize("kind", ["pngzip", "prores", "webm"])
def test_alpha_writers_round_trip(kind: str, tmp_path: Path) -> None:
    path = tmp_path / f"out.{EXT[kind]}"
    _write(kind, path)
    back = list(read_back(path, kind))  # type: ignore[arg-type]
    assert len(back) == N
    if kind == "webm":
        with av.open(str(path)) as c:  # the muxer flags the track as carrying alpha
            assert c.streams.video[0].metadata.get("alpha_mode") == "1"
    for i, (rgb, alpha) in enumerate(back):
        want_a, fg = _matte(i)
        assert rgb.shape == (H, W, 3) and alpha.shape == (H, W)
        # pngzip is exact; ProRes 10-bit and lossless VP9 must stay within 2/255.
        assert np.abs(alpha.astype(np.int16) - _q8(want_a)).max() <= 2, f"frame {i}"
        err = np.abs(rgb.astype(np.int16) - _q8(fg))
        if kind == "webm":  # yuva420p halves chroma resolution: only the mean is tight
            assert err.mean() < 3, f"frame {i}"
        else:
            assert err.max() <= 2, f"frame {i}"


def test_output_timestamps(tmp_path: Path) -> None:
    path = tmp_path / "out.mov"
    _write("prores", path)
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        times = [f.time for f in c.decode(s)]
        assert s.codec_context.name == "prores"
        assert (s.codec_context.profile, s.codec_tag) == ("4444", "ap4h")  # 4444 with alpha
        assert s.average_rate == FPS
    assert times == pytest.approx([i / 12 for i in range(N)])


def _edge_band(alpha: np.ndarray, r: int = 2) -> np.ndarray:
    """Pixels within r of a hard alpha edge (a jump of more than 0.1 between neighbours)."""
    jump = np.zeros(alpha.shape, bool)
    jump[:, 1:] |= np.abs(np.diff(alpha, axis=1)) > 0.1
    jump[1:, :] |= np.abs(np.diff(alpha, axis=0)) > 0.1
    band = jump.copy()
    for dy in range(-r - 1, r + 2):
        for dx in range(-r - 1, r + 2):
            band |= np.roll(jump, (dy, dx), axis=(0, 1))
    return band


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return 10 * np.log10(255**2 / max(mse, 1e-9))


@pytest.mark.parametrize("bg", ["colour", "image"])
def test_composite_writer(bg: str, tmp_path: Path) -> None:
    if bg == "colour":
        background: object = (20, 40, 250)
        bgf = np.broadcast_to(np.array([20, 40, 250], np.float32) / 255, (H, W, 3))
    else:
        yy, xx = np.mgrid[:H, :W]
        background = np.dstack([xx * 4, yy * 5, 255 - xx * 2]).astype(np.uint8)  # smooth image
        bgf = background.astype(np.float32) / 255  # type: ignore[union-attr]
    path = tmp_path / "out.mp4"
    _write("composite", path, background=background)
    back = list(read_back(path, "composite"))
    assert len(back) == N
    for i, (rgb, alpha) in enumerate(back):
        a, fg = _matte(i)
        want = _q8(fg * a[..., None] + bgf * (1 - a[..., None])).astype(np.uint8)
        # 4:2:0 alone smears chroma across the disc's hard saturated edge (errors up to ~95
        # there, PSNR ~25 dB even before H.264), so: (1) against the reference pushed through
        # the same RGB->yuv420p->RGB conversion the codec loss must be small; (2) against
        # numpy's F*a+B*(1-a) directly, away from the edge, within 3 levels / 35 dB.
        ideal = av.VideoFrame.from_ndarray(want, format="rgb24").reformat(format="yuv420p")
        ideal_rgb = ideal.to_ndarray(format="rgb24")
        err = np.abs(rgb.astype(np.int16) - ideal_rgb)
        assert err.mean() < 2 and _psnr(rgb, ideal_rgb) > 38, f"frame {i}"
        off_edge = ~_edge_band(a)
        err = np.abs(rgb.astype(np.int16) - want)[off_edge]
        assert err.mean() < 3 and _psnr(rgb[off_edge], want[off_edge]) > 35, f"frame {i}"
        assert (alpha == 255).all()


@pytest.mark.parametrize("kind", ["prores", "composite", "webm"])
def test_audio_is_carried_over(kind: str, clips: dict[str, Path], tmp_path: Path) -> None:
    path = tmp_path / f"out.{EXT[kind]}"
    _write(kind, path, audio_from=clips["audio"])
    with av.open(str(path)) as c:
        assert len(c.streams.audio) == 1
        a = c.streams.audio[0]
        # mov/mp4 remux the AAC packets untouched; WebM cannot hold AAC, so it becomes Opus.
        assert a.codec_context.name == ("opus" if kind == "webm" else "aac")
        seconds = sum(float(p.duration * p.time_base) for p in c.demux(a) if p.duration)
    assert seconds == pytest.approx(1.0, abs=0.1)
    assert len(list(read_back(path, kind))) == N  # type: ignore[arg-type]
    info = probe(path)
    assert info.has_audio and info.frame_count == N
    assert info.duration_s == pytest.approx(1.0, abs=0.02)  # the video's, not the audio's
    # Matroska stores no frame count, so probe must count packets rather than estimate.
    assert info.frame_count_source == ("packets" if kind == "webm" else "container")


def test_writer_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    spec = list(videoio._AV_SPECS["prores"])
    spec[1] = "no_such_encoder"
    monkeypatch.setitem(videoio._AV_SPECS, "prores", tuple(spec))  # type: ignore[arg-type]
    with pytest.raises(VideoCodecError, match="no_such_encoder"):
        open_writer("prores", tmp_path / "x.mov", W, H, FPS)
    with pytest.raises(InputError, match="even"):
        open_writer("composite", tmp_path / "x.mp4", W + 1, H, FPS)
    with open_writer("pngzip", tmp_path / "x.zip", W, H, FPS) as w, pytest.raises(ValueError):
        w.write(np.zeros((H, W), np.float32), np.zeros((H, W, 4), np.float32))


Frames = list[tuple[np.ndarray, np.ndarray]]


def _same_frames(a: Frames, b: Frames) -> None:
    assert len(a) == len(b)
    for i, ((rgb_a, alpha_a), (rgb_b, alpha_b)) in enumerate(zip(a, b, strict=True)):
        np.testing.assert_array_equal(rgb_a, rgb_b, err_msg=f"rgb of frame {i}")
        np.testing.assert_array_equal(alpha_a, alpha_b, err_msg=f"alpha of frame {i}")


def _read_all(paths: list[Path], kind: Kind) -> Frames:
    return [frame for path in paths for frame in read_back(path, kind)]


@pytest.mark.parametrize("sizes", [[3, 3, 2], [1, 1, 1, 1]])
@pytest.mark.parametrize("kind", ["pngzip", "prores", "webm", "composite"])
def test_concat_segments_matches_one_writer(kind: Kind, sizes: list[int], tmp_path: Path) -> None:
    f = sum(sizes)
    one = _write(kind, tmp_path / f"one.{EXT[kind]}", range(f))
    segments = _write_segments(kind, tmp_path, sizes)
    out = tmp_path / f"joined.{EXT[kind]}"
    assert concat_segments(kind, segments, out) == f
    joined = _read_all([out], kind)
    if kind == "composite":
        # Lossy inter-frame H.264 codes a frame differently when its segment (GOP) starts
        # elsewhere, so the join must decode exactly as the segments it copied did.
        _same_frames(joined, _read_all(segments, kind))
    else:  # ProRes is intra-only, VP9 lossless, PNG exact: segmenting changes nothing
        _same_frames(joined, _read_all([one], kind))
        assert any(alpha.min() < 128 for _, alpha in joined)  # the alpha survived
    if kind == "pngzip":
        with zipfile.ZipFile(out) as zf:
            assert zf.namelist() == [f"frame_{i:06d}.png" for i in range(f)]
        return
    info = probe(out)
    assert (info.width, info.height, info.fps, info.frame_count) == (W, H, FPS, f)
    assert info.duration_s == pytest.approx(f / 12, abs=0.002)
    with av.open(str(out)) as c:
        s, tb = c.streams.video[0], c.streams.video[0].time_base
        stamps = [(p.pts, p.dts) for p in c.demux(s) if p.size]
        if kind == "webm":  # the track keeps its AlphaMode flag
            assert s.metadata.get("alpha_mode") == "1"
    times = [float(pts * tb) for pts, _ in stamps if pts is not None and tb is not None]
    assert times == pytest.approx([i / 12 for i in range(f)], abs=0.001)
    assert all(pts == dts for pts, dts in stamps)  # no reordering (H.264 without B-frames)
    with av.open(str(one)) as c:  # exactly the timestamps one writer gives
        assert [p.pts for p in c.demux(c.streams.video[0]) if p.size] == [t for t, _ in stamps]


@pytest.mark.parametrize("kind", ["prores", "composite", "webm"])
def test_concat_segments_adds_audio(kind: Kind, clips: dict[str, Path], tmp_path: Path) -> None:
    segments = _write_segments(kind, tmp_path, [5, 5, 2])
    out = tmp_path / f"joined.{EXT[kind]}"
    assert concat_segments(kind, segments, out, audio_from=clips["audio"]) == N
    with av.open(str(out)) as c:
        assert len(c.streams.audio) == 1
        # As the writers do: AAC copied into mov/mp4, re-encoded to Opus for WebM.
        assert c.streams.audio[0].codec_context.name == ("opus" if kind == "webm" else "aac")
        # (type, seconds) in file order; read here: a packet's stream dies with the file.
        packets = [
            (p.stream.type, float(p.duration * p.time_base) if p.duration else 0.0)
            for p in c.demux()
            if p.size
        ]
    seconds = sum(d for t, d in packets if t == "audio")
    assert seconds == pytest.approx(1.0, abs=0.1)
    types = [t for t, _ in packets]
    assert types.index("audio") < len(types) - 1 - types[::-1].index("video")  # interleaved
    info = probe(out)
    assert info.has_audio and info.frame_count == N and info.fps == FPS
    assert info.duration_s == pytest.approx(1.0, abs=0.02)  # the video's
    _same_frames(_read_all([out], kind), _read_all(segments, kind))


def test_concat_segments_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ValueError, match="at least one"):
        concat_segments("prores", [], tmp_path / "x.mov")
    with pytest.raises(ValueError, match="unknown output kind"):
        concat_segments("gif", [tmp_path / "a.gif"], tmp_path / "x.gif")  # type: ignore[arg-type]
    seg = _write("prores", tmp_path / "a.mov", range(2))

    def other(kind: Kind, name: str, width: int = W, fps: Fraction = FPS) -> Path:
        with open_writer(kind, tmp_path / name, width, H, fps) as w:
            w.write(np.zeros((H, width), np.float32), np.zeros((H, width, 3), np.float32))
        return tmp_path / name

    cases = {
        "size": other("prores", "narrow.mov", width=W - 16),
        "fps": other("prores", "fast.mov", fps=Fraction(24)),
        "codec": other("webm", "b.webm"),
    }
    for what, bad in cases.items():
        with pytest.raises(SegmentError, match=what):
            concat_segments("prores", [seg, bad], tmp_path / "x.mov")
    with pytest.raises(SegmentError, match="not a prores segment"):
        concat_segments("prores", [cases["codec"]], tmp_path / "x.mov")
    with pytest.raises(InputError, match="no such file"):
        concat_segments("prores", [seg, tmp_path / "missing.mov"], tmp_path / "x.mov")
    # Other encoder settings (ultrafast turns CABAC off) change the SPS/PPS extradata.
    good = _write("composite", tmp_path / "a.mp4", range(2))
    spec = list(videoio._AV_SPECS["composite"])
    spec[3] = {**spec[3], "preset": "ultrafast"}  # type: ignore[dict-item]
    monkeypatch.setitem(videoio._AV_SPECS, "composite", tuple(spec))  # type: ignore[arg-type]
    fast = _write("composite", tmp_path / "b.mp4", range(2, 4))
    with pytest.raises(SegmentError, match="extradata"):
        concat_segments("composite", [good, fast], tmp_path / "x.mp4")
    # pngzip: frames of another size, and a file that is not a zip.
    zips = [_write("pngzip", tmp_path / "a.zip", range(2)), other("pngzip", "b.zip", W - 16)]
    with pytest.raises(SegmentError, match="48x48, earlier frames are 64x48"):
        concat_segments("pngzip", zips, tmp_path / "x.zip")
    (tmp_path / "junk.zip").write_bytes(b"not a zip")
    with pytest.raises(SegmentError, match="not a readable zip"):
        concat_segments("pngzip", [zips[0], tmp_path / "junk.zip"], tmp_path / "x.zip")
