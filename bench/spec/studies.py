"""Studies: measurements that decide a default (issue 41), trained by the paper campaign
(bench/launch/campaign.py) after the first row of the paper's grid and published into
results/studies/<name>/ (bench/launch/publish.py, bench/report/study_results.py).

A study is one record of ``STUDIES``, data and never a code path: a method, an epoch count, seeds
and variants, each variant a few settings as ``--set KEY=VALUE`` gives them (the first variant is
the default: no setting). Each (variant, seed) is an ordinary run, MNIST at latent sizes 16/16, the
campaign's preset (paper) with ``epochs`` set (for a method trained in stages, LORD, the epochs of
each stage) and the variant's settings on top, named by its resolved config like any other run.
"""
from __future__ import annotations

import dataclasses
import re
from typing import TYPE_CHECKING, Mapping, Union

if TYPE_CHECKING:
    from bench.spec.config import RunConfig

DATASET = "mnist"
Z_DIM, S_DIM = 16, 16
# What a study sets itself; a variant that set them would be another study.
STUDY_KEYS = ("epochs", "z_dim", "s_dim")
NAME = re.compile(r"[a-z0-9][a-z0-9-]*")
Setting = Union[str, int, float, bool]


def setting_text(value: Setting) -> str:
    """``value`` as it is written after ``--set KEY=``: the text the run's config is resolved from,
    on the command line and here alike (so both name the run alike)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)  # a float's str round-trips exactly


@dataclasses.dataclass(frozen=True)
class Variant:
    label: str  # a few words, shown by status and in the study's README
    settings: Mapping[str, Setting] = dataclasses.field(default_factory=dict, hash=False)

    def set_texts(self) -> dict[str, str]:
        """The settings as ``--set KEY=VALUE`` gives them: {key: text}."""
        return {key: setting_text(value) for key, value in self.settings.items()}

    def describe(self) -> str:
        return ", ".join(f"{k}={v}" for k, v in self.set_texts().items()) or "the defaults"


@dataclasses.dataclass(frozen=True)
class Study:
    name: str  # its folder: results/studies/<name>/
    question: str
    method: str
    epochs: int  # per stage for a method trained in stages (LORD)
    seeds: tuple[int, ...]
    variants: tuple[Variant, ...]  # the first is the default (no setting)
    # Its own budget ("quick": what a setting costs at the budget the quick grid reports), or None:
    # the campaign's preset (paper) with ``epochs`` set.
    preset: str | None = None

    def __post_init__(self):
        if not NAME.fullmatch(self.name):
            raise ValueError(f"study name {self.name!r}: lower-case letters, digits and dashes")
        if not self.variants or self.variants[0].settings:
            raise ValueError(f"study {self.name}: the first variant is the default, without "
                             "settings")
        if len({v.label for v in self.variants}) != len(self.variants):
            raise ValueError(f"study {self.name}: two variants share a label")
        for variant in self.variants:
            taken = sorted(set(variant.settings) & set(STUDY_KEYS))
            if taken:
                raise ValueError(f"study {self.name}: variant {variant.label!r} sets {taken[0]}, "
                                 "which the study sets")

    def overrides(self, variant: Variant) -> dict[str, object]:
        """What ``bench run``'s flags give: --epochs, --z-dim/--s-dim and the variant's --set."""
        return {**variant.set_texts(), "epochs": self.epochs, "z_dim": Z_DIM, "s_dim": S_DIM}

    def preset_in(self, campaign_preset: str) -> str:
        """The preset this study's runs train at in a campaign of ``campaign_preset``."""
        return self.preset or campaign_preset

    def epochs_text(self, preset: str) -> str:
        """"20 epochs", or "20 epochs per stage (40 in all)" for a method trained in stages."""
        config = self.config(self.variants[0], self.seeds[0], preset)
        total = config.method_config.training_epochs
        text = f"{self.epochs} epoch{'s' if self.epochs != 1 else ''}"
        return text + (f" per stage ({total} in all)" if total != self.epochs else "")

    def config(self, variant: Variant, seed: int, preset: str) -> RunConfig:
        from bench.spec.config import resolve  # it imports the methods, and torch with them
        return resolve(self.method, DATASET, preset, seed, self.overrides(variant))


