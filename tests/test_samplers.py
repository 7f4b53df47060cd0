import pytest
import torch

from datasets.samplers import BatchSampler, PairedTrainingData, PairSampler


def generator(seed):
    return torch.Generator().manual_seed(seed)


def labels_with(counts):
    return torch.cat([torch.full((n,), c) for c, n in enumerate(counts)])[torch.randperm(sum(counts))]


def epoch_of(sampler):
    return [sampler.next() for _ in range(sampler.batches_per_epoch)]


def test_partners_share_the_label_and_are_never_the_anchor():
    labels = labels_with([7, 2, 30, 11, 50])
    sampler = PairSampler(labels, batch_size=8, generator=generator(0))
    for _ in range(3 * sampler.batches_per_epoch):
        anchors, partners = sampler.next()
        assert torch.equal(labels[anchors], labels[partners])
        assert not (anchors == partners).any()


def test_every_image_is_an_anchor_once_per_epoch():
    labels = labels_with([16, 16, 32])  # 64 images, 8 batches of 8
    sampler = PairSampler(labels, batch_size=8, generator=generator(1))
    for _ in range(2):
        anchors = torch.cat([a for a, _ in epoch_of(sampler)])
        assert sorted(anchors.tolist()) == list(range(64))


def test_last_incomplete_batch_is_dropped_and_no_anchor_repeats():
    labels = labels_with([20, 30, 20])  # 70 images, 8 batches of 8, 6 left over
    sampler = PairSampler(labels, batch_size=8, generator=generator(1))
    anchors = torch.cat([a for a, _ in epoch_of(sampler)])
    assert len(anchors) == 64 and len(set(anchors.tolist())) == 64


def test_partners_are_drawn_anew_and_order_reshuffled_each_epoch():
    labels = labels_with([100, 100])
    sampler = PairSampler(labels, batch_size=10, generator=generator(2))
    first, second = epoch_of(sampler), epoch_of(sampler)
    assert not torch.equal(torch.cat([a for a, _ in first]), torch.cat([a for a, _ in second]))
    pairs = lambda epoch: {(int(a), int(p)) for b in epoch for a, p in zip(*b)}  # noqa: E731
    assert pairs(first) != pairs(second)


def test_partners_cover_the_class_uniformly():
    labels = torch.tensor([0, 0, 0, 0, 1, 1])
    sampler = PairSampler(labels, batch_size=6, generator=generator(3))
    seen = torch.zeros(6, 6)
    for _ in range(3000):
        anchors, partners = sampler.next()
        seen[anchors, partners] += 1
    class_zero = seen[:4, :4]
    off_diagonal = class_zero[~torch.eye(4, dtype=torch.bool)]
    assert torch.all(torch.diagonal(class_zero) == 0)
    # each of the 3 possible partners: 1000 expected draws per anchor
    assert off_diagonal.min() > 900 and off_diagonal.max() < 1100


def test_same_seed_same_batches_other_seed_other_batches():
    labels = labels_with([40, 40, 40])
    a, b, c = (epoch_of(PairSampler(labels, 8, generator(s))) for s in (5, 5, 6))
    assert all(torch.equal(x[0], y[0]) and torch.equal(x[1], y[1]) for x, y in zip(a, b))
    assert not all(torch.equal(x[0], y[0]) for x, y in zip(a, c))


def test_state_dict_resumes_the_same_stream():
    labels = labels_with([40, 40, 40])
    sampler = PairSampler(labels, 8, generator(7))
    for _ in range(20):  # into the second epoch
        sampler.next()
    state, generator_state = sampler.state_dict(), sampler.generator.get_state()
    expected = [sampler.next() for _ in range(30)]
    resumed = PairSampler(labels, 8, generator(99))
    resumed.load_state_dict(state)
    resumed.generator.set_state(generator_state)  # a run's checkpoint keeps it beside the state
    for (a, p), (ra, rp) in zip(expected, (resumed.next() for _ in range(30))):
        assert torch.equal(a, ra) and torch.equal(p, rp)


def test_a_class_with_one_image_cannot_be_paired():
    with pytest.raises(ValueError, match="at least two"):
        PairSampler(torch.tensor([0, 0, 1]), 2, generator(0))


def test_batch_sampler_is_seeded_and_in_range():
    a = BatchSampler(50, 16, generator(4), torch.device("cpu"))
    b = BatchSampler(50, 16, generator(4), torch.device("cpu"))
    draws = [a.next() for _ in range(10)]
    assert all(torch.equal(x, b.next()) for x in draws)
    assert all(x.min() >= 0 and x.max() < 50 and len(x) == 16 for x in draws)
    assert len({tuple(x.tolist()) for x in draws}) == 10


def test_training_data_returns_the_sampled_images():
    labels = labels_with([10, 10])
    images = labels.float().view(-1, 1, 1, 1).expand(-1, 1, 2, 2) + torch.arange(20).view(-1, 1, 1, 1) * 10
    data = PairedTrainingData(images, PairSampler(labels, 4, generator(0)),
                              BatchSampler(20, 4, generator(1), torch.device("cpu")))
    x1, x2 = data.pair()
    assert x1.shape == (4, 1, 2, 2)
    assert torch.equal(x1[:, 0, 0, 0] % 10, x2[:, 0, 0, 0] % 10)  # same label in the units digit
    assert data.batch().shape == (4, 1, 2, 2)


def test_a_group_of_two_is_the_pair_and_larger_groups_share_the_class():
    """``group(2)`` draws exactly what ``pair()`` draws; members 2 onward are further images of
    the anchor's class, never the anchor, drawn from the pair sampler's generator."""
    labels = labels_with([7, 2, 30, 11, 50])
    images = torch.arange(len(labels), dtype=torch.float32)[:, None]

    def feed():
        return PairedTrainingData(images, PairSampler(labels, 8, generator(3)),
                                  BatchSampler(len(labels), 8, generator(4), torch.device("cpu")))

    pairs, groups = feed(), feed()
    for _ in range(5):
        assert torch.equal(torch.stack(pairs.pair()), groups.group(2))
    members = feed().group(5).squeeze(-1).long()  # the images are their own indices
    assert members.shape == (5, 8)
    assert (labels[members] == labels[members[0]]).all()
    assert not (members[2:] == members[0]).any()
    assert len(set(members[2:].flatten().tolist())) > 8  # drawn, not one partner repeated
