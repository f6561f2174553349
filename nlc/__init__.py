"""nlc: lossless compression with neural likelihood models.

The public API lives in :mod:`nlc.api`; the command line in :mod:`nlc.cli`.
"""

from .api import Codec, compress, decode_image, decompress, encode_image, read_header
from .errors import CodecError, FormatError, InputError, NlcError
from .registry import register_architecture
from .sets import compress_set, decode_set, decompress_set, encode_set
from .verification import verify

__version__ = "0.1.0"

__all__ = [
    "Codec", "compress", "decompress", "encode_image", "decode_image", "read_header",
    "compress_set", "decompress_set", "encode_set", "decode_set", "verify", "register_architecture",
    "NlcError", "InputError", "FormatError", "CodecError", "__version__",
]
