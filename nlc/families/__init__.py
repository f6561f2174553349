"""Codec families: how the models of one family turn images and sets into payloads and back.

Every registered architecture names its family (:func:`nlc.registry.register_architecture`); the API
asks the loaded codec's family (:attr:`nlc.codec.Codec.family`) to code, never the architecture's
name. A family implements the :class:`Family` protocol, like craystack's push/pop codecs or nflows'
``Transform``: what it cannot code (a set for a flow, a single image for a bits-back VAE) raises a
:class:`~nlc.errors.CodecError` that says what to use instead.

=================  ==============================  ===========================================
family             single images                   sets (many same-sized images, one file)
=================  ==============================  ===========================================
``autoregressive`` tiles stepped pixel by pixel     the tiles of all images in one batch
``flow``           integer flow, latents coded      no
``bitsback``       no                               one bits-back ANS chain
``sequence``       no                               all items at once, one position per step
``setflow``        no                               integer latents of all items, then inverted
=================  ==============================  ===========================================
"""

from __future__ import annotations

from ..errors import CodecError
from .autoregressive import AUTOREGRESSIVE
from .base import Family, LoadedCodec, Unsupported
from .bitsback import BITSBACK
from .flow import FLOW
from .sequence import SEQUENCE
from .setflow import SET_FLOW

FAMILIES: dict[str, Family] = {f.name: f for f in (AUTOREGRESSIVE, FLOW, BITSBACK, SEQUENCE, SET_FLOW)}


def family(name: str) -> Family:
    """The implementation of the codec family ``name`` (as :data:`nlc.registry.FAMILIES` lists them)."""
    try:
        return FAMILIES[name]
    except KeyError:
        raise CodecError(f"unknown codec family {name!r} (known: {', '.join(FAMILIES)})") from None


__all__ = ["FAMILIES", "Family", "LoadedCodec", "Unsupported", "family"]
