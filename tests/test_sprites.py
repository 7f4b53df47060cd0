"""The Sprites loader on a tiny folder written in the layout it assumes (tests/sprites_fixture.py)."""
import os

import h5py
import numpy as np
import pytest
import scipy.io
import torch

from datasets import DATASETS, DataError
from datasets.sprites import FACTORS, TARBALL, TARBALL_MD5, load_sprites, locate_sprites
from tests.sprites_fixture import (FRAMES_PER_ANIMATION, LABELS, NUM_CHARACTERS, RED_AT, TEST_IDS, TRAIN_IDS,
                                   column_major, frame_image, write_character, write_splits, write_sprites)

CPU = torch.device("cpu")
FRAMES = sum(FRAMES_PER_ANIMATION)


@pytest.fixture
def cache(tmp_path, monkeypatch):
    path = tmp_path / "cache"
    monkeypatch.setenv("BENCH_CACHE_DIR", str(path))
    return path


@pytest.fixture
def root(tmp_path, cache):
    root = tmp_path / "root"
    write_sprites(root / "sprites")
    return root


@pytest.fixture
def folder(root):
    return root / "sprites"


def load_error(root) -> str:
    with pytest.raises(DataError) as caught:
        load_sprites(root, CPU)
    message = str(caught.value)
    assert "\n" not in message
    return message


def stamps(images: torch.Tensor) -> np.ndarray:
    """The (character, action, frame) each fixture frame carries in its top-left pixel."""
    return np.rint(images[:, :, 0, 0].numpy() * 255).astype(int)


def test_registered_with_a_one_line_how_to_get(root):
    source = DATASETS["sprites"]
    assert source.load is load_sprites and source.locate is locate_sprites
    assert "\n" not in source.how_to_get
    assert TARBALL in source.how_to_get and TARBALL_MD5 in source.how_to_get
    assert source.locate(root) == root / "sprites"


def test_pixels_and_orientation_round_trip(root):
    data = load_sprites(root, CPU)
    assert data.name == "sprites" and data.image_shape == (3, 60, 60)
    assert data.train_images.shape == (len(TRAIN_IDS) * FRAMES, 3, 60, 60)
    assert data.train_images.dtype == torch.float32
    assert data.train_images.min() == 0 and data.train_images.max() == 1
    row, column = RED_AT
    for images in (data.train_images, data.test_images):
        assert torch.all(images[:, 0, row, column] == 1) and torch.all(images[:, 1:, row, column] == 0)
        assert torch.all(images[:, :, column, row] == 0)  # not transposed
        assert torch.allclose(images[:, 2, 59, 0], torch.tensor(200 / 255))  # bottom left, blue
        assert torch.all(images[:, :, 0, 59] == 0)
    # every frame exactly as written
    character, action, frame = stamps(data.train_images)[0]
    expected = torch.from_numpy(frame_image(character, action, frame).transpose(2, 0, 1)).float()
    assert torch.allclose(data.train_images[0], expected, atol=0.5 / 255)


def test_splits_labels_and_order(root):
    data = load_sprites(root, CPU)
    assert data.num_classes == NUM_CHARACTERS
    train, test = stamps(data.train_images), stamps(data.test_images)
    # character-major in the order the ids are listed; labels are id - 1 and match each frame's character
    assert train[::FRAMES, 0].tolist() == list(TRAIN_IDS) and test[::FRAMES, 0].tolist() == list(TEST_IDS)
    assert data.train_labels.dtype == torch.int64
    assert data.train_labels.tolist() == (train[:, 0] - 1).tolist()
    assert data.test_labels.tolist() == (test[:, 0] - 1).tolist()
    assert set(data.train_labels.tolist()).isdisjoint(data.test_labels.tolist())
    assert torch.bincount(data.train_labels, minlength=NUM_CHARACTERS).tolist() == \
        [FRAMES if k + 1 in TRAIN_IDS else 0 for k in range(NUM_CHARACTERS)]
    assert len(data.test_images) == len(TEST_IDS) * FRAMES  # the validx character is not loaded


