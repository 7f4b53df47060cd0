"""The networks shared by every method (reference: methods.md, "Shared networks").

Each network is written once and configured by its arguments; methods pick a configuration,
they never copy a network.
"""
from __future__ import annotations

import torch
from torch import nn

MNIST_SHAPE = (1, 28, 28)
TRUNK_FEATURES = 256  # 64 channels x 2 x 2 after the third convolution


def _conv_block(c_in: int, c_out: int, activation: nn.Module) -> list[nn.Module]:
    # affine=False and no running statistics: the original always normalised per instance,
    # in training and evaluation alike (methods.md, "InstanceNorm note").
    return [nn.Conv2d(c_in, c_out, kernel_size=5, stride=2, padding=1),
            nn.InstanceNorm2d(c_out, affine=False, track_running_stats=False),
            activation]


class Encoder(nn.Module):
    """28x28 image -> (z_mean, z_logvar or None, s)."""

    def __init__(self, z_dim: int, s_dim: int, variational: bool = True):
        super().__init__()
        self.trunk = nn.Sequential(*_conv_block(1, 16, nn.ReLU()),
                                   *_conv_block(16, 32, nn.ReLU()),
                                   *_conv_block(32, 64, nn.ReLU()),
                                   nn.Flatten())
        self.z_mean = nn.Linear(TRUNK_FEATURES, z_dim)
        self.z_logvar = nn.Linear(TRUNK_FEATURES, z_dim) if variational else None
        self.s = nn.Linear(TRUNK_FEATURES, s_dim)

    def forward(self, x: torch.Tensor):
        h = self.trunk(x)
        z_logvar = self.z_logvar(h) if self.z_logvar is not None else None
        return self.z_mean(h), z_logvar, self.s(h)


class Decoder(nn.Module):
    """(z, s) -> 28x28 image in [0, 1].

    The cycle-consistent VAE and Mathieu et al. use LeakyReLU(0.2) after the two input layers and
    in the deconvolution stack; Szabo et al.'s variant has no input activation and ReLU in the
    stack (``input_activation=False, stack_activation="relu"``).
    """

    def __init__(self, z_dim: int, s_dim: int, input_activation: bool = True,
                 stack_activation: str = "leaky_relu"):
        super().__init__()
        act_in = (lambda: nn.LeakyReLU(0.2)) if input_activation else nn.Identity
        act = {"leaky_relu": lambda: nn.LeakyReLU(0.2), "relu": nn.ReLU}[stack_activation]
        self.from_z = nn.Sequential(nn.Linear(z_dim, 256), act_in())
        self.from_s = nn.Sequential(nn.Linear(s_dim, 256), act_in())
        self.deconv = nn.Sequential(
            nn.ConvTranspose2d(128, 32, kernel_size=4, stride=2, padding=0),
            nn.InstanceNorm2d(32, affine=False, track_running_stats=False), act(),
            nn.ConvTranspose2d(32, 16, kernel_size=4, stride=2, padding=0),
            nn.InstanceNorm2d(16, affine=False, track_running_stats=False), act(),
            nn.ConvTranspose2d(16, 1, kernel_size=4, stride=2, padding=1),
            nn.Sigmoid())

    def forward(self, z: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
        h = torch.cat([self.from_z(z), self.from_s(s)], dim=1)  # z part first
        return self.deconv(h.view(-1, 128, 2, 2))


class PairDiscriminator(nn.Module):
    """Two 28x28 images stacked as channels -> logits (fake, real): label 1 = a real pair."""

    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(*_conv_block(2, 32, nn.LeakyReLU(0.2)),
                                 *_conv_block(32, 64, nn.LeakyReLU(0.2)),
                                 *_conv_block(64, 128, nn.LeakyReLU(0.2)),
                                 nn.Flatten(),
                                 nn.Linear(128 * 2 * 2, 2))

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return self.net(torch.cat([a, b], dim=1))


def init_weights(module: nn.Module) -> None:
    """The original init: Conv2d and Linear weights ~ N(0, 0.05), biases 0.

    Transposed convolutions keep PyTorch's default init: the original init function never matched
    them, and we reproduce that.
    """
    for m in module.modules():
        if type(m) in (nn.Conv2d, nn.Linear):
            nn.init.normal_(m.weight, mean=0.0, std=0.05)
            nn.init.zeros_(m.bias)


def check_image_shape(shape: tuple[int, ...]) -> None:
    if tuple(shape) != MNIST_SHAPE:
        raise ValueError(f"the shared networks are defined for images of shape {MNIST_SHAPE}, "
                         f"got {tuple(shape)}")
