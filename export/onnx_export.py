"""`matting export onnx`: checkpoint -> ONNX graphs, gated, with a manifest.

For each requested (variant, precision):
1. trace `export.graph.ExportGraph` with the TorchScript-based exporter: image
   sizes and k are traced as graph values (Shape, integer arithmetic, TopK with
   a K input), so one graph serves any batch, height, width and k;
2. `onnx.checker.check_model(full_check=True)`;
3. ONNX Runtime on the CPU against PyTorch float32 (`export.parity`);
4. record the artifact (I/O, sha256, parity) in manifest.json.
A graph that fails a gate is deleted and the export stops with the numbers;
artifacts that passed earlier stay listed.
"""

from __future__ import annotations

import copy
import os
import platform
import warnings
from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch

import matting
from export.graph import ExportGraph, Variant, dynamic_axes, input_names, output_names
from export.parity import Gate, ParityCase, default_cases, parity_failures, run_parity
from matting.checkpoint import load_checkpoint, weights_digest
from matting.errors import ExportError
from matting.fileio import atomic_path
from matting.models.network import MattingNet
from matting.runtime.manifest import (
    Artifact,
    Manifest,
    ParityRecord,
    Precision,
    TensorSpec,
    read_manifest,
    sha256_file,
    write_manifest,
)

MIN_OPSET = 17
DEFAULT_OPSET = 17
# Gates against PyTorch float32 with the same patches. float32 must agree to 1e-3
# everywhere. float16 rounding moves features by ~1e-3 relative, and the coarse
# alpha is a clamp of a steep ramp (raw values reach +-5000 on the default
# model), so a few edge pixels may flip while the rest agree: its gate bounds
# the mean and the share of such pixels, and the max is recorded, not gated.
GATES: dict[Precision, Gate] = {
    "fp32": Gate(max_alpha=1e-3, mean_alpha=1e-4, outliers=0.0, max_foreground=2e-3, score=1e-3),
    "fp16": Gate(max_alpha=1.0, mean_alpha=3e-3, outliers=5e-3, max_foreground=1.0, score=3e-2),
}
_DTYPES: dict[Precision, torch.dtype] = {"fp32": torch.float32, "fp16": torch.float16}
_ONNX_TYPES = {1: "float32", 7: "int64", 2: "uint8", 10: "float16"}


def artifact_name(variant: Variant, precision: Precision) -> str:
    return f"model.{precision}.onnx" if variant == "sparse" else f"model.dense.{precision}.onnx"


def versions() -> dict[str, str]:
    import onnx
    import onnxruntime

    return {
        "matting": matting.__version__,
        "torch": torch.__version__,
        "onnx": onnx.__version__,
        "onnxruntime": onnxruntime.__version__,
        "python": platform.python_version(),
    }


def _example_inputs(model: MattingNet, variant: Variant) -> tuple[torch.Tensor, ...]:
    # Any size works (sizes are traced, not frozen); an odd one keeps the trace
    # honest about padding.
    image = torch.randint(0, 256, (1, 300, 420, 3), dtype=torch.uint8)
    args: list[torch.Tensor] = [image]
    if model.config.background_input:
        args.append(image.flip(2).contiguous())
    if variant == "sparse":
        args.append(torch.tensor(50, dtype=torch.int64))
    return tuple(args)


def trace_to_onnx(
    model: MattingNet, path: Path, variant: Variant, precision: Precision, opset: int
) -> None:
    """Write the graph of `model` at a precision to `path` (atomically)."""
    if opset < MIN_OPSET:
        raise ExportError(f"opset {opset} is too old; use {MIN_OPSET} or later")
    net = copy.deepcopy(model).to(_DTYPES[precision]).eval()
    graph = ExportGraph(net, variant).eval()
    with atomic_path(path) as tmp, warnings.catch_warnings():
        # The tracer warns on every size it sees turned into a Python value; the
        # parity gate is what shows the graph stayed general.
        warnings.simplefilter("ignore", category=torch.jit.TracerWarning)
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        warnings.filterwarnings("ignore", category=FutureWarning)
        warnings.filterwarnings("ignore", message="Constant folding", category=UserWarning)
        torch.onnx.export(
            graph,
            _example_inputs(model, variant),
            str(tmp),
            dynamo=False,
            opset_version=opset,
            input_names=input_names(model, variant),
            output_names=output_names(variant),
            dynamic_axes=dynamic_axes(model, variant),
            do_constant_folding=True,
        )


