"""``python -m bench datasets --download NAME|all``: fetch the published files of the datasets that
are neither bundled nor generated, check them, unpack them and put them where the loaders look.

Each dataset is a ``Download``: its published files (``RemoteFile``: address, name, published
checksum and, where published, size), the folder its loader reads under a data root, and how the
checked files become that folder. The addresses and checksums are the dataset modules' own constants
(and, for Fashion-MNIST, torchvision's ``FashionMNIST.mirrors`` and ``resources``); MD5 and
extraction are torchvision's (``torchvision.datasets.utils``). Fetching is ours, for two things
torchvision's ``download_url`` does not do: it stops a file at its size bound (the published size,
else a bound from the published description, else MAX_DOWNLOAD_BYTES), so a server cannot fill
the disk, and it never retries an HTTPS address over plain HTTP.

One attempt, for data root ROOT:
    1. When the loader already finds the data (its ``locate``), nothing is fetched ("present").
    2. Files are fetched into ROOT/.download-NAME-partial/. A file already there from an earlier
       attempt is kept when it passes its checks, else deleted and fetched again (from its start:
       no byte ranges are requested).
    3. Each fetched file is checked (size where published, then SHA-256 or MD5), then the files are
       unpacked into the layout the loader reads and that layout is checked with the loader's own
       checks; only then is the folder renamed into place, in one step.
    4. On any failure nothing is installed: what this attempt unpacked and the file that failed are
       deleted; files that passed their checks stay in the partial folder for the next attempt (the
       partial folder is removed when nothing is left in it). The error is one line (``DataError``):
       the dataset, the file or step, and the cause (no network, connection refused, connection
       dropped, HTTP status, checksum or size mismatch, a file larger than its bound, disk full).

$BENCH_DOWNLOAD_MIRROR, when set, replaces every address by MIRROR/<published file name>: a local
mirror, e.g. a folder of the published files served over HTTP (the tests do this).
"""
from __future__ import annotations

import contextlib
import dataclasses
import errno
import hashlib
import os
import shutil
import socket
from pathlib import Path
from typing import Callable, Mapping

from datasets.base import DataError, data_root, first_line

MIRROR_ENV = "BENCH_DOWNLOAD_MIRROR"
TIMEOUT_S = 60  # a connection silent this long fails the download
MAX_DOWNLOAD_BYTES = 4 << 30  # the bound of a file whose size is published nowhere
CHUNK_BYTES = 1 << 16
USER_AGENT = "weakly-disentangled-bench"
# The registered datasets that have nothing to fetch, and why.
NOTHING_TO_FETCH = {"mnist": "bundled with the project (datasets/data/mnist)",
                    "shapes": "generated on first use"}


@dataclasses.dataclass(frozen=True)
class RemoteFile:
    """A published file: where it is, the name it is saved under, and what it is checked against."""
    url: str
    filename: str
    md5: str | None = None
    sha256: str | None = None
    size: int | None = None
    at_most: int | None = None  # a bound, where the exact size is not published

    @property
    def limit(self) -> int:
        """The most bytes fetched before the file is refused as too large."""
        return self.size or self.at_most or MAX_DOWNLOAD_BYTES

    def problem(self, path: Path) -> str | None:
        """Why the file at ``path`` is not this published file, or None when every check passes."""
        from torchvision.datasets.utils import calculate_md5
        size = path.stat().st_size
        if self.size is not None and size != self.size:
            return (f"truncated: {size} of {self.size} bytes" if size < self.size
                    else f"{size} bytes, expected {self.size}")
        if self.sha256 is not None:
            digest = hashlib.sha256()
            with open(path, "rb") as file:  # in chunks (hashlib.file_digest is Python 3.11+)
                for chunk in iter(lambda: file.read(1 << 20), b""):
                    digest.update(chunk)
            found = digest.hexdigest()
            if found != self.sha256:
                return f"checksum mismatch: SHA-256 {found}, expected {self.sha256} ({size} bytes received)"
        if self.md5 is not None:
            found = calculate_md5(path)
            if found != self.md5:
                return f"checksum mismatch: MD5 {found}, expected {self.md5} ({size} bytes received)"
        return None


@dataclasses.dataclass(frozen=True)
class Download:
    name: str  # the dataset's name in DATASETS
    title: str  # as users know it, in messages
    files: tuple[RemoteFile, ...]
    target: Callable[[Path], Path]  # data root -> the folder the loader reads, which the download creates
    unpack: Callable[[Path], Path]  # folder of checked files -> the folder to install (checked; DataError)


def _unpack_fashion_mnist(folder: Path) -> Path:
    """The raw IDX files beside the .gz (torchvision's own layout), checked against their SHA-256."""
    from torchvision.datasets.utils import extract_archive

    from datasets import fashion_mnist, idx
    for name in idx.FILES:
        extract_archive(folder / f"{name}.gz", folder)
    fashion_mnist.FASHION_MNIST.verify_directory(folder)
    return folder


