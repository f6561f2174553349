"""Errors that mean "this input is bad" or "this command line is wrong", as opposed to bugs.

The CLI turns every :class:`NlcError` into one line on stderr: exit status 2 for a
:class:`UsageError` (as for click's own usage errors), 1 for a file that failed.
"""

from contextlib import contextmanager
from pathlib import Path
from typing import Iterator


class NlcError(Exception):
    """Base class: the message is one line meant for the user."""


class InputError(NlcError):
    """The input file is missing, unreadable, not an image, or of an unsupported kind."""


class FormatError(NlcError):
    """A ``.nlc`` file is truncated, corrupted, or of an unknown format version."""


class CodecError(NlcError):
    """Unknown codec, or weights that do not match the registry's sha256."""


class UsageError(NlcError):
    """The command line asks for something that cannot be done (options that conflict, an output that cannot
    name what several inputs need, a codec name the registry does not hold)."""


class UnknownCodecError(CodecError, UsageError):
    """A codec name (``--model``) that the registry does not hold."""


@contextmanager
def file_errors(path: str | Path) -> Iterator[None]:
    """Turn the usual ways of failing to open ``path`` into one-line :class:`InputError` messages."""
    try:
        yield
    except FileNotFoundError:
        raise InputError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise InputError(f"{path}: is a directory") from None
    except PermissionError:
        raise InputError(f"{path}: permission denied") from None
    except OSError as e:  # a symlink loop, an I/O error, a full disk...
        raise InputError(f"{path}: {e.strerror or e}") from None
