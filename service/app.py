"""The app factory: `uvicorn --factory service.app:create_app`, or `matting serve`.

Start-up does no model work before the server listens: the lifespan starts a
task that loads the backend (exporting the default model on a first start),
warms it up and starts the batcher. Meanwhile /livez answers 200 and /readyz
503, so an orchestrator waits instead of restarting the pod. Shutdown stops
taking new work and lets queued and running requests finish (drain).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

import anyio
from fastapi import FastAPI
from fastapi.responses import JSONResponse

from matting import __version__
from service import constants as c
from service.batcher import Batcher, BatcherConfig
from service.deps import Authorized
from service.errors import install_error_handlers
from service.middleware import MetricsMiddleware
from service.model import load_service_backend
from service.routes import health, matte, videos
from service.settings import Settings, get_settings
from service.state import ServiceState

log = logging.getLogger("matting.service")


async def _load(state: ServiceState) -> None:
    s = state.settings
    try:
        backend = await asyncio.to_thread(load_service_backend, s, log.info)
        state.backend = backend
        info = backend.info
        log.info("loaded %s %s on %s from %s", info.name, info.precision, info.device, info.source)
        state.metrics.describe_model(info)
        if info.device.startswith("cuda"):
            state.metrics.watch_gpu_memory(info.device.split()[0])
        await asyncio.to_thread(backend.warmup, s.warmup_shapes())
        config = BatcherConfig(s.max_batch_size, s.max_delay_ms, s.max_queue, s.bucket)
        batcher = Batcher(backend, config, state.metrics)
        await batcher.start()
        state.batcher = batcher
        state.metrics.queue_depth.set_function(lambda: batcher.depth)
        state.ready = True
        state.metrics.ready.set(1)
        log.info("ready")
        await _start_workers(state)
    except Exception as e:  # reported by /livez and /readyz; the process stays up to say so
        state.load_error = f"{type(e).__name__}: {e}"
        log.error("loading the model failed: %s", state.load_error)


async def _open_jobs(state: ServiceState) -> None:
    from prometheus_client import Counter

    from service.jobs.metrics import QueueCollector
    from service.jobs.runtime import JobsRuntime

    try:
        jobs = await asyncio.to_thread(JobsRuntime.open, state.settings)
    except Exception as e:  # images still work; the video routes answer 503 with the reason
        state.jobs_error = f"the video job queue is unavailable: {type(e).__name__}: {e}"
        log.error("%s", state.jobs_error)
        return
    where = "an embedded redis-server" if jobs.redis is not None else "Redis"
    log.info("video jobs on %s at %s", where, jobs.queue.url)
    state.metrics.registry.register(QueueCollector(jobs.queue))
    state.job_metrics = Counter(
        c.METRIC_JOBS_SUBMITTED, "Video jobs submitted", registry=state.metrics.registry
    )
    state.jobs = jobs


async def _start_workers(state: ServiceState) -> None:
    jobs = state.jobs
    if jobs is None or not jobs.worker_count:
        return
    from service.jobs.runtime import load_worker_backend

    try:
        backend = await asyncio.to_thread(load_worker_backend, state.settings, log.info)
    except Exception as e:
        state.jobs_error = f"the video worker could not load its model: {e}"
        log.error("%s", state.jobs_error)
        return
    jobs.start_workers(backend, state.metrics.registry)


@contextlib.asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    state: ServiceState = app.state.matting
    # Decode and encode threads: enough to keep the backend fed, few enough
    # that a burst of 8K uploads cannot all be decoded into memory at once.
    state.decode_limiter = anyio.CapacityLimiter(state.settings.codec_threads)
    state.encode_limiter = anyio.CapacityLimiter(state.settings.codec_threads)
    state.loop = asyncio.get_running_loop()
    if state.settings.video_jobs:
        await _open_jobs(state)
    loading = asyncio.create_task(_load(state))
    try:
        yield
    finally:
        state.ready = False
        state.metrics.ready.set(0)
        if state.jobs is not None:  # no new chunks from here; the one in hand finishes
            state.jobs.stop_workers()
        if not loading.done():
            loading.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await loading
        if state.batcher is not None:
            await state.batcher.stop(drain=True, timeout_s=state.settings.drain_timeout_s)
        if state.jobs is not None:
            await asyncio.to_thread(state.jobs.close, state.settings.worker_drain_timeout_s)
        if state.backend is not None:
            state.backend.close()


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    state = ServiceState(settings=settings, keys=settings.keys())
    auth = bool(state.keys)
    app = FastAPI(
        title="matting",
        version=__version__,
        summary="Cut people and objects out of images at full resolution, with soft alpha.",
        lifespan=lifespan,
        # With auth on, only health and metrics are open: the schema moves
        # behind the key and the browsable docs (which fetch it unauthenticated) go.
        openapi_url=None if auth else "/openapi.json",
        docs_url=None if auth else "/docs",
        redoc_url=None if auth else "/redoc",
    )
    app.state.matting = state
    install_error_handlers(app)
    app.include_router(health.router)
    from service.routes import web  # the page at / is public: it asks for the key

    app.include_router(web.router)
    # The key check (and its security schemes in the schema) only when auth is on.
    app.include_router(matte.router, dependencies=[Authorized] if auth else [])
    if settings.video_jobs:
        app.include_router(videos.router, dependencies=[Authorized] if auth else [])
    if auth:

        @app.get("/openapi.json", include_in_schema=False, dependencies=[Authorized])
        def openapi() -> JSONResponse:
            return JSONResponse(app.openapi())

    routers = (health.router, matte.router, videos.router)
    paths = [getattr(r, "path", "") for router in routers for r in router.routes]
    app.add_middleware(MetricsMiddleware, metrics=state.metrics, endpoints=paths)
    return app
