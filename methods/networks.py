"""The networks shared by every method (reference: docs/methods.md, "Shared networks").

Each network is written once and configured by its arguments; methods pick a configuration,
they never copy a network.
"""
from __future__ import annotations

import torch
from torch import nn

MNIST_SHAPE = (1, 28, 28)
TRUNK_FEATURES = 256  # 64 channels x 2 x 2 after the third convolution
# The generic family (no published network exists for other shapes; docs/datasets.md, "Networks
# for other shapes"): the convolutional encoder/decoder of disentanglement_lib's standard
# architecture (Locatello et al. 2019, after Burgess et al. 2018), with split z/s heads.
GENERIC_CHANNELS = (32, 32, 64, 64)
GENERIC_LAYERS = len(GENERIC_CHANNELS)
GENERIC_HIDDEN = 256
GENERIC_MIN_SIDE = 32  # four halvings leave at least 2 x 2


def _conv_block(c_in: int, c_out: int, activation: nn.Module) -> list[nn.Module]:
    # affine=False and no running statistics: the original always normalised per instance,
    # in training and evaluation alike (docs/methods.md, "Shared networks", InstanceNorm).
    return [nn.Conv2d(c_in, c_out, kernel_size=5, stride=2, padding=1),
            nn.InstanceNorm2d(c_out, affine=False, track_running_stats=False),
            activation]