def _unpack_sprites(folder: Path) -> Path:
    """The tarball's folder holding sprites_splits.mat (data/sprites), structure-checked."""
    from torchvision.datasets.utils import extract_archive

    from datasets import sprites
    unpacked = folder / "unpacked"
    with _safe_tar_members():
        extract_archive(folder / sprites.TARBALL, unpacked)
    found = sprites.find_splits_folder(unpacked)
    if found is None:
        raise DataError(f"Sprites: {sprites.TARBALL} holds no {sprites.SPLITS_FILE} "
                        f"(looked in {', '.join(sub + '/' for sub in sprites.SUBFOLDERS)})")
    sprites.check_folder(found)
    return found


def _unpack_smallnorb(folder: Path) -> Path:
    """Nothing to unpack: the loader reads the .mat.gz files."""
    from datasets import smallnorb
    missing = smallnorb.source_paths(folder)[1]
    if missing:
        raise DataError(f"{smallnorb.TITLE}: missing {', '.join(missing)}(.gz) after the download")
    return folder


def downloads(mirror: str | None = None,
              checksums: Mapping[str, Mapping[str, object]] | None = None) -> dict[str, Download]:
    """The downloadable datasets by name. ``mirror`` replaces every address by MIRROR/<file name>;
    ``checksums`` maps a file name to RemoteFile fields that replace the published ones (tests)."""
    from torchvision.datasets import FashionMNIST

    from datasets import fashion_mnist, smallnorb, sprites

    def remote(url: str, filename: str, **checks) -> RemoteFile:
        if mirror:
            url = f"{mirror.rstrip('/')}/{filename}"
        file = RemoteFile(url, filename, **checks)
        return dataclasses.replace(file, **(checksums or {}).get(filename, {}))

    records = (
        Download("fashion-mnist", fashion_mnist.FASHION_MNIST.title,
                 tuple(remote(FashionMNIST.mirrors[0] + filename, filename, md5=md5,
                              at_most=fashion_mnist.AT_MOST_BYTES[filename])
                       for filename, md5 in FashionMNIST.resources),
                 target=lambda root: fashion_mnist.FASHION_MNIST.directory(root),
                 unpack=_unpack_fashion_mnist),
        Download("sprites", "Sprites",
                 (remote(sprites.TARBALL_URL, sprites.TARBALL, md5=sprites.TARBALL_MD5),),
                 target=lambda root: root / sprites.FOLDER, unpack=_unpack_sprites),
        Download("smallnorb", smallnorb.TITLE,
                 tuple(remote(smallnorb.PAGE + filename, filename, sha256=sha256, size=size)
                       for filename, (size, sha256) in smallnorb.PUBLISHED_GZ.items()),
                 target=lambda root: root / smallnorb.SUBDIR, unpack=_unpack_smallnorb),
    )
    return {record.name: record for record in records}


def download(name: str, data_dir: Path | None, log: Callable[[str], None] = print,
             records: Mapping[str, Download] | None = None) -> dict[str, Path | None]:
    """Download ``name`` (or ``all``) under ``data_dir`` (None: the default data root); returns
    {dataset: the folder its loader now reads, or None when there is nothing to fetch}. Logs a
    line per step; raises DataError (one line) at the first failure."""
    from datasets import DATASETS
    if records is None:
        records = downloads(mirror=os.environ.get(MIRROR_ENV) or None)
    names = list(DATASETS) if name == "all" else [name]
    if name != "all" and name not in DATASETS:
        raise DataError(f"unknown dataset {name!r} for --download (valid: all, {', '.join(DATASETS)})")
    where: dict[str, Path | None] = {}
    for each in names:
        if each not in records:
            log(f"{each}: {NOTHING_TO_FETCH.get(each, 'nothing to download')}, nothing to download")
            where[each] = None
            continue
        found = DATASETS[each].locate(data_dir)
        if found is not None:
            log(f"{each}: present in {found}, nothing downloaded")
        else:
            found = _download_one(records[each], data_root(data_dir), log)
            log(f"{each}: downloaded, checked and unpacked into {found}")
        where[each] = found
    return where


