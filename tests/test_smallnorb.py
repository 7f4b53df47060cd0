"""smallNORB: the binary matrix format, the ImageSet built from it, the cache, and bad input."""
import gzip
import hashlib
import os
import struct
import warnings

import numpy as np
import pytest
import torch

from datasets import DATASETS, DataError
from datasets import smallnorb
from datasets.smallnorb import (PUBLISHED_GZ, TruncatedMatrix, UnverifiedSmallNorbWarning, load_smallnorb,
                                locate_smallnorb, parse_norb_matrix)

pytestmark = pytest.mark.filterwarnings("ignore::datasets.smallnorb.UnverifiedSmallNorbWarning")

CPU = torch.device("cpu")
BYTE, INT = 0x1E3D4C55, 0x1E3D4C54
TRAIN, TEST = "smallnorb-5x46789x9x18x6x2x96x96-training", "smallnorb-5x01235x9x18x6x2x96x96-testing"
TRAIN_INSTANCES, TEST_INSTANCES = (4, 6, 7, 8, 9), (0, 1, 2, 3, 5)


def norb_bytes(array: np.ndarray, magic: int | None = None) -> bytes:
    """``array`` in the published binary matrix format: magic, ndim, max(ndim, 3) sizes, elements."""
    if magic is None:
        magic = BYTE if array.dtype == np.uint8 else INT
    dims = list(array.shape) + [1] * (3 - array.ndim)
    dtype = "u1" if magic == BYTE else "<i4"
    return struct.pack(f"<Ii{len(dims)}i", magic, array.ndim, *dims) + array.astype(dtype).tobytes()


