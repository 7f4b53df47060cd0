"""The online code length (bench/metrics/mdl.py) on codes whose answer is known: the label itself
sends the labels almost for free, independent noise no better than the uniform code, and a code
with part of the information in between, never better than its true posterior would send them;
a probe that says nothing sends exactly the uniform code's bits (the first block counted), and
each block's probe is trained on exactly the items sent before the block; each code's control (its
labels permuted) holds noise and not the label; and the report's sentences on each code against its
control and on the methods' order under MDL against their order under the paper's probe."""
import functools
import json
import math

import pandas as pd
import pytest
import torch
from torch import nn

from bench.evaluations.probes import CODES
from bench.metrics import mdl
from bench.metrics.mdl import (OnlineCode, block_ends, label_bits, label_permutations,
                               online_code_lengths, permutation_control)
from bench.metrics.probe_classifier import LatentCode
from bench.report.document import to_markdown
from bench.report.page import build
from bench.store import results

N, K = 2000, 10
NOISE = 1.0  # the standard deviation of the noise added to the one-hot label ("noisy label")
SEED = 0


@pytest.fixture(scope="module")
def sample():
    """Labels drawn uniformly and independently (so that no probe can beat the uniform code on
    average where the code tells nothing) and the codes of them."""
    generator = torch.Generator().manual_seed(0)
    labels = torch.randint(0, K, (N,), generator=generator)
    one_hot = nn.functional.one_hot(labels, K).float()
    codes = {"label": LatentCode(one_hot),
             "label sampled": LatentCode(one_hot, torch.full_like(one_hot, 0.1)),
             "noisy label": LatentCode(one_hot + NOISE * torch.randn(N, K, generator=generator)),
             "noise": LatentCode(torch.randn(N, 16, generator=generator))}
    return labels, codes


@pytest.fixture(scope="module")
def lengths(sample):
    labels, codes = sample
    return online_code_lengths(codes, labels, K, epochs=5, batch_size=64, seed=SEED)


CONTROLLED = ("label", "noise")
PERMUTATIONS, CONTROL_SEED = 3, 1


@pytest.fixture(scope="module")
def controls(sample):
    """The control of the label and of noise: their labels permuted, sent as the labels are."""
    labels, codes = sample
    send = functools.partial(online_code_lengths, {name: codes[name] for name in CONTROLLED},
                             num_classes=K, epochs=5, batch_size=64, seed=SEED)
    return permutation_control(lambda permuted: send(labels=permuted), labels, PERMUTATIONS,
                               CONTROL_SEED)


def test_block_ends_follow_the_timestamps_with_a_first_block_of_ten():
    assert block_ends(10_000) == [10, 20, 40, 80, 160, 320, 625, 1250, 2500, 5000, 10_000]
    assert block_ends(2000) == [10, 16, 32, 64, 125, 250, 500, 1000, 2000]
    with pytest.raises(ValueError, match="more than 10 items"):
        block_ends(10)


def test_label_bits_of_a_uniform_and_of_a_certain_probe():
    features, labels = torch.zeros(7, 3), torch.tensor([0, 1, 2, 3, 0, 1, 2])
    uniform = nn.Linear(3, 4)
    nn.init.zeros_(uniform.weight), nn.init.zeros_(uniform.bias)
    assert label_bits(uniform, features, labels) == pytest.approx(7 * math.log2(4), rel=1e-12)
    certain = nn.Linear(3, 4)  # p(class 0) = 1 - 3e-22: every label 0 costs next to nothing
    nn.init.zeros_(certain.weight)
    with torch.no_grad():
        certain.bias.copy_(torch.tensor([50.0, 0.0, 0.0, 0.0]))
    assert label_bits(certain, features, torch.zeros(7, dtype=torch.long)) < 1e-15


def test_the_label_itself_compresses_close_to_the_bound(lengths):
    """The bound is N / first block (only the first block costs bits): 200 here. A learner must
    still pay for each class until it has seen it, so at least a quarter of the bound."""
    bound = N / block_ends(N)[0]
    for code in ("label", "label sampled"):
        assert lengths[code].compression > bound / 4, (code, lengths[code])
        assert lengths[code].uniform_bits == pytest.approx(N * math.log2(K))


