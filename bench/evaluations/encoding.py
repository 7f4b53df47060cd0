"""Evaluation of a trained method: encode both splits once, then probe each latent code, embed z
with t-SNE and decode the swap grid."""
from __future__ import annotations

import dataclasses
from typing import Callable

import numpy as np
import torch

from bench import progress
from bench.metrics.batches import inference_batch
from bench.metrics.probe_classifier import LatentCode, ProbeTask, accuracy_curves
from bench.store.results import SPLITS
from datasets import ImageSet
from methods import Encoding, Method


@torch.no_grad()
def encode_all(method: Method, images: torch.Tensor, batch_size: int | None = None) -> Encoding:
    batch_size = batch_size or inference_batch(images.device)
    parts = [method.encode(chunk) for chunk in images.split(batch_size)]
    logvars = [p.z_logvar for p in parts]
    return Encoding(s=torch.cat([p.s for p in parts]),
                    z_mean=torch.cat([p.z_mean for p in parts]),
                    z_logvar=None if logvars[0] is None else torch.cat(logvars))


def latent_codes(encoding: Encoding) -> dict[str, LatentCode]:
    """The probed codes: s, the posterior mean of z, and a sample of z (the paper's figure).
    A deterministic z has no sample: its ``z_sample`` is its mean."""
    std = None if encoding.z_logvar is None else torch.exp(0.5 * encoding.z_logvar)
    return {"s": LatentCode(encoding.s),
            "z_mean": LatentCode(encoding.z_mean),
            "z_sample": LatentCode(encoding.z_mean, std)}


SHARED_SPLITS = "fitted on the train split, scored on the test split"
HELD_OUT_HALVES = ("fitted on one half of the test images, scored on the other half "
                   "(train and test hold different identities)")


def shares_values(train_labels: torch.Tensor, test_labels: torch.Tensor) -> bool:
    """Whether every value in the test labels also occurs in the train labels."""
    return bool(torch.isin(test_labels.unique(), train_labels.unique()).all())


