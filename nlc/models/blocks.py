"""Small convolutional building blocks shared by the latent-variable models."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class ResBlock(nn.Module):
    """``x + conv(elu(conv(elu(x))))`` with 3x3 convolutions and a zero-initialised last layer."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.c1 = nn.Conv2d(channels, channels, 3, padding=1)
        self.c2 = nn.Conv2d(channels, channels, 3, padding=1)
        nn.init.zeros_(self.c2.weight)
        nn.init.zeros_(self.c2.bias)  # type: ignore[arg-type]  # a Conv2d made with a bias

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Residual update."""
        return x + self.c2(F.elu(self.c1(F.elu(x))))


def down(cin: int, cout: int) -> nn.Module:
    """Halve the resolution (stride-2 4x4 convolution)."""
    return nn.Conv2d(cin, cout, 4, stride=2, padding=1)


def up(cin: int, cout: int) -> nn.Module:
    """Double the resolution (stride-2 4x4 transposed convolution)."""
    return nn.ConvTranspose2d(cin, cout, 4, stride=2, padding=1)


class GaussianHead(nn.Module):
    """A 3x3 convolution to the mean and log-std of a diagonal Gaussian over ``channels`` maps."""

    def __init__(self, cin: int, channels: int, min_log_std: float = -6.0) -> None:
        super().__init__()
        self.conv = nn.Conv2d(cin, 2 * channels, 3, padding=1)
        self.min_log_std = min_log_std

    def forward(self, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(mean, log_std)``."""
        mean, log_std = self.conv(h).chunk(2, dim=1)
        return mean, log_std.clamp(min=self.min_log_std, max=2.0)


def pixels_in(x: torch.Tensor, bits: int) -> torch.Tensor:
    """Network input from integer pixels ``(B, 28, 28)``: ``(B, 1, 28, 28)`` in ``[-1, 1]``."""
    scale = 1 if bits == 1 else 255
    return (x.float() / scale * 2 - 1).unsqueeze(1)