def test_independent_noise_does_not_compress(lengths):
    """Labels drawn independently of the features and uniformly: every probe, trained on items
    other than those it sends, costs log2 K bits a label or more on average, and the first block
    costs exactly log2 K a label, so the compression is at most 1, with no tolerance. What could
    lift one draw above 1 is chance alone (a probe near uniform that happens to suit the block),
    of the order of a bit in all; the probes' overfitting on noise costs far more (130 bits here:
    compression 0.981). A probe trained on the block it sends reads its noise: 1.044 (trained on
    the prefix and its block), 1.062 (on its block)."""
    assert 0.9 < lengths["noise"].compression <= 1.0, lengths["noise"]


def test_partial_information_lies_between(lengths):
    assert lengths["noise"].compression < lengths["noisy label"].compression \
        < lengths["label"].compression
    assert lengths["noisy label"].compression > 1.08  # 1.12 measured; noise 0.99


def test_compression_is_uniform_over_online_bits():
    assert OnlineCode(bits=50.0, uniform_bits=200.0).compression == 4.0


class EqualLogits(nn.Module):
    """A probe that says nothing: the same logit for every class whatever the features."""

    def __init__(self, num_classes: int):
        super().__init__()
        self.num_classes = num_classes

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return features.new_zeros(features.shape[0], self.num_classes)


def test_a_probe_that_says_nothing_sends_exactly_the_uniform_code(sample, monkeypatch):
    """Every block's probe replaced by one of equal logits: every label, those of the first block
    included, costs log2 K bits, n log2 K in all, compression 1 to rounding. Sending the first
    block for free would give N / (N - 10) = 1.005."""
    labels, codes = sample
    monkeypatch.setattr(mdl, "block_probe", lambda code, labels, num_classes, **options:
                        EqualLogits(num_classes))
    found = online_code_lengths(codes, labels, K, epochs=5, batch_size=64, seed=SEED)
    for name, code in found.items():
        assert code.bits == pytest.approx(N * math.log2(K), rel=1e-12), (name, code)
        assert code.compression == pytest.approx(1.0, rel=1e-12), (name, code)


def send_with_spies(monkeypatch, n: int, seed: int):
    """Send the labels m % K of n items whose code's one feature is the item's number m (its
    marker), every block's probe replaced by EqualLogits. Returns, block by block in the order
    sent, the (markers, labels) each block's probe was trained on and the (markers, labels) the
    block sent."""
    trained, sent = [], []

    def spy_probe(code, labels, num_classes, **options):
        trained.append((code.mean[:, 0].long().tolist(), labels.tolist()))
        return EqualLogits(num_classes)

    def spy_bits(model, features, labels):
        sent.append((features[:, 0].long().tolist(), labels.tolist()))
        return label_bits(model, features, labels)

    monkeypatch.setattr(mdl, "block_probe", spy_probe)
    monkeypatch.setattr(mdl, "label_bits", spy_bits)
    markers = torch.arange(n)
    online_code_lengths({"marked": LatentCode(markers[:, None].float())}, markers % K, K,
                        epochs=5, batch_size=64, seed=seed)
    return trained, sent


def test_each_block_is_sent_by_a_probe_trained_on_exactly_the_items_before_it(monkeypatch):
    """The probe of the block [start, end) is trained on `start` items, those of the first block
    and of every block sent before, none of its own block or later ones; the block sends its
    end - start items; labels travel with their items; every item is sent once."""
    trained, sent = send_with_spies(monkeypatch, N, SEED)
    ends = block_ends(N)
    assert len(trained) == len(sent) == len(ends) - 1
    before = trained[0][0]  # the first block, sent with the uniform code
    assert len(before) == ends[0]
    for (rows, labels), (block, block_labels), start, end in zip(trained, sent, ends, ends[1:]):
        assert len(rows) == start, (start, end, len(rows))
        assert sorted(rows) == sorted(before), (start, end)
        assert len(block) == end - start and not set(block) & set(rows), (start, end)
        assert labels == [m % K for m in rows] and block_labels == [m % K for m in block]
        before = before + block
    assert sorted(before) == list(range(N))