def test_factor_codes(root):
    data = load_sprites(root, CPU)
    assert tuple(data.train_factors) == FACTORS == tuple(data.test_factors)
    assert data.unspecified_factors == ("action",)
    loaded = sorted(TRAIN_IDS + TEST_IDS)
    expected_sizes = {name: len({LABELS[k][i] for k in loaded})
                      for i, name in enumerate(("body", "sex", "hair", "armour", "arms", "greaves"))}
    assert data.factor_sizes == {**expected_sizes, "action": len(FRAMES_PER_ANIMATION),
                                 "frame": max(FRAMES_PER_ANIMATION)}
    assert expected_sizes == {"body": 3, "sex": 2, "hair": 3, "armour": 2, "arms": 1, "greaves": 2}
    for images, factors in ((data.train_images, data.train_factors), (data.test_images, data.test_factors)):
        character, action, frame = stamps(images).T
        assert factors["action"].tolist() == action.tolist() and factors["frame"].tolist() == frame.tolist()
        for i, name in enumerate(expected_sizes):
            values = sorted({LABELS[k][i] for k in loaded})  # codes are ranks among the loaded characters
            assert factors[name].tolist() == [values.index(LABELS[k][i]) for k in character]
        for name, codes in factors.items():
            assert codes.dtype == torch.int64 and codes.shape == (len(images),)
            assert 0 <= codes.min() and codes.max() < data.factor_sizes[name]


def test_cache_is_made_then_reused_without_opening_mat_files_then_rebuilt_on_change(
        root, folder, cache, monkeypatch):
    first = load_sprites(root, CPU)
    made = sorted(cache.glob("sprites-*.npz"))
    assert len(made) == 1

    def refuse(*args, **kwargs):
        raise AssertionError("a .mat file was opened although the cache is current")
    with monkeypatch.context() as patch:
        patch.setattr(h5py, "File", refuse)
        patch.setattr(scipy.io, "loadmat", refuse)
        again = load_sprites(root, CPU)
    assert torch.equal(again.train_images, first.train_images)
    assert torch.equal(again.test_labels, first.test_labels)
    assert again.factor_sizes == first.factor_sizes and again.num_classes == first.num_classes

    # replace the first train character's file (id 3, sprites_2.mat) with grey frames
    path = folder / "sprites_2.mat"
    write_character(path, 3, animation_data=lambda a: np.full((FRAMES_PER_ANIMATION[a], 10800), 128 / 255))
    os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 10**9))
    rebuilt = load_sprites(root, CPU)
    assert torch.all(rebuilt.train_images[:FRAMES] == 128 / 255)
    assert torch.equal(rebuilt.train_images[FRAMES:], first.train_images[FRAMES:])
    assert len(sorted(cache.glob("sprites-*.npz"))) == 2


def test_an_unreadable_cache_is_rebuilt(root, cache):
    first = load_sprites(root, CPU)
    (path,) = cache.glob("sprites-*.npz")
    path.write_bytes(b"not an npz")
    assert torch.equal(load_sprites(root, CPU).train_images, first.train_images)


@pytest.mark.parametrize("below", [".", "sprites", "data/sprites"])
def test_files_directly_or_one_level_down(tmp_path, cache, below):
    root = tmp_path / "root"
    folder = write_sprites(root / "sprites" / below)
    assert locate_sprites(root) == folder
    assert len(load_sprites(root, CPU).train_images) == len(TRAIN_IDS) * FRAMES


def test_one_based_file_numbers_and_an_hdf5_splits_file(tmp_path, cache):
    root = tmp_path / "root"
    write_sprites(root / "sprites", zero_based=False, hdf5_splits=True)
    data = load_sprites(root, CPU)
    assert stamps(data.train_images)[::FRAMES, 0].tolist() == list(TRAIN_IDS)


def test_absent_folder(tmp_path, cache):
    assert locate_sprites(tmp_path / "empty") is None
    message = load_error(tmp_path / "empty")
    looked_in = tmp_path / "empty" / "sprites"
    assert message.startswith(f"Sprites data not found: looked in {looked_in}; download ")
    assert TARBALL in message