def halves(n: int, seed: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """A seeded split of range(n) into two halves (the first gets the extra one when n is odd)."""
    generator = torch.Generator(device=device).manual_seed(seed)
    order = torch.randperm(n, generator=generator, device=device)
    return order[:(n + 1) // 2], order[(n + 1) // 2:]


@dataclasses.dataclass(frozen=True)
class ProbeJob:
    """The probes of one target of one run, ready to fit: one task per fitted code."""
    tasks: dict[str, ProbeTask]
    codes: tuple[str, ...]  # every code probed; one without a task reads z_mean's probe
    protocol: str
    num_classes: int
    epochs: int
    batch_size: int
    lr: float

    def stack_key(self) -> tuple:
        """Jobs with equal keys are fitted as one stack: the same probe settings, as many
        images, the same device, and the same padded width (the widest of each job's own codes,
        so that every probe computes on exactly the inputs it has when its run is probed alone)."""
        first = next(iter(self.tasks.values()))
        return (self.num_classes, self.epochs, self.batch_size, self.lr,
                first.train_labels.numel(), str(first.train.mean.device),
                max(task.width for task in self.tasks.values()))

    def accuracies(self, found: list[tuple[float, float]]) -> dict[tuple[str, str], float]:
        """{(code, split): accuracy} from the (train, test) accuracies of ``tasks``, in order."""
        by_code = dict(zip(self.tasks, found))
        return {(name, split): value for name in self.codes
                for split, value in zip(SPLITS, by_code.get(name, by_code.get("z_mean")))}


@dataclasses.dataclass(frozen=True)
class TargetLabels:
    """What a probe predicts: its labels on the train and on the test images, of
    ``num_classes`` values."""
    train: torch.Tensor
    test: torch.Tensor
    num_classes: int


def probe_job(train_codes: dict[str, LatentCode], test_codes: dict[str, LatentCode],
              target: TargetLabels, *, epochs: int, batch_size: int, lr: float,
              seed: int) -> ProbeJob:
    """The probes of one target over ``train_codes``.

    When the test split holds values the train split never shows (disjoint identities, as in
    Sprites and smallNORB), a probe fitted on train could not score them: the probe is then fitted
    on one half of the test images and scored on the other, and "train"/"test" name those halves.
    """
    protocol = SHARED_SPLITS
    train_labels, test_labels = target.train, target.test
    if not shares_values(train_labels, test_labels):
        protocol = HELD_OUT_HALVES
        fit, score = halves(len(test_labels), seed, test_labels.device)
        train_codes = {name: code.subset(fit) for name, code in test_codes.items()}
        test_codes = {name: code.subset(score) for name, code in test_codes.items()}
        train_labels, test_labels = test_labels[fit], test_labels[score]
    # A deterministic z has no sample: its z_sample probe is its z_mean probe.
    tasks = {name: ProbeTask(code, train_labels, test_codes[name], test_labels, seed)
             for name, code in train_codes.items() if name != "z_sample" or code.std is not None}
    return ProbeJob(tasks, tuple(train_codes), protocol, target.num_classes, epochs, batch_size,
                    lr)


def fit_jobs(jobs: list[ProbeJob], between: Callable[[], None] | None = None
             ) -> list[dict[tuple[str, str], float]]:
    """Each job's {(code, split): accuracy} after its epochs (``fit_job_curves``)."""
    return [job.accuracies([curves[name][job.epochs] for name in job.tasks])
            for job, curves in zip(jobs, fit_job_curves(jobs, between=between))]


def fit_job_curves(jobs: list[ProbeJob], *, capacity: str = "paper",
                   budgets: tuple[int, ...] | None = None,
                   between: Callable[[], None] | None = None
                   ) -> list[dict[str, dict[int, tuple[float, float]]]]:
    """Each job's {task's code: {epochs: (train, test) accuracy}}, for probes of ``capacity``
    read after each of ``budgets`` epochs (default: the job's own epochs). The probes of all jobs
    with equal ``stack_key`` (several targets, or several runs trained together) train side by
    side as one stack; on the CPU each probe ends exactly as it would alone
    (tests/test_probes.py). ``between``: a stop check after every probe epoch."""
    stacks: dict[tuple, list[int]] = {}
    for i, job in enumerate(jobs):
        stacks.setdefault(job.stack_key(), []).append(i)
    found: list = [None] * len(jobs)
    for members in stacks.values():
        first = jobs[members[0]]
        fitted = iter(accuracy_curves([task for i in members for task in jobs[i].tasks.values()],
                                      first.num_classes, capacity=capacity,
                                      budgets=budgets or (first.epochs,),
                                      batch_size=first.batch_size, lr=first.lr,
                                      between=between, bar=progress.logged_bar))
        for i in members:
            found[i] = {name: next(fitted) for name in jobs[i].tasks}
    return found


def probe_target(train_codes: dict[str, LatentCode], test_codes: dict[str, LatentCode],
                 target: TargetLabels, *, epochs: int, batch_size: int, lr: float, seed: int
                 ) -> tuple[dict[tuple[str, str], float], str]:
    """({(code, split): accuracy in percent}, protocol) for one probe target (``probe_job``)."""
    job = probe_job(train_codes, test_codes, target, epochs=epochs, batch_size=batch_size, lr=lr,
                    seed=seed)
    return fit_jobs([job])[0], job.protocol


def class_probe_job(train: Encoding, test: Encoding, data: ImageSet, *, epochs: int,
                    batch_size: int, lr: float, seed: int) -> ProbeJob:
    """The probes of the specified label from every code."""
    return probe_job(latent_codes(train), latent_codes(test),
                     TargetLabels(data.train_labels, data.test_labels, data.num_classes),
                     epochs=epochs, batch_size=batch_size, lr=lr, seed=seed)


FACTOR_PROBE_CODES = ("s", "z_mean")  # the posterior mean: all that z holds of a factor


def factor_probe_jobs(train: Encoding, test: Encoding, data: ImageSet, *, epochs: int,
                      batch_size: int, lr: float, seed: int) -> dict[str, ProbeJob]:
    """{factor: its probes}: every known factor from s and from the posterior mean of z."""
    train_codes = {k: v for k, v in latent_codes(train).items() if k in FACTOR_PROBE_CODES}
    test_codes = {k: v for k, v in latent_codes(test).items() if k in FACTOR_PROBE_CODES}
    return {factor: probe_job(train_codes, test_codes,
                              TargetLabels(data.train_factors[factor], data.test_factors[factor],
                                           data.factor_sizes[factor]),
                              epochs=epochs, batch_size=batch_size, lr=lr, seed=seed)
            for factor in data.train_factors}


def factor_accuracies(jobs: dict[str, ProbeJob], found: list[dict[tuple[str, str], float]]
                      ) -> tuple[dict[tuple[str, str, str], float], dict[str, str]]:
    """({(factor, code, split): accuracy}, {factor: protocol}) from the jobs of
    ``factor_probe_jobs`` and what ``fit_jobs`` found for each."""
    accuracies = {(factor, code, split): value for factor, accuracy in zip(jobs, found)
                  for (code, split), value in accuracy.items()}
    return accuracies, {factor: job.protocol for factor, job in jobs.items()}


def disentanglement_scores(train: Encoding, test: Encoding, data: ImageSet, seed: int):
    """MIG, SAP and DCI of the mean of z with respect to the unspecified factors (None without
    any)."""
    from bench.metrics.representation import score_representation
    if not data.unspecified_factors:
        return None

    def factors(which: dict[str, torch.Tensor]) -> dict[str, np.ndarray]:
        return {name: which[name].cpu().numpy() for name in data.unspecified_factors}

    return score_representation(train.z_mean.cpu().numpy(), factors(data.train_factors),
                                test.z_mean.cpu().numpy(), factors(data.test_factors), seed=seed,
                                dci=True, bar=progress.bar)


def z_codes_to_embed(encoding: Encoding, generator: torch.Generator) -> dict[str, torch.Tensor]:
    """The unspecified codes shown by t-SNE: a sample of z (when z is variational) and its mean."""
    codes = latent_codes(encoding)
    if encoding.z_logvar is None:
        return {"z": codes["z_mean"].mean}
    return {"z_sample": codes["z_sample"].draw(generator), "z_mean": codes["z_mean"].mean}
