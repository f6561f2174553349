"""Integer discrete flows: exactly invertible maps between integer images and integer latents.

:mod:`.bijections` holds the building blocks (squeeze, channel reversal, the
integer 1x1 convolution, additive and affine coupling) behind one interface;
:mod:`.priors` the discretized logistic mixture priors of the latents;
:mod:`.idf` the multi-scale model that composes them.
"""

from .bijections import (
           AdditiveCoupling,
           AffineCoupling,
           Bijection,
           IntegerConv1x1,
           Reverse,
           Squeeze,
           check_invertible,
)
from .idf import IDF, IDFConfig

__all__ = ["AdditiveCoupling", "AffineCoupling", "Bijection", "IDF", "IDFConfig", "IntegerConv1x1", "Reverse", "Squeeze",
           "check_invertible"]