def test_missing_splits_file(root, folder):
    (folder / "sprites_splits.mat").unlink()
    assert locate_sprites(root) is None
    assert load_error(root).startswith(f"Sprites file missing: {folder / 'sprites_splits.mat'} (nor in ")


def test_splits_lacking_testidx(root, folder):
    write_splits(folder / "sprites_splits.mat", test=None)
    message = load_error(root)
    assert message.startswith(f"Sprites file {folder / 'sprites_splits.mat'} lacks testidx")
    assert "found trainidx, validx" in message


def test_corrupt_splits_file(root, folder):
    (folder / "sprites_splits.mat").write_bytes(b"MATLAB 5.0 MAT-file, but cut short")
    assert load_error(root).startswith(f"Sprites file corrupt: {folder / 'sprites_splits.mat'} (")


@pytest.mark.parametrize("train, expected", [((3, 1, 9), "found 9"), ((3, 0, 6), "found 0")])
def test_ids_out_of_range(root, folder, train, expected):
    write_splits(folder / "sprites_splits.mat", train=train)
    message = load_error(root)
    assert "character ids out of range: expected 1..6 (the number of ids listed), " + expected in message


def test_an_id_in_two_splits(root, folder):
    write_splits(folder / "sprites_splits.mat", train=(3, 1, 5))
    assert "character id 5 is listed twice" in load_error(root)


def test_missing_character_file_is_named(root, folder):
    (folder / "sprites_3.mat").unlink()  # character 4, a test character
    assert load_error(root) == (f"Sprites file missing: {folder / 'sprites_3.mat'} "
                                "(character 4 of testidx in sprites_splits.mat; files numbered from 0)")


def test_truncated_hdf5_file_is_named(root, folder):
    path = folder / "sprites_0.mat"
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    assert load_error(root).startswith(f"Sprites file corrupt: {path} (")


def test_frame_array_not_a_multiple_of_10800(root, folder):
    write_character(folder / "sprites_5.mat", 6, animation_data=lambda a: np.zeros((2, 10799)))
    assert load_error(root) == (f"Sprites file {folder / 'sprites_5.mat'}: animation 0 holds 21598 values, "
                                "not a multiple of 10800 (one 60x60x3 frame)")


def test_frames_of_the_wrong_shape(root, folder):
    write_character(folder / "sprites_5.mat", 6, animation_data=lambda a: np.zeros((2, 60, 180)))
    assert load_error(root) == (f"Sprites file {folder / 'sprites_5.mat'}: animation 0 has shape "
                                "(2, 60, 180); expected (frames, 10800), "
                                "one column-major 60x60x3 frame per row")


def test_values_outside_0_1(root, folder):
    write_character(folder / "sprites_5.mat", 6, animation_data=lambda a: np.full((2, 10800), 255.0))
    assert "animation 0 has values in [255, 255]; expected [0, 1]" in load_error(root)


def test_characters_with_different_numbers_of_animations(root, folder):
    write_character(folder / "sprites_5.mat", 6, frames_per_animation=(2, 3))
    assert load_error(root).endswith("sprites_5.mat: 2 animations; expected 3 (as in sprites_2.mat)")


def test_too_few_attribute_labels(root, folder):
    write_character(folder / "sprites_5.mat", 6, labels=(0, 1, 2))
    assert "'labels' holds 3 value(s); expected at least 6 (body, sex, hair, armour, arms, greaves)" \
        in load_error(root)


def test_columns_are_read_in_fortran_order():
    """The fixture's own writer: MATLAB's linear index is row + 60 * column + 3600 * channel."""
    image = frame_image(1, 0, 0)
    flat = column_major([image])[0]
    assert flat[RED_AT[0] + 60 * RED_AT[1] + 3600 * 0] == 1.0
    assert flat[59 + 60 * 0 + 3600 * 2] == pytest.approx(200 / 255)
