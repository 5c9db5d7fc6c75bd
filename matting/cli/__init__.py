"""The `matting` command line. Heavy imports happen inside commands, so
`matting --help` and `--version` answer at once."""

from __future__ import annotations

import click

from matting import __version__
from matting.errors import MattingError


class _Group(click.Group):
    """Reports every MattingError as one line on stderr and exit status 1."""

    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)
        except MattingError as e:
            click.echo(f"error: {e}", err=True)
            ctx.exit(1)
        except OSError as e:  # a path the user named cannot be read or written
            where = f"{e.filename}: " if e.filename else ""
            click.echo(f"error: {where}{e.strerror or e}", err=True)
            ctx.exit(1)
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            ctx.exit(130)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "-V", "--version", prog_name="matting")
def cli() -> None:
    """Cut people and objects out of images at full resolution, with soft alpha."""


def _register() -> None:
    from matting.cli.bench import bench
    from matting.cli.checkpoint import checkpoint
    from matting.cli.evaluate import evaluate
    from matting.cli.export import export
    from matting.cli.image import image
    from matting.cli.serve import serve
    from matting.cli.train import train
    from matting.cli.video import video
    from matting.cli.worker import worker

    cli.add_command(image)
    cli.add_command(checkpoint)
    cli.add_command(train)
    cli.add_command(evaluate)
    cli.add_command(export)
    cli.add_command(bench)
    cli.add_command(serve)
    cli.add_command(video)
    cli.add_command(worker)


_register()


def main() -> None:
    cli(prog_name="matting")


if __name__ == "__main__":  # pragma: no cover
    main()
