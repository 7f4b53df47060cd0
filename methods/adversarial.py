"""What the two adversarial baselines share: config, optimisers, the pair discriminator's losses.

Each baseline's own file holds its networks' configuration and its update order.
"""
from __future__ import annotations

import dataclasses

import torch
import torch.nn.functional as F

from methods.base import Method, MethodConfig, added_field, check_draws
from methods.networks import Decoder, Encoder, PairDiscriminator, check_image_shape, init_weights

REAL, FAKE = 1, 0


@dataclasses.dataclass(frozen=True)
class AdversarialConfig(MethodConfig):
    epochs: int = 50
    lr: float = 1e-4
    betas: tuple[float, float] = (0.5, 0.999)
    generator_steps: int = 2
    # The discriminator is stepped only while its accuracy on the batch is below this.
    discriminator_gate: float = 0.8
    # How pairs and single-image batches are drawn (methods/base.py, DRAWS): "one_loader" is the
    # re-implementation's loader. Added after runs were named: the default leaves their ids.
    draws: str = added_field("independent")

    def __post_init__(self):
        check_draws(self.draws)


def verdict_loss(logits: torch.Tensor, label: int) -> torch.Tensor:
    return F.cross_entropy(logits, torch.full((len(logits),), label, device=logits.device))


def pair_loss(discriminator: torch.nn.Module, first: torch.Tensor, second: torch.Tensor,
              label: int) -> torch.Tensor:
    """Cross-entropy of the discriminator's verdict on the pairs (first[i], second[i])."""
    return verdict_loss(discriminator(first, second), label)


def discriminator_loss(discriminator: torch.nn.Module, real: tuple[torch.Tensor, torch.Tensor],
                       fake: tuple[torch.Tensor, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """CE(D(real), real) + CE(D(fake), fake), and D's accuracy over both halves.

    Real and fake pairs go through D as one batch: every layer acts per instance.
    """
    logits = discriminator(torch.cat([real[0], fake[0]]), torch.cat([real[1], fake[1]]))
    real_logits, fake_logits = logits.split([len(real[0]), len(fake[0])])
    loss = verdict_loss(real_logits, REAL) + verdict_loss(fake_logits, FAKE)
    correct = torch.cat([real_logits.argmax(1) == REAL, fake_logits.argmax(1) == FAKE])
    return loss, correct.float().mean()


@torch.no_grad()
def gated_step(optimiser: torch.optim.Optimizer, gate: torch.Tensor) -> None:
    """``optimiser.step()`` where the 0-dim bool tensor ``gate`` is true; where it is false,
    parameters and optimiser state stay exactly as they were (an empty state as zeros, which is
    how Adam starts one). The gate is never read on the host: the step is taken, then the old
    values are selected back, so no synchronisation and no data-dependent branch (a CUDA graph
    can hold it). The result is bit for bit that of ``if gate: optimiser.step()``."""
    parameters = [p for group in optimiser.param_groups for p in group["params"] if p.grad is not None]
    before = [(p.clone(), {key: value.clone() for key, value in optimiser.state[p].items()
                           if torch.is_tensor(value)}) for p in parameters]
    optimiser.step()
    for parameter, (old, old_state) in zip(parameters, before):
        parameter.copy_(torch.where(gate, parameter, old))
        for key, value in optimiser.state[parameter].items():
            if torch.is_tensor(value):
                previous = old_state.get(key)
                value.copy_(torch.where(gate, value, torch.zeros_like(value) if previous is None
                                        else previous))


class AdversarialAutoencoder(Method):
    """An encoder/decoder pair trained by two Adams (autoencoder, generator) against a pair
    discriminator with a third Adam."""
    config_class = AdversarialConfig
    decoder_options: dict = {}

    def build_networks(self, image_shape):
        check_image_shape(image_shape)
        c = self.config
        networks = {"encoder": Encoder(c.z_dim, c.s_dim, variational=self.variational,
                                       image_shape=image_shape),
                    "decoder": Decoder(c.z_dim, c.s_dim, **self.decoder_options, image_shape=image_shape),
                    "discriminator": PairDiscriminator(image_shape)}
        for net in networks.values():
            init_weights(net)
        return networks

    def autoencoder_parameters(self) -> list[torch.nn.Parameter]:
        return [*self.networks.encoder.parameters(), *self.networks.decoder.parameters()]

    def build_optimisers(self):
        c = self.config
        return {"autoencoder": torch.optim.Adam(self.autoencoder_parameters(), lr=c.lr, betas=c.betas),
                "generator": torch.optim.Adam(self.autoencoder_parameters(), lr=c.lr, betas=c.betas),
                "discriminator": torch.optim.Adam(self.networks.discriminator.parameters(),
                                                  lr=c.lr, betas=c.betas)}

    def discriminator_step(self, real: tuple[torch.Tensor, torch.Tensor],
                           fake: tuple[torch.Tensor, torch.Tensor]) -> dict[str, torch.Tensor]:
        """One discriminator update on real against fake pairs, taken only while the
        discriminator's accuracy on them is below the gate. Returns its logged terms."""
        loss, accuracy = discriminator_loss(self.networks.discriminator, real, fake)
        stepped = accuracy < self.config.discriminator_gate
        optimiser = self.optimisers["discriminator"]
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        gated_step(optimiser, stepped)
        return {"discriminator": loss.detach(), "discriminator_accuracy": accuracy.detach(),
                "discriminator_stepped": stepped.float()}