def fixture_arrays(n: int, instances: tuple[int, ...]) -> dict[str, np.ndarray]:
    """dat, cat, info for ``n`` examples. Example i's left image is a flat grey of 10 * i with a white
    pixel at row 3, column 20 and a black one at row 20, column 3; every right image is a flat 128."""
    i = np.arange(n)
    dat = np.full((n, 2, 96, 96), 128, dtype=np.uint8)
    dat[:, 0] = (10 * i).astype(np.uint8)[:, None, None]
    dat[:, 0, 3, 20], dat[:, 0, 20, 3] = 255, 0
    cat = (i % 5).astype(np.int32)
    info = np.stack([np.array(instances)[(i // 5) % 5],  # instance
                     i % 9,  # elevation
                     2 * ((17 - i) % 18),  # azimuth: 34, 32, ...
                     (i + 1) % 6], axis=1).astype(np.int32)  # lighting
    return {"dat": dat, "cat": cat, "info": info}


def write_file(folder, prefix, role, data: bytes, gz: bool):
    path = folder / f"{prefix}-{role}.mat{'.gz' if gz else ''}"
    path.write_bytes(gzip.compress(data) if gz else data)
    return path


def write_fixture(root, gz=False, train=12, test=8):
    """``root/smallnorb`` with the six files (12 training and 8 testing examples); returns the folder."""
    folder = root / "smallnorb"
    folder.mkdir(parents=True, exist_ok=True)
    for prefix, n, instances in ((TRAIN, train, TRAIN_INSTANCES), (TEST, test, TEST_INSTANCES)):
        for role, array in fixture_arrays(n, instances).items():
            write_file(folder, prefix, role, norb_bytes(array), gz)
    return folder


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch):
    """A private cache folder: the tests never touch the real one."""
    directory = tmp_path / "cache"
    monkeypatch.setenv("BENCH_CACHE_DIR", str(directory))
    return directory


def one_line_error(data_dir, match):
    with pytest.raises(DataError, match=match) as caught:
        load_smallnorb(data_dir, CPU)
    assert "\n" not in str(caught.value)
    return str(caught.value)


# --- the format ----------------------------------------------------------------------------------

def test_parse_byte_matrix_with_three_dimensions():
    data = struct.pack("<Ii3i", BYTE, 3, 2, 1, 3) + bytes([1, 2, 3, 4, 5, 250])
    array = parse_norb_matrix(data)
    assert array.dtype == np.uint8 and array.shape == (2, 1, 3)
    assert array.tolist() == [[[1, 2, 3]], [[4, 5, 250]]]


def test_parse_pads_fewer_than_three_dimensions_to_three():
    # ndim 1: sizes (2, 1, 1) -- the two padding sizes must be skipped, not read as elements
    vector = struct.pack("<Ii3i", INT, 1, 2, 1, 1) + struct.pack("<2i", 7, -1)
    array = parse_norb_matrix(vector)
    assert array.dtype == np.int32 and array.shape == (2,) and array.tolist() == [7, -1]
    matrix = struct.pack("<Ii3i", INT, 2, 2, 2, 1) + struct.pack("<4i", 1, 2, 3, 0x01020304)
    assert parse_norb_matrix(matrix).tolist() == [[1, 2], [3, 0x01020304]]  # little-endian elements


def test_parse_four_dimensions_use_four_sizes():
    data = struct.pack("<Ii4i", BYTE, 4, 1, 1, 1, 2) + bytes([9, 8])
    assert parse_norb_matrix(data).tolist() == [[[[9, 8]]]]
    assert parse_norb_matrix(norb_bytes(np.arange(24, dtype=np.uint8).reshape(1, 2, 3, 4))).shape == (1, 2, 3, 4)


def test_parse_rejects_malformed_matrices():
    good = struct.pack("<Ii3i", INT, 1, 2, 1, 1) + struct.pack("<2i", 7, -1)
    with pytest.raises(TruncatedMatrix) as caught:
        parse_norb_matrix(good[:-1])
    assert (caught.value.expected, caught.value.found) == (28, 27)
    with pytest.raises(TruncatedMatrix):
        parse_norb_matrix(good[:6])
    with pytest.raises(ValueError, match="3 bytes after the 28"):
        parse_norb_matrix(good + b"xyz")
    with pytest.raises(ValueError, match="unknown magic number 0x12345678"):
        parse_norb_matrix(struct.pack("<Ii3i", 0x12345678, 1, 1, 1, 1) + b"\0")
    with pytest.raises(ValueError, match="packed matrix"):
        parse_norb_matrix(struct.pack("<Ii3i", 0x1E3D4C52, 1, 1, 1, 1) + b"\0")


# --- the ImageSet --------------------------------------------------------------------------------

@pytest.mark.parametrize("gz", [False, True], ids=["plain", "gzipped"])
def test_fixture_loads_left_camera_labels_and_factors(tmp_path, gz):
    write_fixture(tmp_path, gz=gz)
    data = load_smallnorb(tmp_path, CPU)
    assert data.name == "smallnorb" and data.num_classes == 50
    assert data.train_images.shape == (12, 1, 96, 96) and data.test_images.shape == (8, 1, 96, 96)
    assert data.train_images.dtype == torch.float32
    # the left camera, not transposed: white at row 3 column 20, black at row 20 column 3, grey 10*i
    assert data.train_images[5, 0, 3, 20] == 1.0 and data.train_images[5, 0, 20, 3] == 0.0
    assert torch.isclose(data.train_images[5, 0, 50, 60], torch.tensor(50 / 255))
    assert torch.isclose(data.test_images[7, 0, 0, 0], torch.tensor(70 / 255))
    assert not torch.isclose(data.train_images[0, 0, 50, 60], torch.tensor(128 / 255))  # not the right camera

    for split, n, instances in (("train", 12, TRAIN_INSTANCES), ("test", 8, TEST_INSTANCES)):
        arrays = fixture_arrays(n, instances)
        labels = getattr(data, f"{split}_labels")
        factors = getattr(data, f"{split}_factors")
        assert labels.dtype == torch.int64
        assert labels.tolist() == (arrays["cat"] * 10 + arrays["info"][:, 0]).tolist()
        assert factors["category"].tolist() == arrays["cat"].tolist()
        assert factors["elevation"].tolist() == arrays["info"][:, 1].tolist()
        assert factors["azimuth"].tolist() == (arrays["info"][:, 2] // 2).tolist()
        assert factors["lighting"].tolist() == arrays["info"][:, 3].tolist()
        assert all(v.dtype == torch.int64 and len(v) == n for v in factors.values())
    assert data.train_labels[:6].tolist() == [4, 14, 24, 34, 44, 6]  # category * 10 + instance
    assert data.train_factors["azimuth"][:3].tolist() == [17, 16, 15]  # published 34, 32, 30 halved
    assert not set(data.train_labels.tolist()) & set(data.test_labels.tolist())  # disjoint objects
    assert data.factor_sizes == {"category": 5, "elevation": 9, "azimuth": 18, "lighting": 6}
    assert data.unspecified_factors == ("azimuth", "elevation", "lighting")
    assert data.head(4, 2).train_factors["azimuth"].tolist() == [17, 16, 15, 14]


def test_registered_with_locate_and_how_to_get(tmp_path):
    source = DATASETS["smallnorb"]
    assert source.load is load_smallnorb and source.locate is locate_smallnorb
    assert "cs.nyu.edu/~ylclab/data/norb-v1.0-small" in source.how_to_get and "smallnorb/" in source.how_to_get
    assert "\n" not in source.how_to_get and "\n" not in source.summary
    assert source.locate(tmp_path) is None
    folder = write_fixture(tmp_path, gz=True)
    assert source.locate(tmp_path) == folder
    (folder / f"{TEST}-info.mat.gz").unlink()
    assert source.locate(tmp_path) is None


# --- the cache -----------------------------------------------------------------------------------

def test_cache_is_built_once_then_reused_without_reading_the_sources(tmp_path, cache, monkeypatch):
    write_fixture(tmp_path, gz=True)
    first = load_smallnorb(tmp_path, CPU)
    built = list(cache.glob("smallnorb-*.npz"))
    assert len(built) == 1

    def refuse(path):
        raise AssertionError(f"read {path} although the cache is there")
    monkeypatch.setattr(smallnorb, "read_source", refuse)
    second = load_smallnorb(tmp_path, CPU)
    assert torch.equal(first.train_images, second.train_images) and torch.equal(first.test_labels, second.test_labels)
    assert list(cache.glob("smallnorb-*.npz")) == built


def test_a_changed_file_rebuilds_the_cache(tmp_path, cache):
    folder = write_fixture(tmp_path)
    assert load_smallnorb(tmp_path, CPU).train_factors["lighting"][0] == 1
    old = list(cache.glob("smallnorb-*.npz"))
    info = fixture_arrays(12, TRAIN_INSTANCES)["info"]
    info[:, 3] = 5
    path = write_file(folder, TRAIN, "info", norb_bytes(info), gz=False)
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10_000_000_000))  # same size, later mtime
    assert load_smallnorb(tmp_path, CPU).train_factors["lighting"].tolist() == [5] * 12
    new = list(cache.glob("smallnorb-*.npz"))
    assert len(new) == 1 and new != old  # the stale cache is gone


