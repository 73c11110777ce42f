"""The ``writethrough`` command group; each command lives in its own module."""

from __future__ import annotations

import click

import writethrough as wt

from .bench import bench
from .bus import bus_group
from .simulate import simulate_command

__all__ = ["cli"]


@click.group(
    help="writethrough: a write-through, read-through cache in front of a durable store.",
    epilog="Run 'writethrough COMMAND --help' for a command's options.",
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)
@click.version_option(wt.__version__, "--version", prog_name="writethrough")
def cli() -> None:
    """The command group."""


cli.add_command(bench)
cli.add_command(bus_group)
cli.add_command(simulate_command)
