from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from matting.cli import cli


def test_bench_writes_medians_json_and_plot(tiny_checkpoint: Path, tmp_path: Path) -> None:
    out, png = tmp_path / "b.json", tmp_path / "b.png"
    args = ["bench", "--checkpoint", str(tiny_checkpoint), "--backends", "torch"]
    args += ["--sizes", "64x48,96x64", "--batches", "1,2", "--precisions", "fp32,fp16"]
    args += ["--rounds", "3", "--fraction", "0.1", "--json", str(out), "--plot", str(png)]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    report = json.loads(out.read_text())
    rows = report["results"]
    # fp16 on torch is skipped on a CPU; 2 sizes x 2 batches x sparse/dense remain.
    assert len(rows) == 8 and all(r["runs"] == 3 and r["median_seconds"] > 0 for r in rows)
    sparse = [r for r in rows if r["refine"] == "sparse"]
    assert {r["num_patches"] for r in sparse} == {round(0.1 * 16 * 12), round(0.1 * 24 * 16)}
    assert len(report["sparse_vs_dense"]) == 4 and "decode" in report["includes"]
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    bad = CliRunner().invoke(cli, ["bench", "--backends", "nope", "--sizes", "64x48"])
    assert bad.exit_code != 0 and "unknown backends" in bad.output
