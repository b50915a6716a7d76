"""The `mistgrid` entry point: every expected error becomes one line on stderr and exit 1."""

from __future__ import annotations

import importlib
import sys
from typing import Any

import click

from .. import __version__
from ..errors import MistgridError

# Each command's module is imported only when that command runs (or help lists it), so a
# call pays only for what it uses: `mistgrid put` never imports Twisted.
COMMANDS = {
    "add-alias": "files:add_alias_command", "admin": "admin:admin",
    "create-alias": "files:create_alias",
    "list-aliases": "files:list_aliases", "ln": "files:ln", "ls": "files:ls",
    "mkdir": "files:mkdir", "mv": "files:mv", "rm": "files:rm", "unlink": "files:rm",
    "manifest": "files:manifest", "deep-size": "files:deep_size", "stats": "files:stats",
    "backup": "backup:backup", "check": "check:check", "deep-check": "check:deep_check",
    "cp": "copy:cp", "create-client": "create:create_client",
    "create-introducer": "create:create_introducer",
    "create-node": "create:create_node", "debug": "debug:debug", "demo": "demo:demo",
    "get": "data:get", "put": "data:put", "restart": "daemon:restart", "run": "run:run",
    "start": "daemon:start", "status": "daemon:status", "stop": "daemon:stop",
}


class _OneLineErrors(click.Group):
    """Turns mistgrid and OS errors into `mistgrid: error: ...` and exit status 1; loads
    commands lazily."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = COMMANDS.get(cmd_name)
        if target is None:
            return None
        module, _, attr = target.partition(":")
        command: click.Command = getattr(importlib.import_module(f".{module}", __package__),
                                         attr)
        return command

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
@click.option("-d", "--node-directory", "node_dir", default=None, metavar="NODEDIR",
              help="The node directory commands act on (as `tahoe -d NODEDIR ...`).")
@click.pass_context
def cli(ctx: click.Context, node_dir: str | None) -> None:
    """mistgrid: a Tahoe-LAFS compatible file store that speaks Tor and I2P."""
    ctx.obj = {"node_dir": node_dir}



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