def test_no_code_sends_its_labels_in_fewer_bits_than_its_true_posterior(sample, lengths,
                                                                        monkeypatch):
    """The noisy label x = one_hot(y) + N(0, NOISE^2 I), y uniform: p(y | x) is the softmax of
    x / NOISE^2 (the Gaussians differ in their means only). The online code cannot beat sending
    the first block with the uniform code and every later label with that posterior, the best
    any probe can do on average (on one draw a probe may be lucky, by far less than the 524 bits
    that learning costs here): 5,909 bits against the bound's 5,385 (compression 1.124 against
    1.234). A probe that has seen the labels it sends beats it
    (4,944 bits, trained on the prefix and its block; 4,677, on its block)."""
    labels, codes = sample
    features = codes["noisy label"].mean.double()
    posterior = torch.log_softmax(features / NOISE ** 2, dim=1)
    cost = -posterior.gather(1, labels[:, None]).squeeze(1) / math.log(2)  # bits a label
    # Every code goes in the same order, seeded, whatever its features: the first block's items
    # are those that no block sends when the spies watch.
    sent = {m for block, _ in send_with_spies(monkeypatch, N, SEED)[1] for m in block}
    first = sorted(set(range(N)) - sent)
    assert len(first) == block_ends(N)[0]
    bound = len(first) * math.log2(K) + cost.sum().item() - cost[first].sum().item()
    found = lengths["noisy label"]
    assert found.bits >= bound, (found.bits, bound, found.compression, N * math.log2(K) / bound)


def test_noise_sits_inside_its_control_and_the_label_far_above(lengths, controls):
    """Noise is one more code that holds nothing of its labels: its compression falls in the
    interval of its control's. The label's control is that of a one-hot code that holds nothing
    of the permuted labels, near 1, and the label itself compresses tens of times better."""
    from bench.sections.statistics import prediction_interval
    assert all(len(controls[name]) == PERMUTATIONS for name in CONTROLLED)
    low, high = prediction_interval(controls["noise"])
    assert low <= lengths["noise"].compression <= high, (lengths["noise"], controls["noise"])
    assert max(controls["label"]) < 1.05, controls["label"]
    low, high = prediction_interval(controls["label"])
    assert lengths["label"].compression > 20 * high, (lengths["label"], controls["label"])


def test_the_control_sends_permutations_of_the_labels_and_never_the_labels(sample):
    """Every label sent by the control is a label of the sample (a permutation keeps their
    frequencies), paired with the items otherwise than the labels are, each permutation another;
    the same seed draws the same permutations."""
    labels, _ = sample
    sent = []
    permutation_control(lambda permuted: sent.append(permuted) or {}, labels, PERMUTATIONS,
                        CONTROL_SEED)
    assert len(sent) == PERMUTATIONS
    for permuted in sent:
        assert torch.equal(permuted.sort().values, labels.sort().values)
        assert (permuted == labels).double().mean() < 0.2  # 1/K by chance
    assert not torch.equal(sent[0], sent[1])
    again = label_permutations(labels, PERMUTATIONS, CONTROL_SEED)
    assert all(torch.equal(a, b) for a, b in zip(sent, again))


