"""``python -m nlc``: the command line (:func:`nlc.cli.run`)."""

from .cli import run

run()