def test_an_unreadable_cache_is_rebuilt(tmp_path, cache):
    write_fixture(tmp_path)
    load_smallnorb(tmp_path, CPU)
    (built,) = cache.glob("smallnorb-*.npz")
    built.write_bytes(b"not a zip")
    assert load_smallnorb(tmp_path, CPU).train_images.shape == (12, 1, 96, 96)


# --- checksums -----------------------------------------------------------------------------------

def test_fixtures_are_read_unverified_with_a_warning(tmp_path):
    write_fixture(tmp_path)
    with pytest.warns(UnverifiedSmallNorbWarning, match="not of the published sizes"):
        load_smallnorb(tmp_path, CPU)


def test_a_file_of_the_published_size_must_match_the_published_md5(tmp_path):
    folder = write_fixture(tmp_path)
    cat = np.zeros(24300, dtype=np.int32)  # the published cat file's size, not its contents
    write_file(folder, TRAIN, "cat", norb_bytes(cat), gz=False)
    one_line_error(tmp_path, rf"smallNORB file corrupt: .*{TRAIN}-cat\.mat \(MD5 of the file does not match")


def test_gzipped_files_of_the_published_size_are_checked_by_sha256(tmp_path, monkeypatch):
    folder = write_fixture(tmp_path, gz=True)
    digests = {path.name: (path.stat().st_size, hashlib.sha256(path.read_bytes()).hexdigest())
               for path in folder.iterdir()}
    assert set(digests) == set(PUBLISHED_GZ)
    # pretend the fixtures are the published downloads: every file is verified, so no warning
    monkeypatch.setattr(smallnorb, "PUBLISHED_GZ", digests)
    with warnings.catch_warnings():
        warnings.simplefilter("error", UnverifiedSmallNorbWarning)
        load_smallnorb(tmp_path, CPU)
    # one digest wrong: that file is named
    name = f"{TEST}-dat.mat.gz"
    monkeypatch.setattr(smallnorb, "PUBLISHED_GZ", {**digests, name: (digests[name][0], "0" * 64)})
    stat = (folder / name).stat()  # a later mtime: a new cache key, so the files are read again
    os.utime(folder / name, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10_000_000_000))
    one_line_error(tmp_path, rf"smallNORB file corrupt: .*{TEST}-dat\.mat\.gz \(SHA-256 does not match")


# --- bad input -----------------------------------------------------------------------------------

def test_an_absent_folder_says_where_it_looked_and_how_to_get_it(tmp_path):
    message = one_line_error(tmp_path, r"smallNORB data not found: looked in .*smallnorb \(no such folder\); "
                                       r"download the six .* from https://cs\.nyu\.edu/~ylclab/data/norb-v1\.0-small/")
    assert str(tmp_path / "smallnorb") in message


def test_a_missing_file_is_named(tmp_path):
    folder = write_fixture(tmp_path, gz=True)
    (folder / f"{TRAIN}-cat.mat.gz").unlink()
    one_line_error(tmp_path, rf"smallNORB data not found: looked in .*smallnorb \(missing {TRAIN}-cat\.mat\(\.gz\)\); "
                             r"download")


