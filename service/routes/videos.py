"""Video jobs over HTTP: submit, follow (JSON or server-sent events), download, cancel."""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Header, Query, Request
from fastapi.responses import FileResponse, JSONResponse, StreamingResponse
from pydantic import BaseModel

from matting.errors import InputError
from service.auth import client_scope
from service.deps import State
from service.errors import ERROR_RESPONSES, ErrorBody, JobNotReadyError, JobsDisabledError
from service.jobs.errors import JobNotFoundError
from service.jobs.runtime import JobsRuntime
from service.jobs.schema import Job, JobState
from service.jobs.worker import EXTENSIONS, MEDIA_TYPES, JobOptions, parse_color
from service.video_upload import (
    VIDEO_RAW_TYPES,
    VideoLimits,
    check_video,
    discard,
    receive_video,
    store_background,
)

router = APIRouter(prefix="/v1/videos", tags=["videos"])

_FILE = {"type": "string", "format": "binary"}
UPLOAD_BODY = {
    "requestBody": {
        "required": True,
        "description": (
            "The video as the raw body (MP4, MOV, WebM, MKV or AVI; the container is "
            "sniffed from the bytes), or multipart/form-data with the file `video` and, for "
            "output=composite, optionally an image `background` (JPEG, PNG or WebP, scaled "
            "to cover the frame) instead of background_color."
        ),
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["video"],
                    "properties": {"video": _FILE, "background": _FILE},
                }
            },
            **{t: {"schema": _FILE} for t in VIDEO_RAW_TYPES},
        },
    }
}
_NOT_FOUND: dict[int | str, dict[str, object]] = {
    404: {"model": ErrorBody, "description": "No such job (or it expired)"}
}
_EVENTS_POLL_S = 0.5
_EVENTS_KEEPALIVE_S = 15.0


class VideoJob(BaseModel):
    id: str
    state: JobState
    progress: float
    frames_done: int
    frames_total: int | None
    eta_s: float | None
    error: str | None
    output: str
    result_url: str | None
    attempts: int
    created_at: float
    updated_at: float
    finished_at: float | None

    @classmethod
    def of(cls, job: Job) -> VideoJob:
        done = job.state == JobState.SUCCEEDED and job.output_location is not None
        return cls(
            id=job.id,
            state=job.state,
            progress=job.progress,
            frames_done=job.frames_done,
            frames_total=job.frames_total,
            eta_s=job.eta_s,
            error=job.error,
            output=str(job.options.get("output", "webm")),
            result_url=f"/v1/videos/{job.id}/result" if done else None,
            attempts=job.attempts,
            created_at=job.created_at,
            updated_at=job.updated_at,
            finished_at=job.finished_at,
        )


def get_jobs(state: State) -> JobsRuntime:
    if state.jobs is None:
        raise JobsDisabledError(state.jobs_error or "video jobs are off in this service")
    return state.jobs


Jobs = Annotated[JobsRuntime, Depends(get_jobs)]


def video_options(
    state: State,
    output: Annotated[
        Literal["webm", "prores", "pngzip", "composite"],
        Query(
            description="webm: VP9 with alpha; prores: ProRes 4444 .mov; pngzip: RGBA PNGs; "
            "composite: H.264 .mp4 over background_color or the multipart `background` image"
        ),
    ] = "webm",
    background_color: Annotated[
        str, Query(description="#RRGGBB, for composite", max_length=7)
    ] = "#00ff00",
) -> JobOptions:
    parse_color(background_color)
    s = state.settings
    return JobOptions(output, background_color, s.chunk_frames, s.temporal_threshold)


Options = Annotated[JobOptions, Depends(video_options)]


async def _job(jobs: JobsRuntime, job_id: str) -> Job:
    job = await asyncio.to_thread(jobs.queue.get, job_id)
    if job is None:
        raise JobNotFoundError(f"no video job {job_id[:64]!r}")
    return job


