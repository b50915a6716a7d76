"""The `mistgrid` entry point: every expected error becomes one line on stderr and exit 1."""

from __future__ import annotations

import sys
from typing import Any

import click

from .. import __version__
from ..errors import MistgridError
from .create import create_client, create_introducer, create_node
from .daemon import restart, start, status, stop
from .data import get, put
from .debug import debug
from .demo import demo
from .run import run


class _OneLineErrors(click.Group):
    """Turns mistgrid and OS errors into `mistgrid: error: ...` and exit status 1."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except MistgridError as err:
            _fail(str(err))
        except OSError as err:
            where = f"{err.filename}: " if err.filename else ""
            _fail(f"{where}{err.strerror or err}")
        except KeyboardInterrupt:
            _fail("interrupted")


def _fail(message: str) -> None:
    click.echo(f"mistgrid: error: {message}", err=True)
    sys.exit(1)


@click.group(cls=_OneLineErrors, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="mistgrid")
def cli() -> None:
    """mistgrid: a Tahoe-LAFS compatible file store that speaks Tor and I2P."""


cli.add_command(debug)
for _command in (create_node, create_client, create_introducer):
    cli.add_command(_command)
cli.add_command(demo)
for _command in (run, start, stop, restart, status):
    cli.add_command(_command)
cli.add_command(put)
cli.add_command(get)


def main() -> None:
    """Console entry point: click's usage errors also become one line and exit 1."""
    try:
        result = cli.main(prog_name="mistgrid", standalone_mode=False)
    except click.UsageError as err:
        where = err.ctx.command_path if err.ctx is not None else "mistgrid"
        _fail(f"{err.format_message()} (see '{where} --help')")
    except click.ClickException as err:
        _fail(err.format_message())
    except click.Abort:
        _fail("interrupted")
    sys.exit(result if isinstance(result, int) else 0)
