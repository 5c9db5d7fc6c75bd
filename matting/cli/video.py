"""`matting video IN -o OUT`: one video job run locally, through the same queue and worker
code the service uses (an embedded redis-server in a temporary directory)."""

from __future__ import annotations

from pathlib import Path

import click

_KINDS = {".webm": "webm", ".mov": "prores", ".zip": "pngzip", ".mp4": "composite"}


@click.command()
@click.argument("source", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "-o",
    "--out",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help=".webm (VP9 with alpha), .mov (ProRes 4444), .zip (RGBA PNGs) or .mp4 (composite).",
)
@click.option("--background-color", default="#00ff00", show_default=True, help="For .mp4.")
@click.option(
    "--background",
    "background_image",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="For .mp4: an image to composite over (scaled to cover), instead of the colour.",
)
@click.option("--model", default=None, help="Checkpoint (default: the shipped model).")
@click.option("--device", default="auto", show_default=True)
@click.option("--chunk-frames", type=click.IntRange(1, 10_000), default=48, show_default=True)
@click.option(
    "--temporal-threshold",
    type=click.FloatRange(0, 1),
    default=0.03,
    show_default=True,
    help="Refine a patch again only when a pixel moved more than this; 0: every frame.",
)
def video(
    source: Path,
    out: Path,
    background_color: str,
    background_image: Path | None,
    model: str | None,
    device: str,
    chunk_frames: int,
    temporal_threshold: float,
) -> None:
    """Matte every frame of SOURCE into OUT, with a progress bar; audio is copied."""
    import shutil
    import tempfile

    from tqdm import tqdm

    from matting.errors import InputError
    from matting.imageio import ImageLimits
    from service.jobs.queue import JobQueue
    from service.jobs.redis_server import EmbeddedRedis
    from service.jobs.runtime import load_worker_backend
    from service.jobs.storage import LocalStorage
    from service.jobs.worker import JobOptions, Worker, parse_color
    from service.settings import Settings
    from service.video_upload import (
        VideoLimits,
        check_video,
        sniff_extension,
        store_background,
    )

    kind = _KINDS.get(out.suffix.lower())
    if kind is None:
        raise InputError(f"{out}: the extension must be one of {sorted(_KINDS)}")
    parse_color(background_color)
    if background_image is not None and kind != "composite":
        raise InputError("--background applies only to a composite (.mp4) output")
    settings = Settings(model=model, device=device)
    with tempfile.TemporaryDirectory(prefix="matting-video-") as tmp, open(source, "rb") as f:
        root = Path(tmp)
        storage = LocalStorage(root / "objects")
        from service.jobs.storage import new_name

        name = new_name(sniff_extension(f.read(16)))
        f.seek(0)
        with storage.writer(name) as w:
            shutil.copyfileobj(f, w, 1 << 20)
        info = check_video(storage.local_path(name), VideoLimits(1 << 62, float("inf"), 1 << 62))
        backdrop = ""
        if background_image is not None:
            backdrop, _ = store_background(storage, background_image.read_bytes(), ImageLimits())
        backend = load_worker_backend(settings, lambda m: click.echo(m, err=True))
        with EmbeddedRedis(root / "redis") as redis_server:
            queue = JobQueue.from_url(redis_server.url)
            queue.ensure_group()
            opts = JobOptions(kind, background_color, chunk_frames, temporal_threshold, backdrop)  # type: ignore[arg-type]
            job = queue.submit(name, opts.to_dict())
            bar = tqdm(total=info.frame_count, unit="frame", desc=source.name)

            def advance(_job: object, chunk: int) -> None:
                bar.update(min(info.frame_count, (chunk + 1) * chunk_frames) - bar.n)

            worker = Worker(queue, storage, backend, on_chunk=advance)
            claim = queue.claim_next(worker.name, block_ms=1000)
            if claim is None or claim.job.id != job.id:
                raise InputError("the local queue did not deliver the job")
            outcome = worker.process(claim)
            bar.close()
            done = queue.get(job.id)
            if outcome != "succeeded" or done is None or done.output_location is None:
                error = done.error if done is not None else "the job vanished"
                raise InputError(f"the video job failed: {error}")
            out.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(storage.local_path(done.output_location), out)
    click.echo(f"{out}: {info.frame_count} frames, {info.width}x{info.height}", err=True)