def _download_one(record: Download, root: Path, log: Callable[[str], None]) -> Path:
    target = record.target(root)
    if target.exists():
        raise DataError(f"{record.title}: {target} exists but the loader finds no complete dataset there; "
                        "move it away, then download again")
    partial = root / f".download-{record.name}-partial"
    kept: set[str] = set()
    step = f"creating {partial}"
    try:
        partial.mkdir(parents=True, exist_ok=True)
        for file in record.files:
            step = f"downloading {file.url}"
            _fetch(record, file, partial / file.filename, log)
            kept.add(file.filename)
        step = "unpacking and checking the files"
        log(f"{record.name}: {step}")
        installed = record.unpack(partial)
        step = f"moving the data into {target}"
        target.parent.mkdir(parents=True, exist_ok=True)
        os.rename(installed, target)
    except BaseException as error:
        _clean(partial, kept)
        left = (f"; {len(kept)} checked file(s) kept in {partial} for the next attempt"
                if partial.is_dir() else "")
        if isinstance(error, DataError):
            raise DataError(f"{error}; nothing installed{left}") from None
        cause = _cause(error)
        if cause is None:
            raise
        raise DataError(f"{record.title}: {step} failed: {cause}; nothing installed{left}") from None
    shutil.rmtree(partial, ignore_errors=True)  # what was not installed (a tarball, its other folders)
    return target


def _fetch(record: Download, file: RemoteFile, path: Path, log: Callable[[str], None]) -> None:
    """``file`` at ``path``, fetched unless an earlier attempt left it there whole; checked."""
    if path.is_file():
        problem = file.problem(path)
        if problem is None:
            log(f"{record.name}: {file.filename} is already here from an earlier attempt and passes "
                "its checks: kept")
            return
        log(f"{record.name}: {file.filename} left by an earlier attempt fails its checks ({problem}): "
            "fetching it again")
        path.unlink()
    log(f"{record.name}: fetching {file.url}")
    received = _stream(file.url, path, file.limit)
    if received is None:
        path.unlink(missing_ok=True)
        raise DataError(f"{record.title}: {file.filename} from {file.url}: larger than its bound of "
                        f"{file.limit} bytes ({'its published size' if file.size else 'none published'}"
                        "): stopped there")
    problem = file.problem(path)
    if problem is not None:
        path.unlink(missing_ok=True)
        raise DataError(f"{record.title}: {file.filename} from {file.url}: {problem}")


def _stream(url: str, path: Path, limit: int) -> int | None:
    """Write what ``url`` serves to ``path``; the bytes received, or None (the file incomplete)
    when the server announced or sent more than ``limit``. A connection silent for TIMEOUT_S
    fails (TimeoutError)."""
    import urllib.request

    from tqdm.auto import tqdm
    request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
    with urllib.request.urlopen(request, timeout=TIMEOUT_S) as response:
        if response.length is not None and response.length > limit:
            return None
        received = 0
        with open(path, "wb") as out, tqdm(total=response.length, unit="B", unit_scale=True,
                                           leave=False) as bar:
            while chunk := response.read(CHUNK_BYTES):
                received += len(chunk)
                if received > limit:
                    return None
                out.write(chunk)
                bar.update(len(chunk))
    return received


def _clean(partial: Path, kept: set[str]) -> None:
    """Delete everything in ``partial`` but the files in ``kept``; the folder too when then empty."""
    if not partial.is_dir():
        return
    for entry in partial.iterdir():
        if entry.name in kept and entry.is_file():
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)
    with contextlib.suppress(OSError):
        partial.rmdir()  # only when empty


def _cause(error: BaseException) -> str | None:
    """What went wrong, in words, for the errors a download meets; None for any other error."""
    import http.client
    import tarfile
    import urllib.error
    import zlib
    if isinstance(error, urllib.error.HTTPError):
        return f"the server answered HTTP {error.code} {error.reason}"
    if isinstance(error, urllib.error.URLError) and isinstance(error.reason, BaseException):
        error = error.reason
    if isinstance(error, OSError) and error.errno in (errno.ENOSPC, errno.EDQUOT):
        return f"disk full ({first_line(error)})"
    if isinstance(error, socket.gaierror):
        return f"no network: the host name cannot be resolved ({first_line(error)})"
    if isinstance(error, ConnectionRefusedError):
        return "connection refused: no network, or no server at that address"
    if isinstance(error, TimeoutError):
        return f"no network: the connection timed out (nothing for {TIMEOUT_S} s)"
    if isinstance(error, (ConnectionError, http.client.HTTPException)):
        return f"the connection dropped before the file was complete ({type(error).__name__}: {first_line(error)})"
    if isinstance(error, urllib.error.URLError):  # a reason in words: a bad address, not the network
        return str(error.reason)
    if isinstance(error, (tarfile.TarError, EOFError, zlib.error)):
        return f"the archive is corrupt ({first_line(error)})"
    if isinstance(error, (OSError, ValueError, RuntimeError)):  # a bad address, permissions, ...
        return first_line(error)
    return None


@contextlib.contextmanager
def _safe_tar_members():
    """Extract with tarfile's "data" filter (no absolute paths, no members outside the folder, no
    device files): torchvision's extractor passes none."""
    import tarfile
    if not hasattr(tarfile, "data_filter"):
        yield
        return
    previous = tarfile.TarFile.extraction_filter
    tarfile.TarFile.extraction_filter = staticmethod(tarfile.data_filter)
    try:
        yield
    finally:
        tarfile.TarFile.extraction_filter = previous
