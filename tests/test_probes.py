"""Known answers for the latent probes."""
import pytest
import torch

from bench.metrics.probe_classifier import LatentCode, ProbeTask, accuracy, fit_probe, probe_classifier


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
    task = ProbeTask(LatentCode(code(labels)), labels, LatentCode(code(test_labels)), test_labels, 0)
    train_acc, test_acc = fit_probe(task, 10, epochs=5, batch_size=64, lr=1e-3)
    assert train_acc > 98 and test_acc > 98


def test_a_code_without_the_label_is_read_at_chance():
    labels, g = labelled(2000, 2)
    test_labels, _ = labelled(2000, 3)
    noise = lambda n: torch.randn(n, 8, generator=g)  # noqa: E731
    task = ProbeTask(LatentCode(noise(2000)), labels, LatentCode(noise(2000)), test_labels, 0)
    _, test_acc = fit_probe(task, 10, epochs=3, batch_size=64, lr=1e-3)
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
    run = lambda seed: fit_probe(ProbeTask(LatentCode(x), labels, LatentCode(x), labels, seed),  # noqa
                                 10, epochs=2, batch_size=32, lr=1e-3)
    assert run(1) == run(1)


def one_probe_alone(train, train_labels, test, test_labels, num_classes, *, epochs, batch_size, lr,
                    seed):
    """The straightforward probe: one classifier, its own loop (what fit_probe_tasks stacks)."""
    import torch.nn.functional as F
    from bench.metrics.probe_classifier import predict
    generator = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = probe_classifier(train.mean.shape[1], num_classes)
    optimiser = torch.optim.Adam(model.parameters(), lr=lr)
    n = train_labels.numel()
    batches = max(n // batch_size, 1)
    for _ in range(epochs):
        model.train()
        features = train.draw(generator)
        order = torch.randperm(n, generator=generator)[:batches * batch_size]
        for index in order.view(batches, -1):
            loss = F.cross_entropy(model(features[index]), train_labels[index])
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
    return (accuracy(predict(model, train.draw(generator)), train_labels),
            accuracy(predict(model, test.draw(generator)), test_labels)), model


def informative_codes(n, seed, widths=(6, 6, 11)):
    """Codes of different widths that hold the label to different degrees (the last sampled)."""
    labels, g = labelled(n, seed)
    codes = []
    for k, width in enumerate(widths):
        mean = torch.randn(n, width, generator=g)
        mean[:, 0] += labels.float() * (k + 1) / 3
        std = torch.full((n, width), 0.5) if k == len(widths) - 1 else None
        codes.append(LatentCode(mean, std))
    return codes, labels


@pytest.mark.parametrize("widths", [(6, 6, 6), (6, 9, 11)])
def test_stacked_probes_are_the_probes_trained_one_by_one(widths, float64):
    from bench.metrics.probe_classifier import fit_probe_tasks
    trains, train_labels = informative_codes(700, 5, widths)
    tests, test_labels = informative_codes(300, 6, widths)
    options = dict(epochs=3, batch_size=64, lr=1e-3, seed=2)
    tasks = [ProbeTask(a, train_labels, b, test_labels, seed=2) for a, b in zip(trains, tests)]
    stacked = fit_probe_tasks(tasks, 10, epochs=3, batch_size=64, lr=1e-3)
    alone = [one_probe_alone(a, train_labels, b, test_labels, 10, **options)[0]
             for a, b in zip(trains, tests)]
    assert stacked == alone
    assert len(set(stacked)) > 1  # the codes differ, and so do their probes


def test_stacked_probes_end_with_each_probes_own_parameters(float64, monkeypatch):
    from bench.metrics import probe_classifier
    trains, labels = informative_codes(500, 7, (5, 8))
    options = dict(epochs=2, batch_size=50, lr=1e-3, seed=1)
    kept = []
    original = probe_classifier.StackedProbes.unstack_into
    monkeypatch.setattr(probe_classifier.StackedProbes, "unstack_into",
                        lambda self, models: (original(self, models), kept.extend(models)))
    tasks = [ProbeTask(code, labels, code, labels, seed=1) for code in trains]
    probe_classifier.fit_probe_tasks(tasks, 10, epochs=2, batch_size=50, lr=1e-3)
    for code, stacked_model in zip(trains, kept):
        _, model = one_probe_alone(code, labels, code, labels, 10, **options)
        for (name, a), (_, b) in zip(model.state_dict().items(), stacked_model.state_dict().items()):
            # The biases before each BatchNorm (0.bias, 3.bias) do not act: the batch norm subtracts
            # them again, so their gradient is rounding noise, which Adam scales up to lr per step;
            # the batch norms' running means follow them.
            if name not in ("0.bias", "3.bias", "1.running_mean", "4.running_mean",
                            "1.num_batches_tracked", "4.num_batches_tracked"):
                assert torch.allclose(a, b, rtol=1e-9, atol=1e-12), name


def run_probe_jobs(seeds_and_widths):
    """The class probes of pretend runs: (seed, width) each, codes of 600 training images;
    a run of seed >= 10 holds test labels the training split never shows (the halves protocol)."""
    from bench.evaluations.encoding import TargetLabels, probe_job
    jobs = []
    for seed, width in seeds_and_widths:
        trains, train_labels = informative_codes(600, seed, (width, width, width))
        tests, test_labels = informative_codes(400, seed + 100, (width, width, width))
        if seed >= 10:
            test_labels = test_labels + 10
        names = ("s", "z_mean", "z_sample")
        jobs.append(probe_job(dict(zip(names, trains)), dict(zip(names, tests)),
                              TargetLabels(train_labels, test_labels, 20),
                              epochs=2, batch_size=50, lr=1e-3, seed=seed))
    return jobs


def test_probes_of_several_runs_stacked_are_each_runs_own(monkeypatch):
    """Runs trained together have their probes fitted side by side (bench.evaluations.encoding.fit_jobs):
    one stack per padded width, and on the CPU each run's numbers are exactly its own, in
    float32, whatever its seed, labels or protocol."""
    from bench.evaluations import encoding
    from bench.evaluations.encoding import HELD_OUT_HALVES, fit_jobs
    runs = [(1, 6), (2, 6), (3, 9), (11, 6), (12, 6), (4, 9), (5, 6)]
    alone = [fit_jobs([job])[0] for job in run_probe_jobs(runs)]
    stacks = []
    original = encoding.accuracy_curves
    monkeypatch.setattr(encoding, "accuracy_curves",
                        lambda tasks, *args, **kw: (stacks.append(len(tasks)),
                                                    original(tasks, *args, **kw))[1])
    jobs = run_probe_jobs(runs)
    assert jobs[3].protocol == HELD_OUT_HALVES
    together = fit_jobs(jobs)
    # Three stacks: width 6 (three runs of three probes), width 9 (two runs), and the two runs
    # fitted on halves of their test images (as many images, so one more stack)
    assert sorted(stacks) == [6, 6, 9]
    assert together == alone
    assert len({tuple(found.values()) for found in together}) == len(runs)


def test_a_stop_during_stacked_probes_ends_them_at_an_epoch_boundary():
    """The stop check runs after every epoch of a stacked fit: a signal during the probes of many
    runs stops them there, not at the end of the fit."""
    from bench.errors import Interrupted
    from bench.metrics.probe_classifier import ProbeTask, fit_probe_tasks
    codes, labels = informative_codes(256, 3)
    tasks = [ProbeTask(code, labels, code, labels, seed) for seed, code in enumerate(codes)]
    epochs_seen = []

    def stop_after_two():
        epochs_seen.append(len(epochs_seen) + 1)
        if len(epochs_seen) == 2:
            raise Interrupted(15)
    with pytest.raises(Interrupted):
        fit_probe_tasks(tasks, 10, epochs=50, batch_size=32, lr=1e-3, between=stop_after_two)
    assert epochs_seen == [1, 2]
    every = []
    fit_probe_tasks(tasks, 10, epochs=3, batch_size=32, lr=1e-3, between=lambda: every.append(1))
    assert len(every) == 3
