"""Decoding of user images (with limits) and encoding of matting outputs.

Inputs come from people and the network, so decoding is defensive: the type is
identified from the bytes (never a file name), the byte count and the pixel
count are checked before any pixel is decoded (decompression bombs), and every
Pillow exception or warning becomes an InputError with a one-line message.

Arrays: decoded images are (H, W, 3) uint8 RGB plus an optional (H, W) uint8
alpha; outputs are built from alpha (H, W) and foreground (H, W, 3) floats in
[0, 1] (see matting.compositing).
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import stat
import struct
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, get_args

import numpy as np
from PIL import Image, ImageColor, ImageOps, UnidentifiedImageError

from matting.compositing import composite, premultiply, to_float, to_uint8
from matting.errors import InputError, InputTooLargeError, MattingError, UnsupportedTypeError

__all__ = [
    "DecodedImage",
    "ImageLimits",
    "OutputFormat",
    "OutputKind",
    "decode_image",
    "default_format",
    "encode_output",
    "extension",
    "parse_color",
    "read_image",
    "resize_cover",
]

OutputKind = Literal["rgba", "alpha", "foreground", "composite"]
OutputFormat = Literal["png", "webp", "jpeg"]

_EXPECTED = "expected JPEG, PNG or WebP"
# Pillow's names for the accepted types; camera JPEGs with extra frames (MPO)
# come out of the JPEG factory and are plain JPEGs as far as we are concerned.
_PIL_FORMATS = ("JPEG", "PNG", "WEBP")
_FORMAT_NAMES = {"JPEG": "JPEG", "MPO": "JPEG", "PNG": "PNG", "WEBP": "WEBP"}
_GREY16_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I")
_WEBP_MAX_SIDE = 16383  # a limit of the WebP bitstream (14-bit sizes)
_JPEG_QUALITY = 95
_EXTENSIONS = {"png": ".png", "webp": ".webp", "jpeg": ".jpg"}
_PIL_SAVE_NAMES = {"png": "PNG", "webp": "WEBP", "jpeg": "JPEG"}

# Builds the error to raise, prefixing the message with the file name if any.
_Fail = Callable[[type[InputError], str], InputError]


@dataclass(frozen=True)
class ImageLimits:
    """Upper bounds an input must satisfy before its pixels are decoded."""

    max_bytes: int = 64 * 1024 * 1024
    max_pixels: int = 40_000_000  # 8K UHD (7680x4320 = 33.2 MP) fits
    max_side: int = 16384

    def __post_init__(self) -> None:
        for name in ("max_bytes", "max_pixels", "max_side"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"ImageLimits.{name} must be a positive integer, got {value!r}")


# eq=False: the generated __eq__/__hash__ would compare and hash arrays, which
# raises for numpy arrays; identity semantics are the useful ones here.
@dataclass(frozen=True, eq=False)
class DecodedImage:
    """A decoded input image.

    rgb: (H, W, 3) uint8, C-contiguous, EXIF orientation applied.
    alpha: (H, W) uint8 when the source had transparency (RGBA, LA, palette or
        colour-key transparency), else None.
    format: the detected type, "JPEG", "PNG" or "WEBP".
    """

    rgb: np.ndarray
    alpha: np.ndarray | None
    format: str


# --------------------------------------------------------------------------- decoding


def decode_image(data: bytes, limits: ImageLimits = ImageLimits()) -> DecodedImage:
    """Decode JPEG, PNG or WebP bytes into a DecodedImage (see its shapes).

    Raises InputTooLargeError above a limit and InputError for anything that is
    empty, of another type, truncated or corrupt.
    """
    return _decode(data, limits, source=None)


def read_image(path: str | os.PathLike[str], limits: ImageLimits = ImageLimits()) -> DecodedImage:
    """Read and decode an image file; errors name the path.

    The size is checked with stat before reading, so an oversized file is
    refused without loading it.
    """
    name = os.fsdecode(os.fspath(path))
    try:
        st = os.stat(path)
    except OSError as e:
        raise InputError(_os_error_message(name, e)) from None
    if stat.S_ISDIR(st.st_mode):
        raise InputError(f"{name}: is a directory, not an image file; {_EXPECTED}")
    # Only a regular file's stat size is meaningful (pipes report 0); the read
    # below is bounded anyway, so a growing or special file cannot exceed the limit.
    if stat.S_ISREG(st.st_mode) and st.st_size > limits.max_bytes:
        raise InputTooLargeError(f"{name}: {_too_many_bytes(st.st_size, limits)}")
    try:
        with open(path, "rb") as f:
            data = f.read(limits.max_bytes + 1)
    except OSError as e:
        raise InputError(_os_error_message(name, e)) from None
    return _decode(data, limits, source=name)


def _os_error_message(name: str, e: OSError) -> str:
    if isinstance(e, FileNotFoundError):
        return f"{name}: no such file"
    if isinstance(e, PermissionError):
        return f"{name}: permission denied"
    if isinstance(e, IsADirectoryError):
        return f"{name}: is a directory, not an image file; {_EXPECTED}"
    return f"{name}: cannot read the file ({e.strerror or e})"


def _decode(data: bytes, limits: ImageLimits, source: str | None) -> DecodedImage:
    def fail(cls: type[InputError], message: str) -> InputError:
        return cls(f"{source}: {message}" if source else message)

    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise TypeError(f"data must be bytes, got {type(data).__name__}")
    n = len(data)
    if n == 0:
        raise fail(InputError, f"empty input: 0 bytes; {_EXPECTED}")
    if n > limits.max_bytes:
        raise fail(InputTooLargeError, _too_many_bytes(n, limits))
    data = bytes(data)

    _install_warning_filters()
    try:
        return _decode_checked(data, limits, fail)
    except (MattingError, MemoryError):
        # MemoryError is the server's condition, not a fault of the input.
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise fail(InputTooLargeError, _bomb_message(data, e, limits)) from None
    except Exception as e:
        # Pillow signals bad data with OSError, SyntaxError, ValueError,
        # EOFError, struct.error, zlib.error...; all mean the same to a user.
        kind = _signature(data) or "image"
        raise fail(
            InputError,
            f"{kind} data is truncated or corrupt ({_one_line(e)}); {n} bytes read",
        ) from e


def _install_warning_filters() -> None:
    """Pillow reports oversized images with a warning (then an error above twice
    its limit) and its plugins warn about odd metadata. Warnings must not reach
    the user: the bomb warning becomes an exception, the rest are benign and
    dropped. The filters are installed once for the process and never undone:
    warnings.catch_warnings() around each decode would swap process-global
    state back and forth under the service's concurrent decoding threads.
    Installing is checked on every call (a scan of a short list) because test
    runners and other code may reset the filters."""
    bomb = Image.DecompressionBombWarning
    if any(f[0] == "error" and f[2] is bomb for f in warnings.filters):
        return
    warnings.filterwarnings("ignore", module=r"PIL(\.|$)")
    # Inserted last, so it is matched first.
    warnings.filterwarnings("error", category=bomb)


def _decode_checked(data: bytes, limits: ImageLimits, fail: _Fail) -> DecodedImage:
    # The WebP plugin allocates its canvas while opening, before Image.open can
    # be asked for the size, so WebP sizes are read from the header first.
    sniffed = _header_size(data)
    if sniffed is not None and sniffed[0] == "WEBP":
        _check_size(sniffed[1], limits, fail)
    try:
        im = Image.open(io.BytesIO(data), formats=list(_PIL_FORMATS))
    except UnidentifiedImageError:
        raise _unidentified(data, fail) from None
    with im:
        # Image.open only parsed the header: this is the decompression-bomb guard.
        _check_size(im.size, limits, fail)
        fmt = _FORMAT_NAMES.get(im.format or "")
        if fmt is None:  # cannot happen with formats=...; kept as a guard
            raise fail(UnsupportedTypeError, f"unsupported image type {im.format}; {_EXPECTED}")
        im.load()  # first frame of an animation; raises here when truncated
        _apply_orientation(im)
        rgb, alpha = _to_arrays(im)
    return DecodedImage(rgb=rgb, alpha=alpha, format=fmt)


def _apply_orientation(im: Image.Image) -> None:
    """Rotate/flip in place by the EXIF Orientation tag (no copy without one)."""
    # Unreadable EXIF only loses the orientation; refusing a photo whose pixels
    # decoded fine would be worse than showing it unrotated.
    with contextlib.suppress(Exception):
        ImageOps.exif_transpose(im, in_place=True)


def _to_arrays(im: Image.Image) -> tuple[np.ndarray, np.ndarray | None]:
    """A loaded Pillow image -> (rgb (H, W, 3) uint8, alpha (H, W) uint8 or None)."""
    if im.mode in _GREY16_MODES:
        return _grey16_to_arrays(im)
    if im.has_transparency_data:
        # Covers RGBA, LA, PA, palette with a transparent index or per-entry
        # alpha, and L/RGB with a colour key (tRNS): Pillow turns all into RGBA.
        rgba = np.asarray(im if im.mode == "RGBA" else im.convert("RGBA"))
        return np.ascontiguousarray(rgba[..., :3]), np.ascontiguousarray(rgba[..., 3])
    # L, 1, P, CMYK (Adobe-inverted CMYK is undone by the JPEG plugin), 16-bit
    # RGB PNGs (Pillow presents them as 8-bit RGB).
    rgb = im if im.mode == "RGB" else im.convert("RGB")
    return np.array(rgb, dtype=np.uint8, order="C"), None


def _grey16_to_arrays(im: Image.Image) -> tuple[np.ndarray, np.ndarray | None]:
    """16-bit greyscale -> 8-bit by scaling 0..65535 to 0..255 (round(v / 257)).

    Pillow's convert("L") clips these modes at 255 instead of scaling, which
    would turn almost every 16-bit image white.
    """
    raw = np.asarray(im)  # uint16 of the right byte order, or int32 for mode "I"
    v = np.clip(raw, 0, 65535).astype(np.uint32)
    grey = ((v + 128) // 257).astype(np.uint8)
    rgb = np.repeat(grey[..., None], 3, axis=2)
    alpha = None
    key = im.info.get("transparency")
    if isinstance(key, int):  # PNG colour key on the raw 16-bit value
        alpha = np.where(raw == key, 0, 255).astype(np.uint8)
    return rgb, alpha


def _check_size(size: tuple[int, int], limits: ImageLimits, fail: _Fail) -> None:
    w, h = size
    if w < 1 or h < 1:
        raise fail(InputError, f"image has an invalid size of {w}x{h} pixels")
    if w * h > limits.max_pixels:
        raise fail(InputTooLargeError, _too_many_pixels(w, h, limits))
    if max(w, h) > limits.max_side:
        raise fail(
            InputTooLargeError,
            f"image is {w}x{h} pixels; its longest side of {max(w, h)} pixels is more "
            f"than the limit of {limits.max_side} pixels",
        )


def _too_many_pixels(w: int, h: int, limits: ImageLimits) -> str:
    return (
        f"image is {w}x{h} pixels ({w * h / 1e6:.1f} MP), more than the limit of "
        f"{limits.max_pixels / 1e6:.1f} MP ({limits.max_pixels} pixels)"
    )


def _too_many_bytes(n: int, limits: ImageLimits) -> str:
    return (
        f"input is {n} bytes ({n / 2**20:.1f} MiB), more than the limit of "
        f"{limits.max_bytes} bytes ({limits.max_bytes / 2**20:.1f} MiB)"
    )


def _bomb_message(data: bytes, e: Exception, limits: ImageLimits) -> str:
    """Pillow's own bomb check fired: say it like our pixel check does."""
    sniffed = _header_size(data)
    if sniffed is not None:
        w, h = sniffed[1]
        return _too_many_pixels(w, h, limits)
    m = re.search(r"\((\d+) pixels\)", str(e))
    if m:
        p = int(m.group(1))
        return (
            f"image has {p} pixels ({p / 1e6:.1f} MP), more than the limit of "
            f"{limits.max_pixels / 1e6:.1f} MP ({limits.max_pixels} pixels)"
        )
    return f"image is too large to decode safely ({_one_line(e)})"