def check_graph(path: Path) -> None:
    """Gate 1: the ONNX checker with full (shape-inferring) checks."""
    import onnx

    try:
        onnx.checker.check_model(str(path), full_check=True)
    except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as e:
        raise ExportError(f"{path.name} fails the ONNX checker: {e}") from None


def tensor_specs(path: Path) -> tuple[tuple[TensorSpec, ...], tuple[TensorSpec, ...]]:
    """Inputs and outputs of an ONNX file, with symbolic dimensions by name."""
    import onnx

    graph = onnx.load(str(path), load_external_data=False).graph

    def spec(v: onnx.ValueInfoProto) -> TensorSpec:
        t = v.type.tensor_type
        dims = tuple(d.dim_param or d.dim_value for d in t.shape.dim)
        return TensorSpec(
            name=v.name, dtype=_ONNX_TYPES.get(t.elem_type, str(t.elem_type)), shape=dims
        )

    return tuple(spec(v) for v in graph.input), tuple(spec(v) for v in graph.output)


class OrtRunner:
    """A parity runner over an ONNX Runtime session on the CPU."""

    def __init__(self, path: Path, threads: int | None = None) -> None:
        import onnxruntime as ort

        opts = ort.SessionOptions()
        if threads:
            opts.intra_op_num_threads = threads
        self.session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])

    def __call__(self, feed: dict[str, np.ndarray]) -> list[np.ndarray]:
        return list(self.session.run(None, feed))


def _load_or_start(out_dir: Path, model: MattingNet, opset: int) -> Manifest:
    fresh = Manifest(
        model=model.config,
        opset=opset,
        checkpoint_sha256=weights_digest(model.state_dict()),
        created=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        versions=versions(),
    )
    if not (out_dir / "manifest.json").exists():
        return fresh
    old = read_manifest(out_dir)
    if old.checkpoint_sha256 != fresh.checkpoint_sha256 or old.opset != opset:
        return fresh  # another model or opset: its artifacts no longer describe this one
    return old.model_copy(update={"versions": fresh.versions, "created": fresh.created})


def export_onnx(
    checkpoint: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    *,
    precisions: Sequence[Precision] = ("fp32", "fp16"),
    variants: Sequence[Variant] = ("sparse",),
    opset: int = DEFAULT_OPSET,
    cases: Sequence[ParityCase] | None = None,
    log: Callable[[str], None] = lambda _msg: None,
    tta: bool = True,
) -> Manifest:
    """Export, gate and record every (variant, precision); returns the manifest.
    tta=False traces the model without its test-time augmentation."""
    model, _ = load_checkpoint(checkpoint)
    if not tta:
        model.config = model.config.without_test_time_augmentation()
    model.eval()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    manifest = _load_or_start(out, model, opset)
    cases = list(cases) if cases is not None else default_cases(model.config)
    for variant in variants:
        for precision in precisions:
            name = artifact_name(variant, precision)
            path = out / name
            log(f"{name}: tracing")
            trace_to_onnx(model, path, variant, precision, opset)
            try:
                log(f"{name}: onnx.checker (full)")
                check_graph(path)
                records = _parity(path, model, cases, variant, log)
                failures = parity_failures(records, GATES[precision])
                if failures:
                    raise ExportError(f"{name} fails the parity gate: " + "; ".join(failures))
            except BaseException:
                path.unlink(missing_ok=True)
                raise
            inputs, outputs = tensor_specs(path)
            artifact = Artifact(
                file=name,
                sha256=sha256_file(path),
                bytes=path.stat().st_size,
                format="onnx",
                precision=precision,
                variant=variant,
                inputs=inputs,
                outputs=outputs,
                parity=tuple(records),
                parity_tolerance=GATES[precision].max_alpha,
                device="cpu (onnxruntime CPUExecutionProvider)",
            )
            manifest = manifest.with_artifact(artifact)
            write_manifest(out, manifest)
            worst = max((r.max_alpha_error for r in records), default=0.0)
            log(f"{name}: passed, max alpha error {worst:.2e}")
    return manifest


def _parity(
    path: Path,
    model: MattingNet,
    cases: Sequence[ParityCase],
    variant: Variant,
    log: Callable[[str], None],
) -> list[ParityRecord]:
    runner = OrtRunner(path)
    return run_parity(
        runner,
        model,
        cases,
        sparse=variant == "sparse",
        progress=lambda case: log(f"{path.name}: parity {case}"),
    )