def fake_run(results_dir, method, accuracy, compression, with_mdl=True, control=None, seed=0):
    """A complete run folder of the quick preset whose test accuracy and MDL compression are
    ``accuracy[code]`` and ``compression[code]`` for every code, and the control's interval
    ``control[code]`` (low, high) where given."""
    run_dir = results.runs_dir(results_dir) / f"{method}-{seed}"
    run_dir.mkdir(parents=True)
    base = dict(run_id=run_dir.name, method=method, dataset="mnist", preset="quick", seed=seed,
                z_dim=16, s_dim=16)
    pd.DataFrame([dict(base, probe=code, split=split, accuracy=accuracy[code])
                  for code in CODES for split in results.SPLITS]
                 ).to_csv(run_dir / results.METRICS_FILE, index=False)
    if with_mdl:
        bounds = {code: (control or {}).get(code, (0.97, 0.99)) for code in CODES}
        pd.DataFrame([dict(base, probe=code, bits=1.0, uniform_bits=1.0,
                           compression=compression[code], control=sum(bounds[code]) / 2,
                           control_low=bounds[code][0], control_high=bounds[code][1])
                      for code in CODES]).to_csv(run_dir / "mdl.csv", index=False)
    (run_dir / "config.json").write_text(json.dumps({
        "method": method, "dataset": "mnist", "preset": "quick", "seed": seed, "variational_z": True,
        "method_config": {"z_dim": 16, "s_dim": 16}}))
    (run_dir / "env.json").write_text(json.dumps({"device": "cpu"}))
    (run_dir / "status.json").write_text(json.dumps({"state": "complete", "train_seconds": 1}))


def test_the_report_compares_the_order_under_mdl_with_the_paper_probes(tmp_path):
    """By the z sample, mathieu leaks more than szabo to the paper's probe and less under MDL: one
    pair of three in the other order, with one seed each: it cannot be told whether it changes
    places; z mean and s keep their order. A run without mdl.csv takes no part."""
    for method, accuracy, compression in (("ccvae", 10.0, 1.0), ("mathieu", 30.0, 1.5),
                                          ("szabo", 20.0, 2.0)):
        fake_run(tmp_path, method, {"z_sample": accuracy, "z_mean": accuracy, "s": accuracy},
                 {"z_sample": compression, "z_mean": accuracy / 10, "s": accuracy / 10})
    fake_run(tmp_path, "lord", dict.fromkeys(("z_sample", "z_mean", "s"), 99.0), {},
             with_mdl=False)
    text = to_markdown(build(tmp_path), tmp_path)
    sentence = [line for line in text.splitlines() if "The methods' order under MDL" in line]
    assert len(sentence) == 1, text
    assert ("By the z sample's leakage: under MDL, 2 of 3 pairs in the same order, 1 in the "
            "other, none tied; cannot tell (fewer than two seeds): szabo 16/16 and mathieu 16/16 "
            "(under MDL).") in sentence[0]
    assert "ccvae 16/16 and" not in sentence[0] and "lord" not in sentence[0]
    assert sentence[0].endswith("By the z mean's leakage: the same order under MDL (3 pairs). "
                                "By s: the same order under MDL (3 pairs).")


def test_no_mdl_no_sentence(tmp_path):
    for method, accuracy in (("ccvae", 10.0), ("mathieu", 30.0)):
        fake_run(tmp_path, method, dict.fromkeys(("z_sample", "z_mean", "s"), accuracy), {},
                 with_mdl=False)
    assert "order under MDL" not in to_markdown(build(tmp_path), tmp_path)


def test_the_report_reads_each_compression_against_its_control(tmp_path):
    """ccvae's z sample compresses within its control in both runs: it cannot be told from no
    leakage; mathieu's above it in both; szabo's in one run of two."""
    for seed in (0, 1):
        for method, compression in (("ccvae", 0.99), ("mathieu", 1.5), ("szabo", 1.2 - seed / 5)):
            fake_run(tmp_path, method, dict.fromkeys(CODES, 50.0 + seed),
                     {"z_sample": compression, "z_mean": 2.0, "s": 3.0}, seed=seed,
                     control={"z_sample": (0.97, 1.01)})
    text = to_markdown(build(tmp_path), tmp_path)
    sentence = [line for line in text.splitlines() if "Each code against its control" in line]
    assert len(sentence) == 1, text
    assert ("by the z sample's leakage, above its control in every run: mathieu 16/16; within or "
            "below its control in every run, so it cannot be told from no leakage: ccvae 16/16; "
            "above its control in some runs only: szabo 16/16 (1 of 2 runs)") in sentence[0]
    assert "by s, above its control in every run: szabo 16/16, mathieu 16/16, ccvae 16/16" \
        in sentence[0]
    assert "| control" not in text and "The control: compression of the test labels" in text

