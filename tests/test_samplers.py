import pytest
import torch

from datasets.samplers import BatchSampler, LoaderBatches, PairedTrainingData, PairSampler


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


# --- the authors' drawing: one loader (draws="one_loader", methods/base.py) -------------------

def one_loader(labels, batch_size, seed):
    images = torch.arange(len(labels), dtype=torch.float32)[:, None]  # each image its own index
    pairs = PairSampler(labels, batch_size, generator(seed), partner_may_be_anchor=True)
    return PairedTrainingData(images, pairs, LoaderBatches(pairs, generator(seed + 1)))


def indices(x):
    return x.squeeze(-1).long()


def test_one_loader_single_image_batches_show_every_image_once_a_pass():
    labels = labels_with([16, 16, 32])  # 64 images, 8 batches of 8 a pass
    data = one_loader(labels, 8, 0)
    for _ in range(3):
        seen = torch.cat([indices(data.batch()) for _ in range(8)])
        assert sorted(seen.tolist()) == list(range(64))


def test_one_loader_pairs_and_single_images_share_one_pass():
    """As the authors' loader: a step's pair and single-image batches are consecutive windows of
    one permutation, so within a pass no image comes twice, whichever draws it."""
    labels = labels_with([16, 16, 32])
    data = one_loader(labels, 8, 1)
    for _ in range(3):
        seen = []
        for draw in range(8):  # a pair, then two single-image batches, as the cycle-consistent VAE
            seen.append(indices(data.pair()[0]) if draw % 3 == 0 else indices(data.batch()))
        assert sorted(torch.cat(seen).tolist()) == list(range(64))
    assert data.pairs.epoch == 3 and data.batches.generator.initial_seed() == 2


def test_one_loader_partners_are_any_member_of_the_class_the_anchor_included():
    """A partner is the anchor itself once in the class's size, each member alike."""
    labels = torch.tensor([0, 0, 1, 1, 1, 1])
    sampler = PairSampler(labels, batch_size=6, generator=generator(3), partner_may_be_anchor=True)
    seen = torch.zeros(6, 6)
    for _ in range(4000):
        anchors, partners = sampler.next()
        assert torch.equal(labels[anchors], labels[partners])
        seen[anchors, partners] += 1
    # class 0: 2 members, 2000 draws of each expected; class 1: 4 members, 1000 each
    assert seen[:2, :2].min() > 1850 and seen[:2, :2].max() < 2150
    assert seen[2:, 2:].min() > 880 and seen[2:, 2:].max() < 1120
    itself = torch.diagonal(seen) / 4000
    assert torch.allclose(itself, torch.tensor([1 / 2] * 2 + [1 / 4] * 4), atol=0.03)


def test_one_loader_groups_may_hold_the_anchor_again():
    labels = torch.tensor([0, 0, 1, 1, 1, 1])
    sampler = PairSampler(labels, batch_size=6, generator=generator(5), partner_may_be_anchor=True)
    anchors, _ = sampler.next()
    members = sampler.other_members(anchors, 400)
    assert (labels[members] == labels[anchors]).all()
    assert (members == anchors).float().mean().item() == pytest.approx((2 / 2 + 4 / 4) / 6, abs=0.05)


def old_pair_sampler_epochs(labels, batch_size, seed, epochs):
    """The pairs the sampler drew before its partners could be anchors (written out again): the
    default must still draw them, number for number."""
    g = generator(seed)
    counts = torch.bincount(labels)
    by_class = torch.argsort(labels, stable=True)
    start = torch.cumsum(counts, 0) - counts
    rank = torch.empty_like(labels)
    rank[by_class] = torch.arange(len(labels)) - start[labels[by_class]]
    n = len(labels) // batch_size * batch_size
    batches = []
    for _ in range(epochs):
        anchors = torch.randperm(len(labels), generator=g)[:n]
        uniform = torch.rand(n, generator=g, dtype=torch.float64)
        offset = (uniform * (counts[labels[anchors]] - 1)).long()
        offset += (offset >= rank[anchors]).long()
        partners = by_class[start[labels[anchors]] + offset]
        batches += list(zip(anchors.split(batch_size), partners.split(batch_size)))
    return batches


def test_the_default_draws_the_pairs_and_batches_it_drew_before():
    labels = labels_with([7, 2, 30, 11, 50])
    sampler = PairSampler(labels, 8, generator(11))
    for anchors, partners in old_pair_sampler_epochs(labels, 8, 11, 3):
        drawn = sampler.next()
        assert torch.equal(drawn[0], anchors) and torch.equal(drawn[1], partners)
    # further group members: never the anchor, drawn as before
    g = generator(13)
    sampler.generator.manual_seed(13)
    anchors = sampler.next()[0]
    torch.randperm(len(labels), generator=g), torch.rand(96, generator=g, dtype=torch.float64)  # a pass
    members = sampler.other_members(anchors, 3)
    counts = torch.bincount(labels)
    label, rank = labels[anchors].repeat(3), sampler.rank_in_class[anchors].repeat(3)
    offset = (torch.rand(len(label), generator=g, dtype=torch.float64) * (counts[label] - 1)).long()
    offset += (offset >= rank).long()
    assert torch.equal(members, sampler.by_class[sampler.start[label] + offset].view(3, -1))
    batches, g = BatchSampler(100, 8, generator(12), torch.device("cpu")), generator(12)
    for _ in range(5):
        assert torch.equal(batches.next(), torch.randint(100, (8,), generator=g))


def test_one_loader_resumes_the_same_stream_mid_pass():
    """The loader's position is the pair sampler's: its state and the streams' resume it."""
    labels = labels_with([40, 40, 40])  # 15 batches of 8 a pass
    data = one_loader(labels, 8, 7)

    def step(feed):
        return [*feed.pair(), feed.batch(), feed.batch()]
    for _ in range(7):  # 28 windows: into the second pass
        step(data)
    state = data.state_dict()
    streams = {name: g.get_state() for name, g in data.generators().items()}
    expected = [step(data) for _ in range(10)]
    resumed = one_loader(labels, 8, 99)
    resumed.load_state_dict(state)
    for name, g in resumed.generators().items():
        g.set_state(streams[name])
    for want, got in zip(expected, (step(resumed) for _ in range(10))):
        assert all(torch.equal(a, b) for a, b in zip(want, got))