def _unidentified(data: bytes, fail: _Fail) -> InputError:
    """The error for bytes that none of the accepted decoders would open."""
    sig = _signature(data)
    if sig is not None:
        # Right magic number, unreadable header: a damaged file of our type.
        return fail(
            InputError,
            f"{sig} data is truncated or corrupt (unreadable header); {len(data)} bytes read",
        )
    other = _other_format(data)
    if other is not None:
        return fail(UnsupportedTypeError, f"unsupported image type {other}; {_EXPECTED}")
    head = data[:8].hex(" ")
    return fail(
        UnsupportedTypeError,
        f"not a recognised image ({len(data)} bytes starting with {head}); {_EXPECTED}",
    )


def _other_format(data: bytes) -> str | None:
    """Name of a type Pillow knows (or HEIC) that we do not accept, if any."""
    if data[4:12] in (b"ftypheic", b"ftypheix", b"ftyphevc", b"ftypmif1", b"ftypmsf1"):
        return "HEIC"
    try:
        with Image.open(io.BytesIO(data)) as other:  # header only, all plugins
            return other.format
    except Exception:
        return None


def _signature(data: bytes) -> str | None:
    """The accepted type named by the magic number ("JPEG", "PNG", "WEBP"), else None."""
    if data.startswith(b"\xff\xd8\xff"):
        return "JPEG"
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "PNG"
    if data.startswith(b"RIFF") and data[8:12] == b"WEBP":
        return "WEBP"
    return None


