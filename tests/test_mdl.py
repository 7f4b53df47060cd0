"""The online code length (bench/metrics/mdl.py) on codes whose answer is known: the label itself
sends the labels almost for free, independent noise no better than the uniform code, and a code
with part of the information in between; and the report's sentence comparing the methods'
order under MDL with their order under the paper's probe."""
import json
import math

import pandas as pd
import pytest
import torch
from torch import nn

from bench.metrics.mdl import OnlineCode, block_ends, label_bits, online_code_lengths
from bench.metrics.probes import LatentCode
from bench.report.document import to_markdown
from bench.report.page import build
from bench.store import results

N, K = 2000, 10


@pytest.fixture(scope="module")
def lengths():
    generator = torch.Generator().manual_seed(0)
    labels = torch.randint(0, K, (N,), generator=generator)
    one_hot = nn.functional.one_hot(labels, K).float()
    codes = {"label": LatentCode(one_hot),
             "label sampled": LatentCode(one_hot, torch.full_like(one_hot, 0.1)),
             "noisy label": LatentCode(one_hot + 1.0 * torch.randn(N, K, generator=generator)),
             "noise": LatentCode(torch.randn(N, 16, generator=generator))}
    return online_code_lengths(codes, labels, K, epochs=5, batch_size=64, seed=0)


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


def test_independent_noise_compresses_to_about_one(lengths):
    assert 0.9 < lengths["noise"].compression < 1.05


def test_partial_information_lies_between(lengths):
    assert lengths["noise"].compression < lengths["noisy label"].compression \
        < lengths["label"].compression
    assert lengths["noisy label"].compression > 1.08  # 1.12 measured; noise 0.99


def test_compression_is_uniform_over_online_bits():
    assert OnlineCode(bits=50.0, uniform_bits=200.0).compression == 4.0


def fake_run(results_dir, method, accuracy, compression, with_mdl=True):
    """A complete run folder of the quick preset whose test accuracy and MDL compression are
    ``accuracy[code]`` and ``compression[code]`` for every code."""
    run_dir = results.runs_dir(results_dir) / f"{method}-0"
    run_dir.mkdir(parents=True)
    base = dict(run_id=run_dir.name, method=method, dataset="mnist", preset="quick", seed=0,
                z_dim=16, s_dim=16)
    pd.DataFrame([dict(base, probe=code, split=split, accuracy=accuracy[code])
                  for code in results.PROBES for split in results.SPLITS]
                 ).to_csv(run_dir / results.METRICS_FILE, index=False)
    if with_mdl:
        pd.DataFrame([dict(base, probe=code, bits=1.0, uniform_bits=1.0,
                           compression=compression[code]) for code in results.PROBES]
                     ).to_csv(run_dir / "mdl.csv", index=False)
    (run_dir / "config.json").write_text(json.dumps({
        "method": method, "dataset": "mnist", "preset": "quick", "seed": 0, "variational_z": True,
        "method_config": {"z_dim": 16, "s_dim": 16}}))
    (run_dir / "env.json").write_text(json.dumps({"device": "cpu"}))
    (run_dir / "status.json").write_text(json.dumps({"state": "complete", "train_seconds": 1}))


def test_the_report_compares_the_order_under_mdl_with_the_paper_probes(tmp_path):
    """By the z sample, mathieu leaks more than szabo to the paper's probe and less under MDL: one
    pair of three in another order (Kendall's tau 1/3); z mean and s keep their order. A run
    without mdl.csv takes no part."""
    for method, accuracy, compression in (("ccvae", 10.0, 1.0), ("mathieu", 30.0, 1.5),
                                          ("szabo", 20.0, 2.0)):
        fake_run(tmp_path, method, {"z_sample": accuracy, "z_mean": accuracy, "s": accuracy},
                 {"z_sample": compression, "z_mean": accuracy / 10, "s": accuracy / 10})
    fake_run(tmp_path, "lord", dict.fromkeys(("z_sample", "z_mean", "s"), 99.0), {},
             with_mdl=False)
    text = to_markdown(build(tmp_path), tmp_path)
    sentence = [line for line in text.splitlines() if "The methods' order under MDL" in line]
    assert len(sentence) == 1, text
    assert "by the z sample's leakage, Kendall's τ 0.33; pairs in another order: " in sentence[0]
    assert ("mathieu 16/16 and szabo 16/16" in sentence[0]) != ("szabo 16/16 and mathieu 16/16"
                                                                in sentence[0])
    assert "ccvae 16/16 and" not in sentence[0] and "lord" not in sentence[0]
    assert sentence[0].endswith("by the z mean's leakage, the same order; by s, the same order.")


def test_no_mdl_no_sentence(tmp_path):
    for method, accuracy in (("ccvae", 10.0), ("mathieu", 30.0)):
        fake_run(tmp_path, method, dict.fromkeys(("z_sample", "z_mean", "s"), accuracy), {},
                 with_mdl=False)
    assert "order under MDL" not in to_markdown(build(tmp_path), tmp_path)
