"""``python -m nlc``: the command line (:func:`nlc.cli.console`)."""

from .cli import console

console()