@router.post(
    "",
    status_code=202,
    summary="Submit a video; matting runs as a job",
    response_model=VideoJob,
    openapi_extra=UPLOAD_BODY,
    responses={
        202: {"headers": {"Location": {"schema": {"type": "string"}}}},
        **ERROR_RESPONSES,
    },
)
async def submit(
    request: Request,
    state: State,
    jobs: Jobs,
    options: Options,
    idempotency_key: Annotated[
        str | None, Header(max_length=256, description="Repeat-safe submission")
    ] = None,
) -> JSONResponse:
    s = state.settings
    upload = await receive_video(request, jobs.storage, s.video_max_bytes)
    stored = [upload.name]
    try:
        limits = VideoLimits(s.video_max_bytes, s.video_max_duration_s, s.video_max_pixels)
        await asyncio.to_thread(check_video, jobs.storage.local_path(upload.name), limits)
        content = options.to_dict()  # what the content hash covers: the bytes, not the names
        if upload.background is not None:
            if options.output != "composite":
                raise InputError("a background image applies only to output=composite")
            name, sha = await asyncio.to_thread(
                store_background, jobs.storage, upload.background, state.limits
            )
            stored.append(name)
            options = replace(options, background_image=name)
            content["background_image"] = f"sha256:{sha}"
        key = idempotency_key or f"sha256:{upload.sha256}:{json.dumps(content, sort_keys=True)}"
        # Keys are per client: another API key's job is never handed back.
        key = f"{client_scope(request, state.keys)}:{hashlib.sha256(key.encode()).hexdigest()}"
        job = await asyncio.to_thread(jobs.queue.submit, upload.name, options.to_dict(), key)
    except BaseException:
        for name in stored:
            discard(jobs.storage, name)
        raise
    if job.input_location != upload.name:  # an earlier submission of the same job
        for name in stored:
            discard(jobs.storage, name)
    elif state.job_metrics is not None:
        state.job_metrics.inc()
    body = VideoJob.of(job).model_dump(mode="json")
    return JSONResponse(body, 202, headers={"Location": f"/v1/videos/{job.id}"})


@router.get(
    "/{job_id}",
    summary="A job's state and progress",
    response_model=VideoJob,
    responses={**_NOT_FOUND, **ERROR_RESPONSES},
)
async def status(job_id: str, jobs: Jobs) -> VideoJob:
    return VideoJob.of(await _job(jobs, job_id))


@router.get(
    "/{job_id}/result",
    summary="Download the output (byte ranges supported)",
    response_class=FileResponse,
    responses={
        200: {"content": {m: {"schema": _FILE} for m in MEDIA_TYPES.values()}},
        206: {"description": "A byte range of the output"},
        **_NOT_FOUND,
        409: {"model": ErrorBody, "description": "The job has not succeeded (yet)"},
        **ERROR_RESPONSES,
    },
)
async def result(job_id: str, jobs: Jobs) -> FileResponse:
    job = await _job(jobs, job_id)
    if job.state != JobState.SUCCEEDED or job.output_location is None:
        raise JobNotReadyError(f"job {job.id} is {job.state.value}; no result to download")
    kind = str(job.options.get("output", "webm"))
    path = jobs.storage.local_path(job.output_location)
    if not path.is_file():
        raise JobNotFoundError(f"the output of job {job.id} is gone (expired or deleted)")
    return FileResponse(path, media_type=MEDIA_TYPES[kind], filename=f"{job.id}{EXTENSIONS[kind]}")


@router.delete(
    "/{job_id}",
    summary="Cancel a queued or running job",
    response_model=VideoJob,
    responses={**_NOT_FOUND, **ERROR_RESPONSES},
)
async def cancel(job_id: str, jobs: Jobs) -> VideoJob:
    job = await asyncio.to_thread(jobs.queue.cancel, job_id)
    if job.state == JobState.CANCELLED:  # cancelled here, while queued: no worker will look
        for name in (job.input_location, str(job.options.get("background_image") or "")):
            if name:
                discard(jobs.storage, name)
    return VideoJob.of(job)


@router.get(
    "/{job_id}/events",
    summary="Progress as server-sent events, until the job ends",
    response_class=StreamingResponse,
    responses={
        200: {"content": {"text/event-stream": {"schema": {"type": "string"}}}},
        **_NOT_FOUND,
        **ERROR_RESPONSES,
    },
)
async def events(job_id: str, request: Request, jobs: Jobs) -> StreamingResponse:
    first = await _job(jobs, job_id)  # a 404 before the stream starts
    return StreamingResponse(
        _event_stream(request, jobs, first),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )


async def _event_stream(request: Request, jobs: JobsRuntime, job: Job) -> AsyncIterator[str]:
    last = None
    quiet = 0.0
    while True:
        body = VideoJob.of(job).model_dump_json()
        if body != last:
            yield f"event: {job.state.value}\ndata: {body}\n\n"
            last, quiet = body, 0.0
        elif quiet >= _EVENTS_KEEPALIVE_S:
            yield ": keep-alive\n\n"  # proxies drop idle streams
            quiet = 0.0
        if job.state.is_terminal or await request.is_disconnected():
            return
        await asyncio.sleep(_EVENTS_POLL_S)
        quiet += _EVENTS_POLL_S
        try:
            job = await _job(jobs, job.id)
        except (JobNotFoundError, InputError):
            return
