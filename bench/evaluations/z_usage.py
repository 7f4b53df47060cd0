"""How much of the image's style z carries, beside the leakage columns: a z that carries nothing
has no leakage either, and must not pass for a disentangled one.

- Style retention: for seeded triples (i, k, m) of test images sharing i's specified label,
  E_own = MSE(Dec(z_i, s_k), x_i) and E_other = MSE(Dec(z_m, s_k), x_i), z the posterior mean;
  1 - mean(E_own) / mean(E_other). 0 when the decoder ignores z (the two decodings are the same
  image), 1 when Dec(z_i, s_k) gives back x_i; negative only when i's own z fits x_i worse than a
  classmate's does.
- Active units: the dimensions of z that vary across test images. For a variational z, Burda et
  al.'s (2016) count: posterior-mean variance above 0.01, on the scale its unit-variance prior
  sets. A deterministic z has no prior to set a scale (LORD's penalty keeps its codes small by
  design), so there the 0.01 is of the code's own mean variance per dimension: the count does not
  change when the code is rescaled.
"""
from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Callable

import numpy as np

from bench.evaluations.base import Checked, Context, Evaluation, Outcome, register
from bench.sections.blocks import Block, Paragraph
from bench.sections.hook import PaperColumns, ReportSection, SectionInput

if TYPE_CHECKING:
    import pandas as pd

TRIPLES = 10_000
ACTIVE_VARIANCE = 0.01
# Beside the leakage columns of the paper's table: how much z is used
PAPER_COLUMNS = ("z style retention", "z active units")
READING = ("Read the z columns together: a low z accuracy means little leakage only when z "
           "is used. **z style retention** (higher is better; 0 when the decoder ignores "
           "z) and **z active units** (dimensions of z that vary across images: on the "
           "unit prior's scale for a variational z, on the code's own for a deterministic "
           "one, so a code kept small by a penalty still counts) say "
           "whether it is; a z with low leakage, retention near 0 and few active units has "
           "collapsed, it has not disentangled anything.")


def style_retention(own_errors, other_errors) -> float:
    """1 - mean(E_own) / mean(E_other) over the triples' squared errors; NaN when E_other is 0
    (every classmate's z gives the image back: nothing to tell apart)."""
    own, other = float(np.mean(own_errors)), float(np.mean(other_errors))
    return float("nan") if other == 0 else 1.0 - own / other


def active_units(z_means, variational: bool, threshold: float = ACTIVE_VARIANCE) -> int:
    """The number of columns of ``z_means`` (images x dimensions) whose variance across images
    exceeds ``threshold`` times the code's scale: 1 for a variational z (its prior's variance),
    the mean of the columns' variances for a deterministic one (0 when no column varies)."""
    z_means = np.asarray(z_means, dtype=np.float64)
    variances = z_means.var(axis=0)
    # A constant column's variance is rounding, not 0: none above float32's resolution at the
    # code's magnitude counts, so a constant code has no scale of its own.
    resolution = (np.finfo(np.float32).eps * np.sqrt(np.mean(z_means ** 2))) ** 2
    variances = np.where(variances > resolution, variances, 0.0)
    scale = 1.0 if variational else float(variances.mean())
    if scale == 0.0:
        return 0
    return int(np.count_nonzero(variances > threshold * scale))


def active_rule(variational: bool) -> str:
    """How a run's active units were counted (recorded in evaluation.json)."""
    return (f"posterior-mean variance above {ACTIVE_VARIANCE} (the unit prior's scale)" if variational
            else f"variance above {ACTIVE_VARIANCE} x the code's mean variance per dimension "
                 "(deterministic z: scale-free)")


