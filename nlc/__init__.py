"""nlc: lossless compression with neural likelihood models.

The public API lives in :mod:`nlc.api`; the command line in :mod:`nlc.cli`.
The names below are imported when first used (``nlc.compress``, ``from nlc
import Codec``), so that ``import nlc`` and commands that need no model (``nlc
--help``, shell completion, ``nlc models``, ``nlc info``) do not pay torch's import.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

__all__ = [
    "Codec", "compress", "decompress", "encode_image", "decode_image", "read_header",
    "compress_set", "decompress_set", "encode_set", "decode_set", "verify", "register_architecture",
    "NlcError", "InputError", "FormatError", "CodecError", "__version__",
]

_HOMES = {".api": ("Codec", "compress", "decompress", "encode_image", "decode_image", "read_header"),
          ".sets": ("compress_set", "decompress_set", "encode_set", "decode_set"),
          ".verification": ("verify",), ".registry": ("register_architecture",),
          ".errors": ("NlcError", "InputError", "FormatError", "CodecError")}
_HOME = {name: module for module, names in _HOMES.items() for name in names}

if TYPE_CHECKING:
    from .api import Codec, compress, decode_image, decompress, encode_image, read_header
    from .errors import CodecError, FormatError, InputError, NlcError
    from .registry import register_architecture
    from .sets import compress_set, decode_set, decompress_set, encode_set
    from .verification import verify


def __getattr__(name: str) -> Any:
    """Import a public name's module on first use (PEP 562)."""
    module = _HOME.get(name)
    if module is None:
        raise AttributeError(f"module 'nlc' has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value