def conv_sizes(side: int, layers: int = GENERIC_LAYERS) -> list[int]:
    """Spatial side after each 4x4 stride-2 padding-1 convolution: floor(n / 2) every layer."""
    sides = [side]
    for _ in range(layers):
        sides.append(sides[-1] // 2)
    return sides


def _generic_trunk(c_in: int, activation) -> nn.Sequential:
    """The conv family for images other than 1x28x28: four 4x4 stride-2 convolutions
    (c_in -> 32 -> 32 -> 64 -> 64), each followed by ``activation()``. No InstanceNorm: it would
    rescale each channel per image, which erases how strongly a colour drives it (docs/methods.md)."""
    layers, channels = [], (c_in, *GENERIC_CHANNELS)
    for a, b in zip(channels, channels[1:]):
        layers += [nn.Conv2d(a, b, kernel_size=4, stride=2, padding=1), activation()]
    return nn.Sequential(*layers, nn.Flatten())


def _generic_features(image_shape: tuple[int, ...]) -> int:
    _, height, width = image_shape
    return GENERIC_CHANNELS[-1] * conv_sizes(height)[-1] * conv_sizes(width)[-1]


class Encoder(nn.Module):
    """image -> (z_mean, z_logvar or None, s). 1x28x28: the paper's network; other shapes: the
    generic conv family, then Linear(features -> 256) and ReLU before the heads. A code of size 0
    has no head (its output is None)."""

    def __init__(self, z_dim: int, s_dim: int, variational: bool = True,
                 image_shape: tuple[int, ...] = MNIST_SHAPE):
        super().__init__()
        check_image_shape(image_shape)
        if tuple(image_shape) == MNIST_SHAPE:
            self.trunk = nn.Sequential(*_conv_block(1, 16, nn.ReLU()),
                                       *_conv_block(16, 32, nn.ReLU()),
                                       *_conv_block(32, 64, nn.ReLU()),
                                       nn.Flatten())
            features = TRUNK_FEATURES
        else:
            self.trunk = nn.Sequential(_generic_trunk(image_shape[0], nn.ReLU),
                                       nn.Linear(_generic_features(image_shape), GENERIC_HIDDEN),
                                       nn.ReLU())
            features = GENERIC_HIDDEN
        # A size of 0 leaves its head out (a method with one encoder per code: LORD's authors').
        self.z_mean = nn.Linear(features, z_dim) if z_dim else None
        self.z_logvar = nn.Linear(features, z_dim) if variational and z_dim else None
        self.s = nn.Linear(features, s_dim) if s_dim else None

    def forward(self, x: torch.Tensor):
        h = self.trunk(x)
        # z_logvar's head first: the order the heads run in is the order their gradients add up
        # in h's, and a published run's fingerprint depends on that sum to the last bit.
        z_logvar = self.z_logvar(h) if self.z_logvar is not None else None
        z_mean = self.z_mean(h) if self.z_mean is not None else None
        return z_mean, z_logvar, self.s(h) if self.s is not None else None


class Decoder(nn.Module):
    """(z, s) -> image in [0, 1].

    The cycle-consistent VAE and Mathieu et al. use LeakyReLU(0.2) after the two input layers and
    in the deconvolution stack; Szabo et al.'s variant has no input activation and ReLU in the
    stack (``input_activation=False, stack_activation="relu"``). Other shapes than 1x28x28 mirror
    the generic encoder: Linear(512 -> 64 x h x w), then four 4x4 stride-2 transposed
    convolutions (64 -> 64 -> 32 -> 32 -> C) whose output padding restores each odd side.

    ``pixel_logvar``: the last layer also gives each pixel a log-variance, bounded to (-1, 1) by a
    tanh (the first ML-VAE author's likelihood): it has 2C output channels, the first C the image
    through the sigmoid; ``forward`` gives the image, ``distribution`` both.
    """

    def __init__(self, z_dim: int, s_dim: int, input_activation: bool = True,
                 stack_activation: str = "leaky_relu", image_shape: tuple[int, ...] = MNIST_SHAPE,
                 pixel_logvar: bool = False):
        super().__init__()
        check_image_shape(image_shape)
        self.channels = image_shape[0]
        self.pixel_logvar = pixel_logvar
        out = self.channels * (2 if pixel_logvar else 1)
        last_activation = nn.Identity if pixel_logvar else nn.Sigmoid
        act_in = (lambda: nn.LeakyReLU(0.2)) if input_activation else nn.Identity
        act = {"leaky_relu": lambda: nn.LeakyReLU(0.2), "relu": nn.ReLU}[stack_activation]
        self.from_z = nn.Sequential(nn.Linear(z_dim, 256), act_in())
        self.from_s = nn.Sequential(nn.Linear(s_dim, 256), act_in())
        if tuple(image_shape) == MNIST_SHAPE:
            self.seed_shape = (128, 2, 2)
            self.expand = nn.Identity()
            self.deconv = nn.Sequential(
                nn.ConvTranspose2d(128, 32, kernel_size=4, stride=2, padding=0),
                nn.InstanceNorm2d(32, affine=False, track_running_stats=False), act(),
                nn.ConvTranspose2d(32, 16, kernel_size=4, stride=2, padding=0),
                nn.InstanceNorm2d(16, affine=False, track_running_stats=False), act(),
                nn.ConvTranspose2d(16, out, kernel_size=4, stride=2, padding=1),
                last_activation())
            return
        channels, height, width = image_shape
        heights, widths = conv_sizes(height)[::-1], conv_sizes(width)[::-1]
        self.seed_shape = (GENERIC_CHANNELS[-1], heights[0], widths[0])
        self.expand = nn.Sequential(nn.Linear(512, _generic_features(image_shape)), act())
        stack_channels = (*GENERIC_CHANNELS[::-1], out)
        layers = []
        for i, (a, b) in enumerate(zip(stack_channels, stack_channels[1:])):
            padding = (heights[i + 1] - 2 * heights[i], widths[i + 1] - 2 * widths[i])
            layers.append(nn.ConvTranspose2d(a, b, kernel_size=4, stride=2, padding=1,
                                             output_padding=padding))
            last = i == len(stack_channels) - 2
            layers.append(last_activation() if last else act())
        self.deconv = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
        if self.pixel_logvar:
            return self.distribution(z, s)[0]
        return self._output(z, s)

    def distribution(self, z: torch.Tensor, s: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(image, per-pixel log-variance in (-1, 1)); needs ``pixel_logvar``."""
        if not self.pixel_logvar:
            raise ValueError("this decoder was built without pixel_logvar")
        out = self._output(z, s)
        return torch.sigmoid(out[:, :self.channels]), torch.tanh(out[:, self.channels:])

    def _output(self, z: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
        h = torch.cat([self.from_z(z), self.from_s(s)], dim=1)  # z part first
        return self.deconv(self.expand(h).view(-1, *self.seed_shape))


class PairDiscriminator(nn.Module):
    """Two images stacked as channels -> logits (fake, real): label 1 = a real pair."""

    def __init__(self, image_shape: tuple[int, ...] = MNIST_SHAPE):
        super().__init__()
        check_image_shape(image_shape)
        if tuple(image_shape) == MNIST_SHAPE:
            self.net = nn.Sequential(*_conv_block(2, 32, nn.LeakyReLU(0.2)),
                                     *_conv_block(32, 64, nn.LeakyReLU(0.2)),
                                     *_conv_block(64, 128, nn.LeakyReLU(0.2)),
                                     nn.Flatten(),
                                     nn.Linear(128 * 2 * 2, 2))
        else:
            self.net = nn.Sequential(_generic_trunk(2 * image_shape[0], lambda: nn.LeakyReLU(0.2)),
                                     nn.Linear(_generic_features(image_shape), 2))

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
    """The networks exist for 1x28x28 (the paper's) and for C x H x W with H, W >= 32 (the family)."""
    shape = tuple(shape)
    if shape == MNIST_SHAPE:
        return
    if len(shape) != 3 or min(shape[1:]) < GENERIC_MIN_SIDE or shape[0] < 1:
        raise ValueError(f"no network for images of shape {shape}: the networks take 1x28x28 or "
                         f"C x H x W with H and W at least {GENERIC_MIN_SIDE}")
