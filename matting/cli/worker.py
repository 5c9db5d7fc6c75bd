"""`matting worker`: a video job worker on a shared Redis."""

from __future__ import annotations

import click


@click.command()
@click.option("--redis-url", default=None, help="MATTING_REDIS_URL (required).")
@click.option("--name", default=None, help="Worker name (default: host-pid-random).")
@click.option("--log-level", default="info", show_default=True)
def worker(redis_url: str | None, name: str | None, log_level: str) -> None:
    """Take video jobs from the queue until SIGTERM or Ctrl-C, which stop after the current
    chunk and hand the job back at its resume point. Every setting also reads from the
    MATTING_* environment (see the README); /metrics listens on MATTING_WORKER_METRICS_PORT."""
    import logging
    import signal

    from prometheus_client import CollectorRegistry, start_http_server

    from matting.errors import InputError
    from service.jobs.metrics import QueueCollector, WorkerMetrics
    from service.jobs.runtime import load_worker_backend, open_queue, open_storage
    from service.jobs.worker import Worker
    from service.settings import Settings

    settings = Settings(**({"redis_url": redis_url} if redis_url else {}))
    if settings.redis_url is None:
        raise InputError("a worker needs a shared queue: set MATTING_REDIS_URL or --redis-url")
    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(name)s %(message)s")
    log = logging.getLogger("matting.worker")
    queue, _ = open_queue(settings)
    storage = open_storage(settings)
    backend = load_worker_backend(settings, log.info)
    info = backend.info
    log.info("loaded %s %s on %s from %s", info.name, info.precision, info.device, info.source)
    registry = CollectorRegistry()
    metrics = WorkerMetrics(registry)
    registry.register(QueueCollector(queue))
    if settings.worker_metrics_port:
        start_http_server(settings.worker_metrics_port, registry=registry)
    w = Worker(queue, storage, backend, name=name, metrics=metrics)

    def stop(signum: int, _frame: object) -> None:
        log.info("%s: stopping after the current chunk", signal.Signals(signum).name)
        w.stop()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    log.info("worker %s taking jobs from %s", w.name, queue.url)
    w.run()
    log.info("worker %s stopped", w.name)
