"""Known answers for the latent probes."""
import pytest
import torch

from bench.probes import LatentCode, accuracy, fit_probe, probe_classifier


def test_accuracy_known_answers():
    assert accuracy(torch.tensor([1, 2, 3, 4]), torch.tensor([1, 2, 0, 0])) == 50.0
    assert accuracy(torch.tensor([7]), torch.tensor([7])) == 100.0
    assert accuracy(torch.zeros(3, dtype=torch.long), torch.ones(3, dtype=torch.long)) == 0.0
    with pytest.raises(ValueError):
        accuracy(torch.tensor([]), torch.tensor([]))


def test_classifier_is_the_papers():
    model = probe_classifier(16, 10)
    kinds = [type(m).__name__ for m in model]
    assert kinds == ["Linear", "BatchNorm1d", "LeakyReLU", "Linear", "BatchNorm1d", "LeakyReLU", "Linear"]
    assert model[0].in_features == 16 and model[3].in_features == 256 and model[-1].out_features == 10
    assert model[2].negative_slope == 0.2


def labelled(n, seed):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(10, (n,), generator=g), g


def test_a_code_that_holds_the_label_is_read_perfectly():
    labels, g = labelled(2000, 0)
    test_labels, _ = labelled(500, 1)
    code = lambda y: torch.nn.functional.one_hot(y, 10).float() * 3 + 0.1 * torch.randn(len(y), 10, generator=g)  # noqa
    train_acc, test_acc = fit_probe(LatentCode(code(labels)), labels, LatentCode(code(test_labels)),
                                    test_labels, 10, epochs=5, batch_size=64, lr=1e-3, seed=0)
    assert train_acc > 98 and test_acc > 98


def test_a_code_without_the_label_is_read_at_chance():
    labels, g = labelled(2000, 2)
    test_labels, _ = labelled(2000, 3)
    noise = lambda n: torch.randn(n, 8, generator=g)  # noqa: E731
    _, test_acc = fit_probe(LatentCode(noise(2000)), labels, LatentCode(noise(2000)), test_labels,
                            10, epochs=3, batch_size=64, lr=1e-3, seed=0)
    assert 5 < test_acc < 16


def test_sampled_code_draws_anew_with_the_given_spread():
    mean, std = torch.zeros(20000, 2), torch.tensor([1.0, 3.0]).expand(20000, 2)
    code, g = LatentCode(mean, std), torch.Generator().manual_seed(0)
    first, second = code.draw(g), code.draw(g)
    assert not torch.equal(first, second)
    assert torch.allclose(first.std(0), torch.tensor([1.0, 3.0]), rtol=0.05)
    assert LatentCode(mean).draw(g) is mean


def test_probe_is_deterministic_for_a_seed():
    labels, g = labelled(500, 4)
    x = torch.randn(500, 4, generator=g) + labels[:, None].float()
    run = lambda seed: fit_probe(LatentCode(x), labels, LatentCode(x), labels, 10, epochs=2,  # noqa
                                 batch_size=32, lr=1e-3, seed=seed)
    assert run(1) == run(1)
