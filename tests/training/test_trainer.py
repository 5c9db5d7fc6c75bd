"""End-to-end training on generated data: a few real steps, resume, MLB, the CLI."""

from __future__ import annotations

import csv
import multiprocessing
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from matting.checkpoint import load_checkpoint, read_checkpoint_info
from matting.errors import CheckpointError, InputError
from tests.training.conftest import TINY_MODEL, write_config, write_pairs
from training.config import TrainConfig, load_config
from training.trainer import Run, train

SYNTH = """
crop = 64
coarse_long_side = 32
batch_size = 2
warmup_steps = 1
lr = 1e-3
save_every = 2
[[data]]
kind = "synthetic"
"""


def _log(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def test_short_run_trains_and_writes_a_checkpoint(tmp_path: Path) -> None:
    cfg = load_config(write_config(tmp_path / "a.toml", f"steps = 4\noutput = 'run'\n{SYNTH}"))
    before = Run(cfg, progress=False).model.state_dict()
    path = train(cfg, progress=False)
    assert path == tmp_path / "run" / "model.safetensors"
    model, meta = load_checkpoint(path)
    assert model.config.semantic_head
    assert meta.metadata["training"]["step"] == 4
    changed = [k for k, v in model.state_dict().items() if not torch.equal(v, before[k])]
    assert len(changed) > 0.9 * len(before)  # every layer learned something
    rows = _log(tmp_path / "run" / "log.csv")
    assert [int(r["step"]) for r in rows] == [1, 2, 3, 4]
    for r in rows:
        assert float(r["loss"]) > 0 and float(r["semantic"]) > 0 and float(r["laplacian"]) > 0
    out = model.eval()(torch.rand(1, 3, 40, 56))
    assert torch.isfinite(out.alpha).all()


class _StopError(Exception):
    pass


@pytest.fixture(scope="module")
def whole_run(tmp_path_factory: pytest.TempPathFactory) -> TrainConfig:
    """A 5-step run made without interruption and without workers."""
    tmp = tmp_path_factory.mktemp("whole")
    whole = load_config(write_config(tmp / "w.toml", f"steps = 5\n{SYNTH}\n")).model_copy(
        update={"output": tmp / "whole"}
    )
    train(whole, progress=False)
    return whole


def _assert_same_run(a_dir: Path, b_dir: Path) -> None:
    a = torch.load(a_dir / "state.pt", weights_only=True)
    b = torch.load(b_dir / "state.pt", weights_only=True)
    assert a["step"] == b["step"] == 5
    for name, t in a["model"].items():
        assert torch.equal(t, b["model"][name]), name
    sa, sb = a["optimizer"]["state"], b["optimizer"]["state"]
    assert all(torch.equal(sa[i]["exp_avg"], sb[i]["exp_avg"]) for i in sa)
    la, lb = _log(a_dir / "log.csv"), _log(b_dir / "log.csv")
    assert [r["loss"] for r in la] == [r["loss"] for r in lb]  # step 3 logged once


def test_resume_gives_the_same_state_as_an_uninterrupted_run(
    tmp_path: Path, whole_run: TrainConfig
) -> None:
    cut = whole_run.model_copy(update={"output": tmp_path / "cut"})
    run = Run(cut, progress=False)

    def stop_after_three(step: int, row: dict[str, float]) -> None:
        if step == 3:  # saved at step 2; step 3 is lost as in a crash
            raise _StopError

    with pytest.raises(_StopError):
        run.train(on_step=stop_after_three)
    resumed = Run(cut, progress=False)
    assert resumed.resume() and resumed.step == 2
    resumed.train()
    _assert_same_run(whole_run.output, cut.output)


def test_workers_make_the_same_run_resume_and_leave_no_process(
    tmp_path: Path, whole_run: TrainConfig
) -> None:
    """Batches made ahead in worker processes give the run made without them, bit
    for bit, through a crash and a resume; the workers end with the run."""
    pooled = whole_run.model_copy(update={"output": tmp_path / "pooled", "workers": 2})
    children: list[int] = []

    def stop_after_three(step: int, row: dict[str, float]) -> None:
        children.append(len(multiprocessing.active_children()))
        if step == 3:
            raise _StopError

    with pytest.raises(_StopError):
        Run(pooled, progress=False).train(on_step=stop_after_three)
    assert min(children) >= 2, "no worker processes made the batches"
    assert multiprocessing.active_children() == []
    resumed = Run(pooled, progress=False)
    assert resumed.resume() and resumed.step == 2
    resumed.train()
    assert multiprocessing.active_children() == []
    _assert_same_run(whole_run.output, pooled.output)


def test_a_bad_photo_fails_the_same_way_with_and_without_workers(tmp_path: Path) -> None:
    seg = write_pairs(tmp_path / "seg", "images", "masks", 5, (48, 64), 1)
    (seg / "images" / "002.jpg").write_bytes(b"\xff\xd8 truncated")
    body = f"""steps = 4
crop = 64
coarse_long_side = 32
batch_size = 2
[[data]]
kind = "segmentation"
path = "{seg}"
"""
    cfg = load_config(write_config(tmp_path / "c.toml", body))
    messages = []
    for workers in (0, 2):
        run = Run(
            cfg.model_copy(update={"workers": workers, "output": tmp_path / f"w{workers}"}),
            progress=False,
        )
        with pytest.raises(InputError, match=r"002\.jpg") as caught:
            run.train()
        messages.append(str(caught.value))
    assert messages[0] == messages[1] and "Traceback" not in messages[1]
    assert multiprocessing.active_children() == []


def test_mlb_student_learns_from_blended_labels(tmp_path: Path, seg_folder: Path) -> None:
    teacher_cfg = load_config(
        write_config(tmp_path / "t.toml", f"steps = 2\noutput = 'teacher'\n{SYNTH}")
    )
    teacher_path = train(teacher_cfg, progress=False)
    body = f"""
steps = 2
output = "student"
trainer = "mlb"
crop = 64
coarse_long_side = 32
batch_size = 3
save_every = 2
[mlb]
teacher = "{teacher_path}"
ema_decay = 0.5
matte_share = 0.34
[[data]]
kind = "segmentation"
path = "{seg_folder}"
[[data]]
kind = "synthetic"
"""
    cfg = load_config(write_config(tmp_path / "s.toml", body))
    run = Run(cfg, progress=False)
    assert run.teacher is not None and run.matte_mixture is not None
    assert len(run.mixture.slots) == 2 and len(run.matte_mixture.slots) == 1
    t0 = {k: v.clone() for k, v in run.teacher.state_dict().items()}
    run.train()
    moved = [
        k
        for k, v in run.teacher.state_dict().items()
        if v.is_floating_point() and not torch.equal(v, t0[k])
    ]
    assert moved, "the EMA update never reached the teacher"
    info = read_checkpoint_info(tmp_path / "student" / "model.safetensors")
    assert info.metadata["training"]["trainer"] == "mlb"


def test_init_ignores_serving_knobs_but_not_the_architecture(tmp_path: Path) -> None:
    first = load_config(write_config(tmp_path / "a.toml", f"steps = 1\noutput = 'a'\n{SYNTH}"))
    path = train(first, progress=False)
    stage = f"steps = 1\noutput = 'b'\ninit = '{path}'\n{SYNTH}"
    # A stage may serve its result otherwise (the shipped student.toml does so).
    knobs = TINY_MODEL.replace(" }", ", flip_average = true, coarse_scales = [0.75, 1.0, 1.5] }")
    (tmp_path / "b.toml").write_text(knobs + stage, encoding="utf-8")
    run = Run(load_config(tmp_path / "b.toml"), progress=False)
    assert run.model.config.flip_average and run.model.config.coarse_scales == (0.75, 1.0, 1.5)
    before, _ = load_checkpoint(path)
    for name, t in before.state_dict().items():
        assert torch.equal(t, run.model.state_dict()[name]), name
    wider = TINY_MODEL.replace("aspp_channels = 16", "aspp_channels = 24")
    (tmp_path / "c.toml").write_text(wider + stage, encoding="utf-8")
    with pytest.raises(CheckpointError, match="architecture differs"):
        Run(load_config(tmp_path / "c.toml"), progress=False)


def test_cli_train_runs_and_reports_bad_configs(tmp_path: Path) -> None:
    cfg = write_config(tmp_path / "c.toml", f"steps = 2\noutput = 'cli'\n{SYNTH}")
    cmd = [sys.executable, "-m", "matting.cli", "train", "--config", str(cfg), "--no-progress"]
    done = subprocess.run([*cmd, "--workers", "1"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().endswith("model.safetensors")
    bad = tmp_path / "bad.toml"
    bad.write_text("steps = -3\n[[data]]\nkind = 'synthetic'\n")
    done = subprocess.run(
        [*cmd[:4], "--config", str(bad)], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 1
    assert done.stderr.startswith("error:") and "steps" in done.stderr
    assert "Traceback" not in done.stderr
