"""Checkpoints: safetensors weights with the model config and metadata in the header.

One file holds everything. Its safetensors metadata (string to string) carries
- "matting.format": "checkpoint", marking the file as ours;
- "matting.format_version": the layout version, checked on load;
- "matting.config": the ModelConfig as JSON;
- "matting.metadata": free JSON (package version, training data, metrics);
- "matting.weights_sha256": a digest of every tensor, so flipped bits are caught.
Every way a load can fail ends in one CheckpointError that names the problem.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from pydantic import ValidationError
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from matting.config import ModelConfig
from matting.errors import CheckpointError
from matting.fileio import atomic_path
from matting.models.network import MattingNet, build_model

FORMAT = "checkpoint"
FORMAT_VERSION = 1
_KEY_FORMAT = "matting.format"
_KEY_VERSION = "matting.format_version"
_KEY_CONFIG = "matting.config"
_KEY_METADATA = "matting.metadata"
_KEY_DIGEST = "matting.weights_sha256"


@dataclass(frozen=True)
class CheckpointInfo:
    path: Path
    config: ModelConfig
    format_version: int
    metadata: dict[str, Any] = field(default_factory=dict)


def weights_digest(tensors: dict[str, torch.Tensor]) -> str:
    """sha256 over names, dtypes, shapes and bytes of the tensors, in name order."""
    h = hashlib.sha256()
    for name in sorted(tensors):
        t = tensors[name].detach().cpu().contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}\n".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def save_checkpoint(
    path: str | os.PathLike[str], model: MattingNet, metadata: dict[str, Any] | None = None
) -> Path:
    """Write model weights, config and metadata to one file, atomically."""
    from matting import __version__

    path = Path(path)
    tensors = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    meta = {"matting_version": __version__, **(metadata or {})}
    header = {
        _KEY_FORMAT: FORMAT,
        _KEY_VERSION: str(FORMAT_VERSION),
        _KEY_CONFIG: model.config.model_dump_json(),
        _KEY_METADATA: json.dumps(meta, sort_keys=True),
        _KEY_DIGEST: weights_digest(tensors),
    }
    with atomic_path(path) as tmp:  # a crash never leaves half a checkpoint
        save_file(tensors, str(tmp), metadata=header)
    return path


def read_checkpoint_info(path: str | os.PathLike[str]) -> CheckpointInfo:
    """Read and validate the header only (config, version, metadata)."""
    path = Path(path)
    header, _ = _open(path, load_tensors=False)
    return _parse_header(path, header)


def load_checkpoint(
    path: str | os.PathLike[str], device: str | torch.device = "cpu"
) -> tuple[MattingNet, CheckpointInfo]:
    """Rebuild the model from the checkpoint's config and load its weights (eval mode)."""
    path = Path(path)
    header, tensors = _open(path, load_tensors=True)
    info = _parse_header(path, header)
    if weights_digest(tensors) != header.get(_KEY_DIGEST):
        raise CheckpointError(
            f"{path}: the weights do not match their recorded checksum; the file is corrupt"
        )
    try:
        model = build_model(info.config)
    except (RuntimeError, ValueError, MemoryError) as e:
        raise CheckpointError(f"{path}: its config does not build a model ({e})") from None
    _check_tensors(path, info.config, model, tensors)
    model.load_state_dict(tensors, strict=True)
    return model.to(device).eval(), info


def _open(path: Path, load_tensors: bool) -> tuple[dict[str, str], dict[str, torch.Tensor]]:
    try:
        st = path.stat()
    except FileNotFoundError:
        raise CheckpointError(f"{path}: no such checkpoint file") from None
    except OSError as e:
        raise CheckpointError(f"{path}: cannot read the checkpoint ({e.strerror or e})") from None
    if not stat.S_ISREG(st.st_mode):
        raise CheckpointError(f"{path}: is not a file")
    if st.st_size == 0:
        raise CheckpointError(f"{path}: the checkpoint file is empty")
    try:
        with safe_open(str(path), framework="pt", device="cpu") as f:
            header = dict(f.metadata() or {})
            if _KEY_FORMAT not in header:
                names = sorted(f.keys())[:3]
                raise CheckpointError(
                    f"{path}: a safetensors file but not a matting checkpoint "
                    f"(no '{_KEY_FORMAT}' metadata; tensors such as {names}); "
                    "it was written by another program or for another model"
                )
            tensors = {k: f.get_tensor(k) for k in f.keys()} if load_tensors else {}  # noqa: SIM118
    except CheckpointError:
        raise
    except (SafetensorError, OSError, ValueError, RuntimeError) as e:
        detail = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise CheckpointError(
            f"{path}: not a readable safetensors checkpoint; it is corrupt, truncated "
            f"or of another format ({detail})"
        ) from None
    return header, tensors


def _parse_header(path: Path, header: dict[str, str]) -> CheckpointInfo:
    if header.get(_KEY_FORMAT) != FORMAT:
        raise CheckpointError(
            f"{path}: '{_KEY_FORMAT}' is {header.get(_KEY_FORMAT)!r}, not a checkpoint"
        )
    try:
        version = int(header.get(_KEY_VERSION, ""))
    except ValueError:
        raise CheckpointError(f"{path}: missing or invalid '{_KEY_VERSION}'") from None
    if version < 1:
        raise CheckpointError(f"{path}: invalid '{_KEY_VERSION}' {version}")
    if version > FORMAT_VERSION:
        raise CheckpointError(
            f"{path}: written in checkpoint format {version}; this version of matting reads "
            f"format {FORMAT_VERSION} and older; upgrade matting"
        )
    try:
        config = ModelConfig.model_validate_json(header.get(_KEY_CONFIG, ""))
    except ValidationError as e:
        problems = "; ".join(
            f"{'.'.join(map(str, err['loc'])) or 'config'}: {err['msg']}" for err in e.errors()[:3]
        )
        raise CheckpointError(f"{path}: the model config is invalid ({problems})") from None
    try:
        metadata = json.loads(header.get(_KEY_METADATA, "{}"))
    except json.JSONDecodeError:
        raise CheckpointError(f"{path}: the metadata is not valid JSON") from None
    if not isinstance(metadata, dict):
        raise CheckpointError(f"{path}: the metadata must be a JSON object")
    return CheckpointInfo(path, config, version, metadata)


def _check_tensors(
    path: Path, config: ModelConfig, model: MattingNet, tensors: dict[str, torch.Tensor]
) -> None:
    """Compare names and shapes with the model the config builds; one summary error."""
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    found = {k: tuple(v.shape) for k, v in tensors.items()}
    missing = sorted(set(expected) - set(found))
    unexpected = sorted(set(found) - set(expected))
    reshaped = sorted(k for k in set(expected) & set(found) if expected[k] != found[k])
    if not (missing or unexpected or reshaped):
        return
    parts = []
    if missing:
        parts.append(f"{len(missing)} missing (e.g. {missing[0]})")
    if unexpected:
        parts.append(f"{len(unexpected)} unexpected (e.g. {unexpected[0]})")
    if reshaped:
        k = reshaped[0]
        parts.append(f"{len(reshaped)} of another shape (e.g. {k}: {found[k]} vs {expected[k]})")
    raise CheckpointError(
        f"{path}: the weights belong to another architecture than its config "
        f"(backbone={config.backbone}, background_input={config.background_input}): "
        + ", ".join(parts)
    )
