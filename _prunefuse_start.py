"""The ``prunefuse`` command's entry point, outside the package so that it runs before torch
is imported: Ctrl-C while the package loads (seconds, on a busy machine) prints one line and
exits 130, instead of a traceback through the imports. Nothing has run by then."""

import sys


def main() -> int:
    try:
        from prunefuse.cli import main as cli_main
    except KeyboardInterrupt:
        print("prunefuse: interrupted while starting; nothing ran", file=sys.stderr)
        return 130
    return cli_main()