@pytest.mark.parametrize("gz", [False, True], ids=["plain", "gzipped"])
def test_a_truncated_file_gives_expected_and_found_byte_counts(tmp_path, gz):
    folder = write_fixture(tmp_path, gz=gz)
    data = norb_bytes(fixture_arrays(12, TRAIN_INSTANCES)["dat"])
    write_file(folder, TRAIN, "dat", data[:-1000], gz=gz)
    after = " after decompression" if gz else ""
    suffix = r"\.gz" if gz else ""
    one_line_error(tmp_path, rf"smallNORB file truncated: .*{TRAIN}-dat\.mat{suffix} "
                             rf"\(expected {len(data)} bytes{after}, found {len(data) - 1000}\)")


def test_a_truncated_header_is_named(tmp_path):
    folder = write_fixture(tmp_path)
    write_file(folder, TEST, "info", norb_bytes(fixture_arrays(8, TEST_INSTANCES)["info"])[:12], gz=False)
    one_line_error(tmp_path, rf"smallNORB file truncated: .*{TEST}-info\.mat \(expected at least 20 bytes, found 12\)")


def test_the_wrong_magic_is_named_with_expected_and_found(tmp_path):
    folder = write_fixture(tmp_path)
    write_file(folder, TRAIN, "dat", norb_bytes(fixture_arrays(12, TRAIN_INSTANCES)["dat"], magic=INT), gz=False)
    one_line_error(tmp_path, rf"smallNORB file has the wrong magic number: .*{TRAIN}-dat\.mat "
                             r"\(expected 0x1E3D4C55 \(byte matrix\), found 0x1E3D4C54 \(integer matrix\)\)")
    write_file(folder, TRAIN, "dat", norb_bytes(fixture_arrays(12, TRAIN_INSTANCES)["dat"]), gz=False)
    write_file(folder, TEST, "cat", b"\x1f\x8b\x08\x00" + bytes(40), gz=False)  # e.g. gzip data under .mat
    one_line_error(tmp_path, rf"wrong magic number: .*{TEST}-cat\.mat \(expected 0x1E3D4C54 \(integer matrix\), "
                             r"found 0x00088B1F\)")


def test_the_wrong_shape_is_named_with_expected_and_found(tmp_path):
    folder = write_fixture(tmp_path)
    mono = fixture_arrays(12, TRAIN_INSTANCES)["dat"][:, :1]
    write_file(folder, TRAIN, "dat", norb_bytes(mono), gz=False)
    one_line_error(tmp_path, rf"smallNORB file has the wrong shape: .*{TRAIN}-dat\.mat "
                             r"\(expected N x 2 x 96 x 96, found 12 x 1 x 96 x 96\)")
    write_file(folder, TRAIN, "dat", norb_bytes(fixture_arrays(12, TRAIN_INSTANCES)["dat"]), gz=False)
    write_file(folder, TEST, "info", norb_bytes(fixture_arrays(8, TEST_INSTANCES)["info"][:, :3]), gz=False)
    one_line_error(tmp_path, rf"wrong shape: .*{TEST}-info\.mat \(expected N x 4, found 8 x 3\)")


def test_disagreeing_counts_are_reported(tmp_path):
    folder = write_fixture(tmp_path)
    write_file(folder, TRAIN, "cat", norb_bytes(fixture_arrays(11, TRAIN_INSTANCES)["cat"]), gz=False)
    one_line_error(tmp_path, r"smallNORB train files disagree on the number of examples: "
                             r"dat has 12, cat has 11, info has 12 \(in .*smallnorb\)")


def test_a_corrupt_gzip_is_named(tmp_path):
    folder = write_fixture(tmp_path, gz=True)
    path = folder / f"{TEST}-dat.mat.gz"
    path.write_bytes(path.read_bytes()[:200])  # cut short
    one_line_error(tmp_path, rf"smallNORB file corrupt: .*{TEST}-dat\.mat\.gz \(not a valid gzip file")
    path.write_bytes(b"this is not gzip at all")
    one_line_error(tmp_path, rf"smallNORB file corrupt: .*{TEST}-dat\.mat\.gz \(not a valid gzip file")


def test_factor_values_out_of_range_are_named(tmp_path):
    folder = write_fixture(tmp_path)
    info = fixture_arrays(12, TRAIN_INSTANCES)["info"]
    info[2, 2] = 35  # azimuth is published as even numbers 0..34
    write_file(folder, TRAIN, "info", norb_bytes(info), gz=False)
    one_line_error(tmp_path, rf"smallNORB file corrupt: .*{TRAIN}-info\.mat \(azimuth must be one of "
                             r"0, 2, 4, \.\.\., 34; found 35 in example 2\)")
    write_file(folder, TRAIN, "info", norb_bytes(fixture_arrays(12, TRAIN_INSTANCES)["info"]), gz=False)
    cat = fixture_arrays(8, TEST_INSTANCES)["cat"]
    cat[0] = 5
    write_file(folder, TEST, "cat", norb_bytes(cat), gz=False)
    one_line_error(tmp_path, rf"{TEST}-cat\.mat \(category must be one of 0, 1, 2, \.\.\., 4; found 5 in example 0\)")
