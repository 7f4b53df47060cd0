"""The procedural Shapes dataset: every factor is where the codes say, the split, the cache."""
import numpy as np
import pytest
import torch

from datasets import DATASETS
from datasets import shapes as shapes_module
from datasets.shapes import COLOURS, FACTORS, POSITIONS, SCALES, SHAPES, UNSPECIFIED, render_mask


@pytest.fixture(scope="module")
def arrays():
    return shapes_module.load_or_generate()


def rows_where(codes, **values):
    names = list(FACTORS)
    keep = np.ones(len(codes), dtype=bool)
    for name, value in values.items():
        keep &= codes[:, names.index(name)] == value
    return np.flatnonzero(keep)


def test_the_grid_holds_every_combination_once(arrays):
    codes = arrays["codes"]
    assert arrays["images"].shape == (np.prod(list(FACTORS.values())), 3, 64, 64)
    assert arrays["images"].dtype == np.uint8
    assert len(np.unique(codes, axis=0)) == len(codes)
    assert [int(codes[:, i].max()) + 1 for i in range(len(FACTORS))] == list(FACTORS.values())


def test_colour_position_and_scale_follow_the_codes(arrays):
    images, codes = arrays["images"].astype(np.float64) / 255, arrays["codes"]
    colours = np.asarray(list(COLOURS.values()))
    for row in np.random.default_rng(0).choice(len(codes), 60, replace=False):
        shape, colour, scale, rotation, x, y = codes[row]
        image = images[row]
        coverage = image.max(axis=0) > 0.5
        ys, xs = np.nonzero(coverage)
        # the shape sits on its grid position (the heart and triangle are not centred on their
        # centroid, hence the tolerance) and keeps its colour
        assert abs(xs.mean() + 0.5 - POSITIONS[x]) < 4 and abs(ys.mean() + 0.5 - POSITIONS[y]) < 4, row
        full = np.unravel_index(image.max(axis=0).argmax(), coverage.shape)  # a fully covered pixel
        assert np.allclose(image[:, full[0], full[1]], colours[colour], atol=0.01), row
    # larger scale, larger area; same shape elsewhere in the grid
    areas = [images[rows_where(codes, shape=0, colour=0, scale=k, rotation=0, x=2, y=2)[0]].max(0).sum()
             for k in range(len(SCALES))]
    assert areas == sorted(areas) and areas[0] < 0.6 * areas[-1]


def test_every_rotation_and_shape_gives_a_different_image():
    for shape in SHAPES:
        masks = [render_mask(shape, 1.0, r) for r in shapes_module.ROTATIONS_DEGREES]
        for a in range(len(masks)):
            for b in range(a + 1, len(masks)):
                assert np.abs(masks[a] - masks[b]).sum() > 10, (shape, a, b)
    upright = [render_mask(shape, 1.0, 0) for shape in SHAPES]
    assert all(np.abs(upright[a] - upright[b]).sum() > 10 for a in range(5) for b in range(a + 1, 5))


def test_a_shape_never_leaves_the_image():
    # centred masks reach less far from the centre than the outermost positions allow
    ys, xs = np.mgrid[0:64, 0:64] + 0.5
    for shape in SHAPES:
        for rotation in shapes_module.ROTATIONS_DEGREES:
            mask = render_mask(shape, max(SCALES), rotation)
            reach = np.sqrt((xs - 32) ** 2 + (ys - 32) ** 2)[mask > 0].max()
            assert reach <= min(POSITIONS) + 0.5, (shape, rotation, reach)


def test_image_set_labels_factors_and_split(shapes):
    assert shapes.image_shape == (3, 64, 64) and shapes.num_classes == len(SHAPES) * len(COLOURS)
    assert shapes.unspecified_factors == UNSPECIFIED
    assert shapes.factor_sizes == FACTORS
    for images, labels, factors in ((shapes.train_images, shapes.train_labels, shapes.train_factors),
                                    (shapes.test_images, shapes.test_labels, shapes.test_factors)):
        assert torch.equal(labels, factors["shape"] * len(COLOURS) + factors["colour"])
        assert all(len(v) == len(images) for v in factors.values())
    total = len(shapes.train_labels) + len(shapes.test_labels)
    assert len(shapes.test_labels) == round(0.2 * total)
    assert set(shapes.test_labels.tolist()) == set(shapes.train_labels.tolist()) == set(range(30))
    head = shapes.head(100, 50)  # shuffled order: a head holds many identities
    assert len(set(head.train_labels.tolist())) > 15 and len(head.test_factors["x"]) == 50


def test_generation_is_deterministic_and_cached(arrays, monkeypatch, isolated_cache):
    again = shapes_module.generate()
    assert np.array_equal(again["images"], arrays["images"])
    assert shapes_module.cache_path().parent == isolated_cache and shapes_module.cache_path().is_file()
    assert DATASETS["shapes"].locate(None) == shapes_module.cache_path()

    def refuse():
        raise AssertionError("regenerated although cached")
    monkeypatch.setattr(shapes_module, "generate", refuse)
    cached = shapes_module.load_or_generate()
    assert np.array_equal(cached["codes"], arrays["codes"])


def test_an_unreadable_cache_is_rebuilt(tmp_path, monkeypatch):
    monkeypatch.setenv("BENCH_CACHE_DIR", str(tmp_path))
    shapes_module.cache_path().write_bytes(b"not an npz")
    arrays = shapes_module.load_or_generate()
    assert arrays["images"].shape[1:] == (3, 64, 64)
    assert shapes_module.load_or_generate()["codes"].shape == arrays["codes"].shape
