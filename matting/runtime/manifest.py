"""The manifest written beside every exported model, and its checks at load time.

`manifest.json` in an export directory lists one or more artifacts (ONNX graphs,
TensorRT engines). Each artifact records what a loader needs to trust it:
its file and sha256, format, precision, variant, I/O tensors, the shapes it was
built for (TensorRT profiles), and the parity error measured against PyTorch
when it was made. The ModelConfig travels inside, so the runtime never guesses
the architecture. A loader calls `verified_artifact`, which fails with a
ManifestError before any runtime sees a file that does not match.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from matting.config import ModelConfig
from matting.errors import ManifestError
from matting.fileio import write_bytes_atomic

MANIFEST_NAME = "manifest.json"
# Graph I/O names, shared by the exporter and every runtime.
INPUT_IMAGE = "image"  # (B, H, W, 3) uint8
INPUT_BACKGROUND = "background"  # (B, H, W, 3) uint8, background-guided models only
INPUT_NUM_PATCHES = "num_patches"  # () int64, top-k budget per image (sparse graphs)
OUTPUT_ALPHA = "alpha"  # (B, 1, H, W)
OUTPUT_FOREGROUND = "foreground"  # (B, 3, H, W)
OUTPUT_PATCHES = "patches"  # (B*k, 3) int64 [batch, row, col] (sparse graphs)
MANIFEST_VERSION = 1

Format = Literal["onnx", "tensorrt"]
Precision = Literal["fp32", "fp16"]
Variant = Literal["sparse", "dense"]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class TensorSpec(_Frozen):
    """One graph input or output; symbolic dimensions are names such as "height"."""

    name: str
    dtype: str
    shape: tuple[int | str, ...]


class Profile(_Frozen):
    """Shapes a TensorRT engine accepts: batch and image size ranges, and the
    size it was tuned for. Dimensions are (batch, height, width)."""

    name: str
    min: tuple[int, int, int]
    opt: tuple[int, int, int]
    max: tuple[int, int, int]

    def accepts(self, batch: int, height: int, width: int) -> bool:
        shape = (batch, height, width)
        return all(lo <= v <= hi for lo, v, hi in zip(self.min, shape, self.max, strict=True))


class ParityRecord(_Frozen):
    """One parity case: the artifact against PyTorch float32 on the same input.

    alpha/foreground errors are measured with the refiner fed the artifact's own
    patch selection; score_gap is how far below PyTorch's k-th best score the
    artifact's worst pick fell (0 when it chose a valid top-k), and
    free_alpha_error the error when each side picks its own patches."""

    case: str
    batch: int
    height: int
    width: int
    num_patches: int | None
    max_alpha_error: float
    max_foreground_error: float
    mean_alpha_error: float = 0.0
    # Share of pixels whose alpha is off by more than 0.05: a steep model edge
    # can flip a few pixels under float16 rounding while the rest agree.
    outlier_fraction: float = 0.0
    score_gap: float | None = None
    selection_agreement: float | None = None
    free_alpha_error: float | None = None


class Artifact(_Frozen):
    file: str
    sha256: str
    bytes: int = Field(ge=0)
    format: Format
    precision: Precision
    variant: Variant
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    profiles: tuple[Profile, ...] = ()
    parity: tuple[ParityRecord, ...] = ()
    parity_tolerance: float | None = None
    device: str | None = None  # what built or checked it, e.g. "cpu" or a GPU name

    @property
    def max_alpha_error(self) -> float | None:
        return max((p.max_alpha_error for p in self.parity), default=None)


class Manifest(_Frozen):
    manifest_version: int = MANIFEST_VERSION
    model: ModelConfig
    opset: int
    checkpoint_sha256: str  # the weights digest of the source checkpoint
    created: str
    versions: dict[str, str]
    artifacts: tuple[Artifact, ...] = ()

    def with_artifact(self, artifact: Artifact) -> Manifest:
        """A copy with `artifact` added, replacing one of the same file name."""
        kept = tuple(a for a in self.artifacts if a.file != artifact.file)
        return self.model_copy(update={"artifacts": (*kept, artifact)})

    def find(
        self,
        format: Format,
        precision: Precision | None = None,
        variant: Variant = "sparse",
    ) -> Artifact | None:
        for a in self.artifacts:
            same = a.format == format and a.variant == variant
            if same and (precision is None or a.precision == precision):
                return a
        return None


def sha256_file(path: str | os.PathLike[str], chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def manifest_path(path: str | os.PathLike[str]) -> Path:
    """The manifest of an export directory, or the path itself if it names one."""
    p = Path(path)
    return p / MANIFEST_NAME if p.is_dir() else p


def write_manifest(directory: str | os.PathLike[str], manifest: Manifest) -> Path:
    path = Path(directory) / MANIFEST_NAME
    write_bytes_atomic(path, (manifest.model_dump_json(indent=2) + "\n").encode())
    return path


def read_manifest(path: str | os.PathLike[str]) -> Manifest:
    """Parse and validate a manifest (a directory or the JSON file itself)."""
    p = manifest_path(path)
    if not p.is_file():
        raise ManifestError(f"no manifest at {p}; export the model with `matting export onnx`")
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ManifestError(f"{p}: not a readable JSON manifest ({e})") from None
    if not isinstance(data, dict):
        raise ManifestError(f"{p}: a manifest is a JSON object")
    version = data.get("manifest_version")
    if version != MANIFEST_VERSION:
        raise ManifestError(
            f"{p}: manifest_version {version!r} is not supported (this build reads "
            f"{MANIFEST_VERSION}); export the model again with this version"
        )
    try:
        return Manifest.model_validate(data)
    except ValidationError as e:
        first = e.errors()[0]
        where = ".".join(str(x) for x in first["loc"])
        raise ManifestError(f"{p}: invalid manifest at {where}: {first['msg']}") from None


def verified_artifact(directory: str | os.PathLike[str], artifact: Artifact) -> Path:
    """The artifact's path, after checking that it exists and matches its sha256."""
    root = manifest_path(directory).parent
    path = (root / artifact.file).resolve()
    if root.resolve() not in path.parents:
        raise ManifestError(f"artifact {artifact.file!r} lies outside {root}")
    if not path.is_file():
        raise ManifestError(f"{path}: listed in the manifest but missing")
    digest = sha256_file(path)
    if digest != artifact.sha256:
        raise ManifestError(
            f"{path}: sha256 {digest[:16]}... does not match the manifest's "
            f"{artifact.sha256[:16]}...; the file was changed or corrupted after export"
        )
    return path
