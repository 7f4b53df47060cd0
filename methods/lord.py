"""LORD, Latent Optimization for Representation Disentanglement (Gabbay & Hoshen, ICLR 2020;
arXiv 1906.11796): reference docs/methods.md, "LORD". LORD calls our s "class" and our z "content".

Stage 1, latent optimisation, has no encoder: one s embedding per group of images that share s
(the connected components of the training set's pair graph), one z code per training image, and
the generator, all optimised for reconstruction. A z code is decoded with Gaussian noise added
and pays an activity penalty, so it carries as little as it can; an s embedding is shared by its
whole group, so it cannot carry one image's details. Stage 2, amortisation, trains the encoder
to regress the stage-1 codes and fine-tunes the generator. Each stage runs ``epochs`` epochs.
"""
from __future__ import annotations

import dataclasses

import torch
import torch.nn.functional as F
from torch import nn

from methods.base import Method, MethodConfig, TrainingData, register
from methods._nets import Decoder, Encoder, check_image_shape, init_weights

LATENT_OPTIMISATION, AMORTISATION = 1, 2


@dataclasses.dataclass(frozen=True)
class LORDConfig(MethodConfig):
    epochs: int = 100  # per stage (the authors' PyTorch code: 200 + 200 on larger datasets)
    betas: tuple[float, float] = (0.5, 0.999)
    final_lr: float = 1e-5  # both stages decay to it on a cosine, one step per epoch
    # Stage 1.
    generator_lr: float = 3e-4
    code_lr: float = 3e-3  # s embeddings and z codes
    code_init: float = 0.05  # codes start uniform in (-code_init, code_init)
    code_noise: float = 1.0  # std of the noise added to a z code before decoding, training only
    code_penalty: float = 1e-4  # weight of the batch mean of ||z code||^2
    # Stage 2.
    amortisation_lr: float = 1e-4
    regression_weight: float = 10.0

    @property
    def training_epochs(self) -> int:
        return 2 * self.epochs


def reconstruction_loss(reconstructed: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Pixel L1, the mean over pixels and images. (LORD's perceptual VGG loss needs ImageNet
    weights we cannot ship; its authors' PyTorch code adds this L1 beside it.)"""
    return F.l1_loss(reconstructed, x)


@register
class LORD(Method):
    name = "lord"
    config_class = LORDConfig
    variational = False

    def build_networks(self, image_shape):
        check_image_shape(image_shape)
        if self.pair_graph is None:
            raise ValueError("lord keeps a code per training image and an embedding per group of "
                             "images sharing s: it needs the training set's pair graph")
        c = self.config
        self.epochs_done = 0  # the stage follows from it (``phase``)
        self.group = self.pair_graph.components().to(self.device)  # the group of each image
        networks = {"encoder": Encoder(c.z_dim, c.s_dim, variational=False, image_shape=image_shape),
                    "decoder": Decoder(c.z_dim, c.s_dim, image_shape=image_shape)}
        for net in networks.values():
            init_weights(net)
        networks["s_embeddings"] = nn.Embedding(int(self.group.max()) + 1, c.s_dim)
        networks["z_codes"] = nn.Embedding(self.pair_graph.size, c.z_dim)
        for codes in (networks["s_embeddings"], networks["z_codes"]):
            nn.init.uniform_(codes.weight, -c.code_init, c.code_init)
        return networks

    def build_optimisers(self):
        c, nets = self.config, self.networks
        codes = [*nets.s_embeddings.parameters(), *nets.z_codes.parameters()]
        return {"latent": torch.optim.Adam([{"params": nets.decoder.parameters(), "lr": c.generator_lr},
                                            {"params": codes, "lr": c.code_lr}], betas=c.betas),
                "amortisation": torch.optim.Adam([*nets.encoder.parameters(), *nets.decoder.parameters()],
                                                 lr=c.amortisation_lr, betas=c.betas)}

    def build_schedulers(self):
        c = self.config
        return {name: torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, T_max=c.epochs,
                                                                  eta_min=c.final_lr)
                for name, optimiser in self.optimisers.items()}

    @property
    def phase(self) -> int:
        return LATENT_OPTIMISATION if self.epochs_done < self.config.epochs else AMORTISATION

    def codes(self, index: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The stage-1 codes (z code, s embedding) of the training images ``index``, noiseless."""
        return self.networks.z_codes(index), self.networks.s_embeddings(self.group[index])

    def training_codes(self) -> torch.Tensor:
        return self.networks.z_codes.weight.detach()

    def latent_optimisation_loss(self, index: torch.Tensor, x: torch.Tensor) -> dict[str, torch.Tensor]:
        c = self.config
        z, s = self.codes(index)
        noisy_z = z + c.code_noise * self.normal(*z.shape)
        code_penalty = z.pow(2).sum(dim=1).mean()
        reconstruction = reconstruction_loss(self.decode(noisy_z, s), x)
        zero = torch.zeros((), device=x.device)
        return {"reconstruction": reconstruction, "code_penalty": code_penalty,
                "z_regression": zero, "s_regression": zero,
                "total": reconstruction + c.code_penalty * code_penalty}

    def amortisation_loss(self, index: torch.Tensor, x: torch.Tensor) -> dict[str, torch.Tensor]:
        code = self.encode(x)
        with torch.no_grad():
            z_target, s_target = self.codes(index)
        z_regression, s_regression = F.mse_loss(code.z_mean, z_target), F.mse_loss(code.s, s_target)
        reconstruction = reconstruction_loss(self.decode(code.z_mean, code.s), x)
        return {"reconstruction": reconstruction, "code_penalty": torch.zeros((), device=x.device),
                "z_regression": z_regression, "s_regression": s_regression,
                "total": reconstruction + self.config.regression_weight * (z_regression + s_regression)}

    def train_step(self, data: TrainingData) -> dict[str, torch.Tensor]:
        i1, i2, x1, x2 = data.indexed_pair()  # both images of each pair: 2 x batch images
        index, x = torch.cat([i1, i2]), torch.cat([x1, x2])
        phase = self.phase
        if phase == LATENT_OPTIMISATION:
            terms, optimiser = self.latent_optimisation_loss(index, x), self.optimisers["latent"]
        else:
            terms, optimiser = self.amortisation_loss(index, x), self.optimisers["amortisation"]
        optimiser.zero_grad(set_to_none=True)
        terms["total"].backward()
        optimiser.step()
        return {**{name: value.detach() for name, value in terms.items()},
                "stage": torch.full((), float(phase), device=x.device)}

    def end_epoch(self) -> None:
        self.schedulers["latent" if self.phase == LATENT_OPTIMISATION else "amortisation"].step()
        self.epochs_done += 1

    def state_dict(self) -> dict:
        return {**super().state_dict(), "epochs_done": self.epochs_done}

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        self.epochs_done = int(state["epochs_done"])
