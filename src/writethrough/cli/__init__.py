"""The ``writethrough`` command-line tool (the ``[cli]`` extra: click and rich).

``import writethrough`` never imports this package; ``main`` imports click and
rich only when it runs, and says how to install them when they are missing.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

__all__ = ["main"]

INSTALL_HINT = (
    "writethrough: the command-line tool needs click and rich: pip install 'writethrough[cli]'"
)


def main(argv: Sequence[str] | None = None) -> None:
    """Run the command line (``argv`` defaults to ``sys.argv[1:]``); exits with its code."""
    try:
        import click  # noqa: F401
        import rich  # noqa: F401
    except ImportError:
        print(INSTALL_HINT, file=sys.stderr)
        raise SystemExit(2) from None
    from ._app import cli

    cli.main(args=list(argv) if argv is not None else None, prog_name="writethrough")
