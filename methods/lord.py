"""LORD, Latent Optimization for Representation Disentanglement (Gabbay & Hoshen, ICLR 2020;
arXiv 1906.11796): reference docs/methods.md, "LORD". LORD calls our s "class" and our z "content".

Stage 1, latent optimisation, has no encoder: one s embedding per group of images that share s
(the connected components of the training set's pair graph), one z code per training image, and
the generator, all optimised for reconstruction. A z code is decoded with Gaussian noise added
and pays an activity penalty, so it carries as little as it can; an s embedding is shared by its
whole group, so it cannot carry one image's details. Stage 2, amortisation, trains the encoder
to regress the stage-1 codes and fine-tunes the generator. Each stage runs ``epochs`` epochs.

As in the authors' PyTorch code: batches of 128 shuffled training images (each once an epoch; the
pairs only say which images share s), the activity penalty on the noisy code, and one encoder per
code. Each has its other form as a setting (docs/methods.md, "LORD deviations").
"""
from __future__ import annotations

import dataclasses

import torch
import torch.nn.functional as F
from torch import nn

from methods.base import Encoding, Method, MethodConfig, TrainingData, register
from methods.networks import Decoder, Encoder, check_image_shape, init_weights

LATENT_OPTIMISATION, AMORTISATION = 1, 2
BATCHES = ("images", "pairs")
PENALISED_CODES = ("noisy", "noiseless")


@dataclasses.dataclass(frozen=True)
class LORDConfig(MethodConfig):
    epochs: int = 100  # per stage (the authors' PyTorch code: 200 + 200 on larger datasets)
    # "images": batch_size shuffled training images a step, each once an epoch (the authors');
    # "pairs": batch_size same-class pairs, both images of each (2 x batch_size images a step).
    batches: str = "images"
    batch_size: int = 128
    separate_encoders: bool = True  # one encoder per code (the authors'); else one trunk, two heads
    betas: tuple[float, float] = (0.5, 0.999)
    final_lr: float = 1e-5  # both stages decay to it on a cosine, one step per epoch
    # Stage 1.
    generator_lr: float = 3e-4
    code_lr: float = 3e-3  # s embeddings and z codes
    code_init: float = 0.05  # codes start uniform in (-code_init, code_init)
    code_noise: float = 1.0  # std of the noise added to a z code before decoding, training only
    code_penalty: float = 1e-4  # weight of the batch mean of ||z code||^2
    # The code the penalty sees: "noisy", with its noise (the PyTorch code); "noiseless" (the
    # TensorFlow code's activity regulariser, there with weight 1e-3 on a sum).
    penalised_code: str = "noisy"
    # Stage 2.
    amortisation_lr: float = 1e-4
    regression_weight: float = 10.0

    def __post_init__(self):
        if self.batches not in BATCHES:
            raise ValueError(f"batches must be 'images' or 'pairs', got {self.batches!r}")
        if self.penalised_code not in PENALISED_CODES:
            raise ValueError(f"penalised_code must be 'noisy' or 'noiseless', got "
                             f"{self.penalised_code!r}")

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
        if c.separate_encoders:
            encoders = {"encoder": Encoder(c.z_dim, 0, variational=False, image_shape=image_shape),
                        "s_encoder": Encoder(0, c.s_dim, variational=False, image_shape=image_shape)}
        else:
            encoders = {"encoder": Encoder(c.z_dim, c.s_dim, variational=False, image_shape=image_shape)}
        networks = {**encoders, "decoder": Decoder(c.z_dim, c.s_dim, image_shape=image_shape)}
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
                "amortisation": torch.optim.Adam([*self.encoder_parameters(), *nets.decoder.parameters()],
                                                 lr=c.amortisation_lr, betas=c.betas)}

    def encoder_parameters(self) -> list[nn.Parameter]:
        names = ("encoder", "s_encoder") if self.config.separate_encoders else ("encoder",)
        return [p for name in names for p in self.networks[name].parameters()]

    def encode(self, x: torch.Tensor) -> Encoding:
        if not self.config.separate_encoders:
            return super().encode(x)
        z, _, _ = self.networks.encoder(x)
        _, _, s = self.networks.s_encoder(x)
        return Encoding(s=s, z_mean=z, z_logvar=None)

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
        code_penalty = (noisy_z if c.penalised_code == "noisy" else z).pow(2).sum(dim=1).mean()
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
        i1, i2, x1, x2 = data.indexed_pair()
        if self.config.batches == "images":  # the anchors: a permutation of the training set
            index, x = i1, x1
        else:  # both images of each pair
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
