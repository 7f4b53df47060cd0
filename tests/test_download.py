"""`bench datasets --download` end to end against an HTTP server on 127.0.0.1 started here, serving
tiny fixture files under the published file names (datasets/download.py). The fixtures' checksums
replace the published ones through ``downloads(checksums=...)``."""
import collections
import dataclasses
import errno
import functools
import gzip
import hashlib
import http.server
import io
import socket
import struct
import tarfile
import threading
import time
import warnings

import pytest
import torch

from bench.cli import main
from datasets import DATASETS, DataError
from datasets import download as dl
from datasets import fashion_mnist, smallnorb, sprites
from datasets.idx import FILES as IDX_FILES
from tests.sprites_fixture import write_sprites
from tests.test_fashion_mnist import write_fixture as write_fashion_fixture
from tests.test_smallnorb import write_fixture as write_norb_fixture

CPU = torch.device("cpu")
NORB_FILES = tuple(smallnorb.PUBLISHED_GZ)


class Mirror:
    """A loopback HTTP server of ``files`` ({name: bytes}); counts GETs per name. Names in
    ``truncate`` announce their full length but send half and close; names in ``drop`` send half,
    then reset the connection; names in ``unannounced`` are sent whole without a length."""

    def __init__(self):
        self.files: dict[str, bytes] = {}
        self.truncate: set[str] = set()
        self.drop: set[str] = set()
        self.unannounced: set[str] = set()
        self.requests = collections.Counter()
        mirror = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                name = self.path.removeprefix("/files/")  # the mirror's address has a path
                mirror.requests[name] += 1
                data = mirror.files.get(name) if self.path.startswith("/files/") else None
                if data is None:
                    self.send_error(404)
                    return
                try:
                    self.send_response(200)
                    if name in mirror.unannounced:
                        self.close_connection = True  # the end of the file is the end of the connection
                    else:
                        self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    if name in mirror.truncate:
                        self.wfile.write(data[:len(data) // 2])
                        self.close_connection = True
                    elif name in mirror.drop:
                        self.wfile.flush()
                        time.sleep(0.1)  # the client reads the headers and starts on the body
                        self.wfile.write(data[:len(data) // 2])
                        time.sleep(0.1)
                        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                        self.connection.close()  # a reset, mid-file
                        self.close_connection = True
                    else:
                        self.wfile.write(data)
                except OSError:  # the client went away
                    self.close_connection = True

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/files"
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05},
                                       daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()

    def checksums(self, replace: dict | None = None) -> dict[str, dict]:
        """For every served file, the checks its published record has (MD5, or size and SHA-256),
        computed from the fixture, as ``downloads(checksums=...)`` takes them; ``replace`` =
        {name: {field: value}} overrides some."""
        published = {file.filename: file for record in dl.downloads().values() for file in record.files}
        computed = {"md5": lambda data: hashlib.md5(data).hexdigest(),
                    "sha256": lambda data: hashlib.sha256(data).hexdigest(), "size": len}
        table = {name: {field: compute(data) for field, compute in computed.items()
                        if getattr(published[name], field) is not None}
                 for name, data in self.files.items()}
        for name, fields in (replace or {}).items():
            table[name].update(fields)
        return table

    def records(self, replace: dict | None = None):
        return dl.downloads(mirror=self.url, checksums=self.checksums(replace))


@pytest.fixture
def mirror():
    server = Mirror()
    yield server
    server.close()


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("BENCH_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv(dl.MIRROR_ENV, raising=False)
    monkeypatch.delenv("BENCH_DATA_DIR", raising=False)


@pytest.fixture
def root(tmp_path):
    path = tmp_path / "root"
    path.mkdir()
    return path


def serve_smallnorb(mirror, tmp_path):
    folder = write_norb_fixture(tmp_path / "norb-source", gz=True)
    for name in NORB_FILES:
        mirror.files[name] = (folder / name).read_bytes()


def serve_sprites(mirror, tmp_path):
    """The tarball's published layout: data/sprites/ (the tiny fixture) beside data/shapes48.mat."""
    source = tmp_path / "sprites-source"
    write_sprites(source / "data" / "sprites")
    (source / "data" / "shapes48.mat").write_bytes(b"not used")
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        tar.add(source / "data", arcname="data")
    mirror.files[sprites.TARBALL] = buffer.getvalue()


def serve_fashion_mnist(mirror, tmp_path) -> dict[str, str]:
    """The four .gz files; returns the SHA-256 of the raw fixture files."""
    digests = write_fashion_fixture(tmp_path / "fashion-source")
    raw = tmp_path / "fashion-source" / "FashionMNIST" / "raw"
    for name in IDX_FILES:
        mirror.files[f"{name}.gz"] = gzip.compress((raw / name).read_bytes())
    return digests


def failure(name, root, records) -> str:
    """The one-line DataError of a download that must fail."""
    with pytest.raises(DataError) as caught:
        dl.download(name, root, log=lambda line: None, records=records)
    message = str(caught.value)
    assert "\n" not in message and "nothing installed" in message
    return message


def leftovers(root) -> list[str]:
    return sorted(str(path.relative_to(root)) for path in root.rglob("*"))


def load(name, root):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", smallnorb.UnverifiedSmallNorbWarning)
        return DATASETS[name](root, CPU)


# --- the records ---------------------------------------------------------------------------------

def test_published_addresses_and_checksums_come_from_the_dataset_modules():
    from torchvision.datasets import FashionMNIST
    records = dl.downloads()
    assert set(records) == {"fashion-mnist", "sprites", "smallnorb"} and set(records) <= set(DATASETS)
    assert [(f.url, f.md5) for f in records["fashion-mnist"].files] == [
        (FashionMNIST.mirrors[0] + name, md5) for name, md5 in FashionMNIST.resources]
    assert [(f.url, f.md5) for f in records["sprites"].files] == [(sprites.TARBALL_URL, sprites.TARBALL_MD5)]
    assert [(f.url, f.size, f.sha256) for f in records["smallnorb"].files] == [
        (smallnorb.PAGE + name, *smallnorb.PUBLISHED_GZ[name]) for name in NORB_FILES]
    mirrored = dl.downloads(mirror="http://127.0.0.1:9/m/")
    assert mirrored["sprites"].files[0].url == f"http://127.0.0.1:9/m/{sprites.TARBALL}"
    assert mirrored["sprites"].files[0].md5 == sprites.TARBALL_MD5


# --- successful downloads that the loaders then read ---------------------------------------------

def test_smallnorb_is_downloaded_checked_and_loaded(mirror, tmp_path, root):
    serve_smallnorb(mirror, tmp_path)
    lines = []
    where = dl.download("smallnorb", root, log=lines.append, records=mirror.records())
    assert where == {"smallnorb": root / "smallnorb"}
    assert leftovers(root) == sorted(["smallnorb", *(f"smallnorb/{name}" for name in NORB_FILES)])  # no partial
    assert lines[-1] == f"smallnorb: downloaded, checked and unpacked into {root / 'smallnorb'}"
    data = load("smallnorb", root)
    assert data.train_images.shape == (12, 1, 96, 96) and data.test_images.shape == (8, 1, 96, 96)
    # present now: nothing is fetched again
    before = sum(mirror.requests.values())
    lines.clear()
    dl.download("smallnorb", root, log=lines.append, records=mirror.records())
    assert sum(mirror.requests.values()) == before
    assert lines == [f"smallnorb: present in {root / 'smallnorb'}, nothing downloaded"]


def test_sprites_tarball_is_checked_extracted_and_loaded(mirror, tmp_path, root):
    serve_sprites(mirror, tmp_path)
    dl.download("sprites", root, log=lambda line: None, records=mirror.records())
    assert sprites.locate_sprites(root) == root / "sprites"
    assert (root / "sprites" / sprites.SPLITS_FILE).is_file()
    assert not (root / "sprites" / "data").exists() and not list(root.glob(".download-*"))
    data = load("sprites", root)
    assert data.image_shape == (3, 60, 60) and data.num_classes == 6


def test_fashion_mnist_is_downloaded_unpacked_and_loaded(mirror, tmp_path, root, monkeypatch):
    # The loader checks the raw files' SHA-256 (published ones): the fixture's replace them.
    digests = serve_fashion_mnist(mirror, tmp_path)
    monkeypatch.setattr(fashion_mnist, "FASHION_MNIST",
                        dataclasses.replace(fashion_mnist.FASHION_MNIST, checksums=digests))
    dl.download("fashion-mnist", root, log=lambda line: None, records=mirror.records())
    raw = root / "FashionMNIST" / "raw"
    assert sorted(p.name for p in raw.iterdir()) == sorted([*IDX_FILES, *(f"{n}.gz" for n in IDX_FILES)])

    def refuse(*args, **kwargs):  # torchvision must find the files and not download
        raise OSError("network disabled in tests")
    monkeypatch.setattr(socket.socket, "connect", refuse)
    data = load("fashion-mnist", root)
    assert data.train_images.shape == (12, 1, 28, 28) and data.test_images.shape == (8, 1, 28, 28)


def test_fashion_mnist_downloaded_without_a_root_is_read_without_one(mirror, tmp_path, monkeypatch):
    digests = serve_fashion_mnist(mirror, tmp_path)
    default_root = tmp_path / "default-root"
    monkeypatch.setattr("datasets.base.DEFAULT_DATA_ROOT", default_root)
    monkeypatch.setattr(fashion_mnist, "FASHION_MNIST", dataclasses.replace(
        fashion_mnist.FASHION_MNIST, checksums=digests, default_dir=tmp_path / "no-debian",
        fallback_dir=default_root / "FashionMNIST" / "raw"))
    assert DATASETS["fashion-mnist"].locate(None) is None
    dl.download("fashion-mnist", None, log=lambda line: None, records=mirror.records())
    assert DATASETS["fashion-mnist"].locate(None) == default_root / "FashionMNIST" / "raw"
    assert DATASETS["fashion-mnist"](None, CPU).train_images.shape == (12, 1, 28, 28)


def test_all_fetches_the_three_and_says_why_the_others_need_nothing(mirror, tmp_path, root, monkeypatch):
    serve_smallnorb(mirror, tmp_path)
    serve_sprites(mirror, tmp_path)
    digests = serve_fashion_mnist(mirror, tmp_path)
    monkeypatch.setattr(fashion_mnist, "FASHION_MNIST",
                        dataclasses.replace(fashion_mnist.FASHION_MNIST, checksums=digests))
    lines = []
    where = dl.download("all", root, log=lines.append, records=mirror.records())
    assert list(where) == list(DATASETS)
    assert where["mnist"] is None and where["shapes"] is None
    assert where["smallnorb"] == root / "smallnorb" and where["sprites"] == root / "sprites"
    assert where["fashion-mnist"] == root / "FashionMNIST" / "raw"
    assert "mnist: bundled with the project (datasets/data/mnist), nothing to download" in lines
    assert "shapes: generated on first use, nothing to download" in lines


# --- failures: one line, nothing installed -------------------------------------------------------

def test_a_tarball_member_outside_its_folder_is_refused(mirror, tmp_path, root):
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        member = tarfile.TarInfo("../escaped.txt")
        member.size = 4
        tar.addfile(member, io.BytesIO(b"evil"))
    mirror.files[sprites.TARBALL] = buffer.getvalue()
    message = failure("sprites", root, mirror.records())
    assert message.startswith("Sprites: unpacking and checking the files failed: the archive is corrupt")
    assert not list(tmp_path.rglob("escaped.txt")) and not (root / "sprites").exists()


def test_a_wrong_checksum_is_one_line_and_leaves_nothing(mirror, tmp_path, root):
    serve_sprites(mirror, tmp_path)
    records = mirror.records({sprites.TARBALL: {"md5": "0" * 32}})
    message = failure("sprites", root, records)
    assert message.startswith(f"Sprites: {sprites.TARBALL} from {mirror.url}/{sprites.TARBALL}: checksum "
                              f"mismatch: MD5 {hashlib.md5(mirror.files[sprites.TARBALL]).hexdigest()}, "
                              f"expected {'0' * 32}")
    assert leftovers(root) == []


def test_a_truncated_file_is_one_line_and_leaves_nothing(mirror, tmp_path, root):
    serve_smallnorb(mirror, tmp_path)
    first = NORB_FILES[0]
    mirror.truncate.add(first)
    size = len(mirror.files[first])
    message = failure("smallnorb", root, mirror.records())
    assert f"smallNORB: {first} from {mirror.url}/{first}: truncated: {size // 2} of {size} bytes" in message
    assert leftovers(root) == []


def test_a_file_announced_larger_than_its_published_size_is_not_fetched(mirror, tmp_path, root):
    serve_smallnorb(mirror, tmp_path)
    first = NORB_FILES[0]
    published = len(mirror.files[first]) - 10
    message = failure("smallnorb", root, mirror.records({first: {"size": published}}))
    assert (f"smallNORB: {first} from {mirror.url}/{first}: larger than its bound of {published} bytes "
            "(its published size): stopped there") in message
    assert leftovers(root) == []


@pytest.mark.parametrize("announced", [True, False])
def test_a_file_without_a_published_size_stops_at_the_bound(announced, mirror, tmp_path, root,
                                                            monkeypatch):
    """Sprites publishes no size: the bound for every such file holds, whether the server announces
    its length or streams past the bound without one."""
    serve_sprites(mirror, tmp_path)
    if not announced:
        mirror.unannounced.add(sprites.TARBALL)
    bound = len(mirror.files[sprites.TARBALL]) // 3
    monkeypatch.setattr(dl, "MAX_DOWNLOAD_BYTES", bound)
    monkeypatch.setattr(dl, "CHUNK_BYTES", 256)
    message = failure("sprites", root, mirror.records())
    assert f"larger than its bound of {bound} bytes (none published): stopped there" in message
    assert leftovers(root) == []


def test_a_file_without_a_length_within_its_bound_is_fetched(mirror, tmp_path, root):
    serve_sprites(mirror, tmp_path)
    mirror.unannounced.add(sprites.TARBALL)
    dl.download("sprites", root, log=lambda line: None, records=mirror.records())
    assert load("sprites", root).train_images.shape[0] > 0


def test_fashion_mnist_files_have_bounds_near_their_published_sizes():
    files = dl.downloads()["fashion-mnist"].files
    assert {f.filename: f.limit for f in files} == fashion_mnist.AT_MOST_BYTES
    assert all(f.limit < 60_000_000 for f in files)


def test_a_truncated_tarball_fails_its_md5(mirror, tmp_path, root):
    serve_sprites(mirror, tmp_path)
    mirror.truncate.add(sprites.TARBALL)
    message = failure("sprites", root, mirror.records())
    assert "checksum mismatch: MD5" in message
    assert f"({len(mirror.files[sprites.TARBALL]) // 2} bytes received)" in message
    assert leftovers(root) == []


def test_a_dropped_connection_is_one_line_and_leaves_nothing(mirror, tmp_path, root):
    serve_sprites(mirror, tmp_path)
    mirror.drop.add(sprites.TARBALL)
    message = failure("sprites", root, mirror.records())
    assert message.startswith(f"Sprites: downloading {mirror.url}/{sprites.TARBALL} failed: the connection "
                              "dropped before the file was complete")
    assert leftovers(root) == []


def test_no_server_is_one_line_about_the_network(tmp_path, root):
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    records = dl.downloads(mirror=f"http://127.0.0.1:{port}")
    message = failure("smallnorb", root, records)
    assert message.startswith(f"smallNORB: downloading http://127.0.0.1:{port}/{NORB_FILES[0]} failed: "
                              "connection refused: no network, or no server at that address")
    assert leftovers(root) == []


def test_a_missing_file_on_the_server_names_the_http_status(mirror, tmp_path, root):
    serve_smallnorb(mirror, tmp_path)
    records = mirror.records()
    del mirror.files[NORB_FILES[2]]
    message = failure("smallnorb", root, records)
    assert "failed: the server answered HTTP 404" in message


def test_a_full_disk_is_one_line(mirror, tmp_path, root, monkeypatch):
    serve_sprites(mirror, tmp_path)

    def full(url, path, limit):
        with open(path, "wb") as file:
            file.write(b"partial")
        raise OSError(errno.ENOSPC, "No space left on device")
    monkeypatch.setattr(dl, "_stream", full)
    message = failure("sprites", root, mirror.records())
    assert "failed: disk full ([Errno 28] No space left on device)" in message
    assert leftovers(root) == []


def test_an_unsound_layout_after_unpacking_installs_nothing(mirror, tmp_path, root):
    serve_sprites(mirror, tmp_path)
    buffer = io.BytesIO()  # a tarball with the splits file but no character files
    source = tmp_path / "bad"
    write_sprites(source / "data" / "sprites")
    for path in (source / "data" / "sprites").glob("sprites_[0-9]*.mat"):
        path.unlink()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        tar.add(source / "data", arcname="data")
    mirror.files[sprites.TARBALL] = buffer.getvalue()
    message = failure("sprites", root, mirror.records())
    assert message.startswith("Sprites file missing: ")
    assert not (root / "sprites").exists()
    # the tarball passed its MD5: kept for the next attempt, the extracted files are gone
    assert leftovers(root) == [".download-sprites-partial", f".download-sprites-partial/{sprites.TARBALL}"]


def test_an_incomplete_folder_in_the_way_is_refused(mirror, tmp_path, root):
    serve_smallnorb(mirror, tmp_path)
    (root / "smallnorb").mkdir()
    (root / "smallnorb" / "notes.txt").write_text("mine")
    with pytest.raises(DataError, match=r"smallNORB: .*smallnorb exists but the loader finds no complete "
                                        r"dataset there; move it away"):
        dl.download("smallnorb", root, log=lambda line: None, records=mirror.records())
    assert sum(mirror.requests.values()) == 0 and leftovers(root) == ["smallnorb", "smallnorb/notes.txt"]


# --- resuming ------------------------------------------------------------------------------------

def test_an_interrupted_download_resumes_without_fetching_checked_files_again(mirror, tmp_path, root):
    serve_smallnorb(mirror, tmp_path)
    mirror.drop.add(NORB_FILES[3])
    message = failure("smallnorb", root, mirror.records())
    partial = root / ".download-smallnorb-partial"
    assert f"3 checked file(s) kept in {partial} for the next attempt" in message
    assert sorted(p.name for p in partial.iterdir()) == sorted(NORB_FILES[:3])
    assert not (root / "smallnorb").exists()
    # A leftover that fails its checks (as a killed download leaves it) is fetched again.
    (partial / NORB_FILES[4]).write_bytes(mirror.files[NORB_FILES[4]][:10])
    mirror.drop.clear()
    mirror.requests.clear()
    lines = []
    dl.download("smallnorb", root, log=lines.append, records=mirror.records())
    assert not any(mirror.requests[name] for name in NORB_FILES[:3])
    assert all(mirror.requests[name] for name in NORB_FILES[3:])
    assert any(NORB_FILES[4] in line and "fails its checks (truncated: 10 of" in line for line in lines)
    assert sum(NORB_FILES[0] in line and "kept" in line for line in lines) == 1
    assert not partial.exists()
    assert load("smallnorb", root).train_images.shape == (12, 1, 96, 96)


# --- the command ---------------------------------------------------------------------------------

def test_the_command_downloads_through_the_mirror_variable(mirror, tmp_path, root, monkeypatch, capsys):
    serve_smallnorb(mirror, tmp_path)
    monkeypatch.setenv(dl.MIRROR_ENV, mirror.url)
    monkeypatch.setattr(dl, "downloads", functools.partial(dl.downloads, checksums=mirror.checksums()))
    assert main(["datasets", "--download", "smallnorb", "--data-dir", str(root)]) == 0
    out = capsys.readouterr().out
    assert f"smallnorb: downloaded, checked and unpacked into {root / 'smallnorb'}" in out
    assert all(mirror.requests[name] for name in NORB_FILES)
    assert smallnorb.locate_smallnorb(root) == root / "smallnorb"


def test_the_command_fails_in_one_line(mirror, tmp_path, root, monkeypatch, capsys):
    serve_smallnorb(mirror, tmp_path)
    monkeypatch.setenv(dl.MIRROR_ENV, mirror.url)  # the published checksums: the fixtures fail them
    assert main(["datasets", "--download", "smallnorb", "--data-dir", str(root)]) == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if "bench: error:" in line]
    assert len(errors) == 1 and errors[0].startswith(f"bench: error: smallNORB: {NORB_FILES[0]} from ")
    assert "nothing installed" in errors[0]
    assert leftovers(root) == []


def test_the_command_names_the_valid_datasets_and_skips_the_bundled_ones(root, capsys):
    assert main(["datasets", "--download", "cifar", "--data-dir", str(root)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("bench: error: unknown dataset 'cifar' for --download (valid: all, ")
    assert main(["datasets", "--download", "mnist", "--data-dir", str(root)]) == 0
    assert "mnist: bundled with the project" in capsys.readouterr().out
    assert leftovers(root) == []
