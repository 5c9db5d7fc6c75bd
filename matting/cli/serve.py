"""`matting serve`: the HTTP service on uvicorn."""

from __future__ import annotations

import click


@click.command()
@click.option("--host", default=None, help="Interface to bind (MATTING_HOST, default 127.0.0.1).")
@click.option("--port", type=int, default=None, help="Port (MATTING_PORT, default 8000).")
@click.option(
    "--model",
    default=None,
    help="Checkpoint (.safetensors) or export directory (MATTING_MODEL; default: the "
    "shipped model, on ONNX Runtime when there is no GPU).",
)
@click.option(
    "--backend",
    type=click.Choice(["auto", "torch", "onnxruntime", "tensorrt"]),
    default=None,
    help="MATTING_BACKEND (default auto).",
)
@click.option("--log-level", default="info", show_default=True)
def serve(
    host: str | None, port: int | None, model: str | None, backend: str | None, log_level: str
) -> None:
    """Serve POST /v1/matte with dynamic batching; every setting also reads from
    the MATTING_* environment (see the README)."""
    import logging

    import uvicorn

    from service.app import create_app
    from service.settings import Settings

    # Flags win over the environment; both go through the same validation.
    overrides = {"host": host, "port": port, "model": model, "backend": backend}
    settings = Settings(**{k: v for k, v in overrides.items() if v is not None})
    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(name)s %(message)s")
    click.echo(f"matting serve: http://{settings.host}:{settings.port} (docs at /docs)", err=True)
    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_level=log_level,
        timeout_graceful_shutdown=int(settings.drain_timeout_s) or None,
        # The batcher bounds the work; this bounds sockets held by slow clients.
        limit_concurrency=max(64, settings.max_queue * 4),
        workers=None,
        server_header=False,
    )