def same_label_triples(labels, count: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``count`` seeded triples (i, k, m) of distinct indices with equal labels, i drawn uniformly
    among the images whose label has at least three images, k and m uniformly among i's
    classmates other than i (k != m)."""
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    values, counts = np.unique(labels, return_counts=True)
    eligible = np.flatnonzero(np.isin(labels, values[counts >= 3]))
    if eligible.size == 0:
        raise ValueError("style retention needs a label with at least three test images")
    i = rng.choice(eligible, size=count)
    members = {v: np.flatnonzero(labels == v) for v in values[counts >= 3]}
    k, m = np.empty(count, dtype=np.int64), np.empty(count, dtype=np.int64)
    for t, index in enumerate(i):
        others = members[labels[index]]
        others = others[others != index]
        k[t], m[t] = rng.choice(others, size=2, replace=False)
    return i, k, m


def triple_errors(decode: Callable, z, s, images, triples, batch_size: int | None = None):
    """(E_own, E_other) per triple: the mean squared error to x_i of Dec(z_i, s_k) and of
    Dec(z_m, s_k), over ``images`` (N, C, H, W), codes ``z`` and ``s`` (N, .) on one device."""
    import torch

    from bench.metrics.batches import inference_batch
    batch_size = batch_size or inference_batch(images.device)
    i, k, m = (torch.as_tensor(t, device=images.device) for t in triples)
    own, other = [], []
    with torch.no_grad():
        for start in range(0, len(i), batch_size):
            part = slice(start, start + batch_size)
            target = images[i[part]]
            for index, into in ((i, own), (m, other)):
                decoded = decode(z[index[part]], s[k[part]])
                into.append((decoded - target).pow(2).flatten(1).mean(1).cpu())
    return torch.cat(own).double().numpy(), torch.cat(other).double().numpy()


def z_usage_rows(context: Context) -> Outcome:
    test, data = context.test, context.data
    triples = same_label_triples(data.test_labels.cpu().numpy(), TRIPLES,
                                 context.seed("style retention") % 2**32)
    own, other = triple_errors(context.method.decode, test.z_mean, test.s, data.test_images, triples)
    retention = style_retention(own, other)
    variational = test.z_logvar is not None
    units = active_units(test.z_mean.cpu().numpy(), variational)
    rows = [dict(metric="style_retention", split="test",
                 value=round(retention, 4) if np.isfinite(retention) else "nan"),
            dict(metric="active_units", split="test", value=units)]
    return Outcome(rows, {"triples": TRIPLES, "code": "z_mean", "active_units": active_rule(variational),
                          "mean_own_error": round(float(own.mean()), 6),
                          "mean_other_error": round(float(other.mean()), 6)})


def usage_summary(section: SectionInput) -> pd.DataFrame | None:
    """Each experiment's z usage (mean over seeds of each metric); None where no run has any."""
    from bench.sections.experiments import summarise
    rows = section.rows(Z_USAGE.file)
    return summarise(rows, "value", ("metric",)) if not rows.empty else None


def usage_cells(summary: pd.DataFrame, key: pd.Series) -> list[str]:
    """Style retention and active units of an experiment (mean over seeds), or dashes."""
    from bench.sections.experiments import GROUP, MISSING, format_cell
    part = summary[(summary[GROUP] == key[GROUP]).all(axis=1)] if not summary.empty else summary
    cells = []
    for metric in ("style_retention", "active_units"):
        row = part[part.metric == metric] if not part.empty else part
        if row.empty:
            cells.append(MISSING)
        elif metric == "active_units":
            mean = row.iloc[0]["mean"]
            cells.append(f"{mean:.0f} / {key.z_dim}" if float(mean).is_integer()
                         else f"{mean:.1f} / {key.z_dim}")
        else:
            r = row.iloc[0]
            cells.append(format_cell(r["mean"], r["std"], int(r.seeds)))
    return cells


def usage_columns(section: SectionInput) -> PaperColumns | None:
    summary = usage_summary(section)
    return None if summary is None else PaperColumns(PAPER_COLUMNS,
                                                     functools.partial(usage_cells, summary))


def how_to_read_z(section: SectionInput) -> list[Block]:
    """Under the paper's table: why its z columns are read with z's usage beside them."""
    if usage_summary(section) is None:
        return []
    return [Paragraph(READING + " " + Z_USAGE.description)]


Z_USAGE = register(Evaluation(
    name="z_usage", version=2, file="z_usage.csv", columns=("metric", "split", "value"),
    compute=z_usage_rows, order=5, needs_decoder=True,
    title="How much style z carries",  # shown beside the leakage columns of the paper's table
    description=f"Style retention: 1 - E_own / E_other over {TRIPLES:,} seeded triples (i, k, m) "
                "of test images with the same label, E_own the squared error of Dec(z_i, s_k) to "
                "image i and E_other that of Dec(z_m, s_k) (z the posterior mean); 0 when the "
                "decoder ignores z, near 1 when z holds what distinguishes image i from its "
                f"classmates. Active units: dimensions of z whose posterior mean varies across "
                f"test images with variance above {ACTIVE_VARIANCE} (Burda et al. 2016), on the "
                "scale of the unit prior for a variational z and of the code's own mean "
                "variance per dimension for a deterministic z (a penalty may keep such codes "
                "small; the count does not change when they are rescaled). Higher is better "
                "for both.",
    checked=Checked(key="metric", value="value",
                    higher_is_better={"style_retention": True, "active_units": True},
                    point={"style_retention": 0.01}),
    section=ReportSection(paper_columns=usage_columns, paper_notes=how_to_read_z)))
