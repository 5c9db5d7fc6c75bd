"""POST /v1/matte (the image back) and /v1/matte/json (base64 in JSON)."""

from __future__ import annotations

import base64
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel

from matting.imageio import OutputFormat, OutputKind
from service import constants as c
from service.batcher import QueueFullError
from service.deps import ReadyBatcher, State
from service.errors import ERROR_RESPONSES
from service.pipeline import MEDIA_TYPES, MatteOptions, MatteOutput, run_matte
from service.request import RAW_TYPES, read_payload

router = APIRouter(prefix="/v1", tags=["matting"])

_BINARY = {"schema": {"type": "string", "format": "binary"}}
_FILE = {"type": "string", "format": "binary"}
REQUEST_BODY = {
    "requestBody": {
        "required": True,
        "description": (
            "The image as the raw body (JPEG, PNG or WebP; the type is sniffed from "
            "the bytes), or multipart/form-data with the file `image` and optionally "
            "`background` (an image to composite over) and `plate` (the background "
            "plate, for background-guided models)."
        ),
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["image"],
                    "properties": {"image": _FILE, "background": _FILE, "plate": _FILE},
                }
            },
            **{t: _BINARY for t in RAW_TYPES},
        },
    }
}
_TIMING_HEADERS = {
    c.HEADER_SERVER_TIMING: {
        "description": "decode, queue, infer, encode and total durations in ms",
        "schema": {"type": "string"},
    },
    c.HEADER_BATCH_SIZE: {
        "description": "Images in the backend batch",
        "schema": {"type": "integer"},
    },
    c.HEADER_PATCHES: {"description": "Refined patches", "schema": {"type": "integer"}},
    c.HEADER_SIZE: {"description": "WIDTHxHEIGHT of the result", "schema": {"type": "string"}},
}


def matte_options(
    output: Annotated[
        OutputKind,
        Query(
            description="rgba: cut-out with alpha; alpha: the matte; foreground: "
            "premultiplied colour; composite: over background_color or a background image"
        ),
    ] = "rgba",
    format: Annotated[
        OutputFormat | None,
        Query(description="png (default) or webp; jpeg for alpha, foreground or composite"),
    ] = None,
    background_color: Annotated[
        str | None,
        Query(max_length=64, description="For composite: #rrggbb, a CSS name or r,g,b"),
    ] = None,
    max_side: Annotated[
        int | None,
        Query(ge=16, le=16384, description="Downscale so the long side is at most this"),
    ] = None,
) -> MatteOptions:
    return MatteOptions.parse(output, format, background_color, max_side)


Options = Annotated[MatteOptions, Depends(matte_options)]


class MatteJSON(BaseModel):
    image: str  # base64
    media_type: str
    width: int
    height: int
    batch_size: int
    refined_patches: int
    timings_ms: dict[str, float]


async def _matte(
    request: Request, state: State, batcher: ReadyBatcher, options: MatteOptions
) -> MatteOutput:
    s = state.settings
    if batcher.depth >= batcher.config.max_queue:
        # Refuse before reading and decoding the body: shedding must be cheap.
        raise QueueFullError("the queue is full; retry later", batcher.retry_after_s())
    payload = await read_payload(request, s.max_request_bytes)
    # Both are set by the lifespan before any request.
    assert state.decode_limiter is not None and state.encode_limiter is not None
    return await run_matte(
        batcher,
        payload,
        options,
        state.limits,
        s.request_timeout_s,
        (state.decode_limiter, state.encode_limiter),
        s.png_level,
    )


def _headers(out: MatteOutput) -> dict[str, str]:
    timing = ", ".join(f"{k};dur={v:.1f}" for k, v in out.timings_ms.items())
    return {
        c.HEADER_SERVER_TIMING: timing,
        c.HEADER_BATCH_SIZE: str(out.batch_size),
        c.HEADER_PATCHES: str(out.refined_patches),
        c.HEADER_SIZE: f"{out.width}x{out.height}",
    }


@router.post(
    "/matte",
    summary="Cut out the subject; the image comes back",
    response_class=Response,
    openapi_extra=REQUEST_BODY,
    responses={
        200: {
            "description": "The result image",
            "content": {m: _BINARY for m in MEDIA_TYPES.values()},
            "headers": _TIMING_HEADERS,
        },
        **ERROR_RESPONSES,
    },
)
async def matte(
    request: Request, state: State, batcher: ReadyBatcher, options: Options
) -> Response:
    out = await _matte(request, state, batcher, options)
    return Response(out.data, media_type=out.media_type, headers=_headers(out))


@router.post(
    "/matte/json",
    summary="Cut out the subject; the image comes back base64-encoded in JSON",
    response_model=MatteJSON,
    openapi_extra=REQUEST_BODY,
    responses={200: {"headers": _TIMING_HEADERS}, **ERROR_RESPONSES},
)
async def matte_json(
    request: Request, state: State, batcher: ReadyBatcher, options: Options
) -> MatteJSON:
    out = await _matte(request, state, batcher, options)
    return MatteJSON(
        image=base64.b64encode(out.data).decode("ascii"),
        media_type=out.media_type,
        width=out.width,
        height=out.height,
        batch_size=out.batch_size,
        refined_patches=out.refined_patches,
        timings_ms={k: round(v, 3) for k, v in out.timings_ms.items()},
    )