def _header_size(data: bytes) -> tuple[str, tuple[int, int]] | None:
    """(type, (width, height)) read from a PNG, WebP or JPEG header, else None.

    Only used where Pillow cannot be asked without it allocating or refusing:
    before opening WebP, and to describe an image Pillow's bomb check refused.
    """
    try:
        sig = _signature(data)
        if sig == "PNG" and data[12:16] == b"IHDR":
            w, h = struct.unpack(">II", data[16:24])
            return sig, (w, h)
        if sig == "WEBP":
            return _webp_size(data)
        if sig == "JPEG":
            return _jpeg_size(data)
    except (struct.error, IndexError):
        pass
    return None


def _webp_size(data: bytes) -> tuple[str, tuple[int, int]] | None:
    chunk = data[12:16]
    if chunk == b"VP8 " and data[23:26] == b"\x9d\x01\x2a":  # lossy key frame
        w, h = struct.unpack("<HH", data[26:30])
        return "WEBP", (w & 0x3FFF, h & 0x3FFF)
    if chunk == b"VP8L" and data[20] == 0x2F:  # lossless
        (bits,) = struct.unpack("<I", data[21:25])
        return "WEBP", ((bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1)
    if chunk == b"VP8X":  # extended: canvas size minus one, 24-bit little-endian
        w = int.from_bytes(data[24:27], "little") + 1
        h = int.from_bytes(data[27:30], "little") + 1
        return "WEBP", (w, h)
    return None


_JPEG_SOF = frozenset(
    {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}
)


def _jpeg_size(data: bytes) -> tuple[str, tuple[int, int]] | None:
    i = 2
    while i + 4 <= len(data):
        if data[i] != 0xFF:
            return None
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker in (0x01, *range(0xD0, 0xD8)):  # markers without a length
            i += 2
            continue
        (length,) = struct.unpack(">H", data[i + 2 : i + 4])
        if marker in _JPEG_SOF:
            h, w = struct.unpack(">HH", data[i + 5 : i + 9])
            return "JPEG", (w, h)
        if marker == 0xDA:  # start of scan before any frame header
            return None
        i += 2 + length
    return None


def _one_line(e: BaseException) -> str:
    text = " ".join(str(e).split()) or type(e).__name__
    return text if len(text) <= 200 else text[:197] + "..."


# --------------------------------------------------------------------------- colours


_HEX = re.compile(r"#([0-9a-fA-F]{3}|[0-9a-fA-F]{6})")
_TRIPLE = re.compile(r"(\d{1,3})\s*,\s*(\d{1,3})\s*,\s*(\d{1,3})")


def parse_color(text: str) -> tuple[int, int, int]:
    """Colour text -> (r, g, b) in 0..255.

    Accepts "#0f0", "#00ff00", a CSS/X11 name such as "green", or "0,255,0".
    """
    s = text.strip()
    if _HEX.fullmatch(s):
        digits = s[1:] if len(s) == 7 else "".join(c * 2 for c in s[1:])
        r, g, b = (int(digits[i : i + 2], 16) for i in (0, 2, 4))
        return r, g, b
    m = _TRIPLE.fullmatch(s)
    if m and all(int(v) <= 255 for v in m.groups()):
        r, g, b = (int(v) for v in m.groups())
        return r, g, b
    name = s.lower()
    if name in ImageColor.colormap:
        r, g, b = ImageColor.getrgb(name)[:3]
        return r, g, b
    raise InputError(
        f"invalid colour {text!r}: expected #rgb, #rrggbb, a colour name such as 'white', "
        f"or 'r,g,b' with values 0-255"
    )


# --------------------------------------------------------------------------- encoding


def resize_cover(rgb: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Scale (h, w, 3) uint8 to cover size = (height, width), centre-cropping the rest.

    Returns (height, width, 3) uint8. The crop is done by Lanczos-resampling only
    the centred source box of the target aspect ratio, so no oversized
    intermediate is made.
    """
    if not isinstance(rgb, np.ndarray) or rgb.dtype != np.uint8 or rgb.ndim != 3:
        raise ValueError(f"rgb must be a (H, W, 3) uint8 array, got {_describe(rgb)}")
    if rgb.shape[2] != 3 or rgb.shape[0] < 1 or rgb.shape[1] < 1:
        raise ValueError(f"rgb must be a (H, W, 3) uint8 array, got {_describe(rgb)}")
    th, tw = (int(v) for v in size)
    if th < 1 or tw < 1:
        raise ValueError(f"size must be a positive (height, width), got {size}")
    h, w = rgb.shape[:2]
    if (h, w) == (th, tw):
        return np.ascontiguousarray(rgb).copy()
    if w * th > tw * h:  # source wider than target: use full height, crop width
        bw, bh = h * tw / th, float(h)
    else:  # source taller (or same aspect): use full width, crop height
        bw, bh = float(w), w * th / tw
    x0, y0 = (w - bw) / 2, (h - bh) / 2
    im = Image.fromarray(np.ascontiguousarray(rgb), "RGB")
    out = im.resize((tw, th), Image.Resampling.LANCZOS, box=(x0, y0, x0 + bw, y0 + bh))
    return np.array(out, dtype=np.uint8, order="C")


def default_format(kind: OutputKind) -> OutputFormat:
    """The format used when none is asked for: PNG for every kind (lossless, alpha)."""
    _check_kind(kind)
    return "png"


def extension(fmt: OutputFormat) -> str:
    """File extension with the dot: ".png", ".webp" or ".jpg"."""
    _check_format(fmt)
    return _EXTENSIONS[fmt]


def encode_output(
    kind: OutputKind,
    alpha: np.ndarray,
    foreground: np.ndarray,
    fmt: OutputFormat = "png",
    background: tuple[int, int, int] | np.ndarray | None = None,
    png_level: int = 6,
) -> bytes:
    """Encode one matting output as PNG, WebP or JPEG bytes.

    alpha: (H, W) float in [0, 1]; foreground: (H, W, 3) float in [0, 1], the
    estimated (straight) foreground colour.
    kind "rgba": RGBA cut-out (RGB = foreground, A = alpha); png or webp only.
    kind "alpha": the matte as 8-bit greyscale (webp has no greyscale: stored as RGB).
    kind "foreground": premultiplied foreground F * alpha as RGB.
    kind "composite": F * a + B * (1 - a) over `background`, an (r, g, b) colour in
        0..255 or an (h, w, 3) uint8 image scaled to cover (H, W); default white.
    WebP is lossless for rgba and alpha, quality 95 otherwise; JPEG is quality 95.
    png_level: zlib level 0-9 (Pillow's default 6); 1 is about 4x faster on
    photos for a few percent more bytes, the better trade where CPU is scarce.
    """
    _check_kind(kind)
    _check_format(fmt)
    a, f = _check_outputs(alpha, foreground)
    h, w = a.shape
    if kind == "rgba" and fmt == "jpeg":
        raise InputError("jpeg cannot carry alpha; use png or webp for rgba output")
    if fmt == "webp" and max(h, w) > _WEBP_MAX_SIDE:
        raise InputError(
            f"webp cannot store an image of {w}x{h} pixels (at most {_WEBP_MAX_SIDE} "
            f"pixels per side); use png"
        )

    if kind == "rgba":
        arr = np.empty((h, w, 4), dtype=np.uint8)
        arr[..., :3] = to_uint8(f)
        arr[..., 3] = to_uint8(a)
        im = Image.fromarray(arr, "RGBA")
    elif kind == "alpha":
        im = Image.fromarray(to_uint8(a), "L")
    elif kind == "foreground":
        im = Image.fromarray(to_uint8(premultiply(f, a)), "RGB")
    else:
        bg = _background(background, (h, w))
        im = Image.fromarray(to_uint8(composite(f, a, bg)), "RGB")

    buf = io.BytesIO()
    options: dict[str, object] = {}
    if fmt == "png":
        if not 0 <= png_level <= 9:
            raise ValueError(f"png_level must be 0-9, got {png_level}")
        options = {"compress_level": png_level}
    elif fmt == "jpeg":
        options = {"quality": _JPEG_QUALITY}
    elif fmt == "webp":
        # Mattes must keep exact values; exact=True also keeps the colour under
        # fully transparent pixels, which later edits of a cut-out may reveal.
        lossless = kind in ("rgba", "alpha")
        options = {"lossless": True, "exact": True} if lossless else {"quality": _JPEG_QUALITY}
    im.save(buf, format=_PIL_SAVE_NAMES[fmt], **options)
    return buf.getvalue()


def _background(
    background: tuple[int, int, int] | np.ndarray | None, size: tuple[int, int]
) -> np.ndarray:
    """The composite background as float32 (3,) colour or (H, W, 3) image."""
    if background is None:
        return np.ones(3, dtype=np.float32)
    if isinstance(background, np.ndarray) and background.ndim == 3:
        return to_float(resize_cover(background, size))
    colour = np.asarray(background)
    valid = (
        colour.shape == (3,)
        and (np.issubdtype(colour.dtype, np.integer))
        and bool(np.all((colour >= 0) & (colour <= 255)))
    )
    if not valid:
        raise ValueError(
            "background must be an (r, g, b) colour of integers 0..255 or an (H, W, 3) "
            f"uint8 image, got {_describe(background)}"
        )
    return colour.astype(np.float32) / 255.0


def _check_outputs(alpha: np.ndarray, foreground: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    a = np.asarray(alpha)
    f = np.asarray(foreground)
    for name, x in (("alpha", a), ("foreground", f)):
        if not np.issubdtype(x.dtype, np.floating):
            raise ValueError(f"{name} must be a float array in [0, 1], got {_describe(x)}")
    if a.ndim != 2 or a.shape[0] < 1 or a.shape[1] < 1:
        raise ValueError(f"alpha must have shape (H, W), got {a.shape}")
    if f.shape != (*a.shape, 3):
        raise ValueError(
            f"foreground must have shape (H, W, 3) = {(*a.shape, 3)} to match alpha "
            f"{a.shape}, got {f.shape}"
        )
    return a, f


def _check_kind(kind: str) -> None:
    kinds = get_args(OutputKind)
    if kind not in kinds:
        raise InputError(f"unknown output kind {kind!r}; expected one of {', '.join(kinds)}")


def _check_format(fmt: str) -> None:
    fmts = get_args(OutputFormat)
    if fmt not in fmts:
        raise InputError(f"unknown output format {fmt!r}; expected one of {', '.join(fmts)}")


def _describe(x: object) -> str:
    if isinstance(x, np.ndarray):
        return f"an array of shape {x.shape} and dtype {x.dtype}"
    return f"{type(x).__name__} {x!r}"[:120]