STUDIES: tuple[Study, ...] = (
    # What each authors' form that issue 41 followed costs against its other form, at the budget
    # of the quick grid (docs/methods.md, the deviations tables): one setting changed at a time.
    # First: they are cheap (minutes a run) and only document; the 20-epoch studies after them
    # decide GVAE's and LORD's weights, and those two methods' paper runs wait for them.
    Study("mlvae-forms", preset="quick",
          question="ML-VAE follows its first author's code: a learned per-pixel variance, s drawn "
                   "per group member, same-class pairs as groups. What does each other form cost "
                   "or give at the quick preset?",
          method="mlvae", epochs=2, seeds=(0, 1, 2),
          variants=(Variant("the first author's forms (default)"),
                    Variant("the port's squared error", {"likelihood": "squared_error"}),
                    Variant("one s draw per group", {"s_sample": "group"}),
                    Variant("the port's s draw", {"s_sample": "group", "s_noise": 0.1}),
                    Variant("groups of 25", {"group_size": 25, "batch_size": 10,
                                             "iterations_per_epoch": 240}),
                    # Appended (a variant's run id is its config's: the others keep theirs). The
                    # 60.8 recheck: docs/methods.md gives swap 60.8 at lr 1e-4 for ML-VAE (these
                    # forms, before 2026-12-06) and for GVAE (gvae-groups) alike.
                    Variant("the forms before 2026-12-06 at lr 1e-4 (the 60.8 recheck)",
                            {"likelihood": "squared_error", "s_sample": "group", "lr": 1e-4}))),
    Study("lord-forms", preset="quick",
          question="LORD follows its authors' PyTorch code: 128 shuffled images a step, the "
                   "penalty on the noisy code, one encoder per code. What does each other form "
                   "cost or give at the quick preset?",
          method="lord", epochs=2, seeds=(0, 1, 2),
          variants=(Variant("the PyTorch code's forms (default)"),
                    Variant("pairs, both images", {"batches": "pairs", "batch_size": 64}),
                    Variant("penalty on the noiseless code", {"penalised_code": "noiseless"}),
                    Variant("one trunk, two heads", {"separate_encoders": False}))),
    Study("gvae-groups", preset="quick",
          question="GVAE groups same-class pairs; Hosoya's code groups five views of one object, "
                   "100 groups a step. What do groups of five give at the quick preset?",
          method="gvae", epochs=2, seeds=(0, 1, 2),
          variants=(Variant("pairs (default)"),
                    Variant("100 groups of five", {"group_size": 5, "batch_size": 100,
                                                   "iterations_per_epoch": 120}),
                    # Appended: the 60.8 recheck (mlvae-forms, its last variant).
                    Variant("lr 1e-4 (the 60.8 recheck)", {"lr": 1e-4}))),
    # The seed's three methods draw their single-image batches i.i.d. and never pair an image with
    # itself; their authors' loader draws every batch from one permutation per pass and may
    # (docs/methods.md, "Common to the cycle-consistent VAE, ...", row "drawing images and
    # partners"). Issue 41 item 6: their default changes only if this says it matters.
    *(Study(f"{method}-draws", preset="quick",
            question=f"{title} draws its single-image batches i.i.d. and never pairs an image with "
                     "itself; its authors' loader takes every batch, single-image ones too, from "
                     "one permutation of the training set per pass, and a partner can be its "
                     "anchor. Does the authors' drawing change anything at the quick preset?",
            method=method, epochs=2, seeds=(0, 1, 2),
            variants=(Variant("independent draws (default)"),
                      Variant("the authors' loader", {"draws": "one_loader"})))
      for method, title in (("ccvae", "The cycle-consistent VAE"), ("mathieu", "Mathieu et al."),
                            ("szabo", "Szabó et al."))),
    # Measurements that decide a default, where the answer can change (at least 20 epochs).
    Study("gvae-likelihood-scale",
          question="GVAE weighs its squared error by 1, as ML-VAE's port does; Hosoya's Gaussian "
                   "of unit variance on standardised pixels weighs it by 1 / (2 rho^2) = 5.27 on "
                   "MNIST (docs/methods.md, GVAE's deviations). Which weight should be the "
                   "default: does the scale move s accuracy and z leakage at 20 epochs?",
          method="gvae", epochs=20, seeds=(0, 1, 2),
          variants=(Variant("squared error weight 1 (default)"),
                    Variant("Hosoya's scale 5.27", {"reconstruction_weight": 5.27}))),
    Study("lord-weights",
          question="LORD's code penalty (1e-4) and regression weight (10) are the authors' "
                   "PyTorch values (docs/methods.md, LORD's deviations). Does dividing either by "
                   "10 move s accuracy and z leakage at 20 epochs per stage, and should the "
                   "default change?",
          method="lord", epochs=20, seeds=(0, 1, 2),
          variants=(Variant("authors' weights (default)"),
                    Variant("code penalty / 10", {"code_penalty": 1e-5}),
                    Variant("regression weight / 10", {"regression_weight": 1.0}))),
)
