"""The layout of results/ and safe writes into it. No torch here: report and check use it too."""
from __future__ import annotations

import errno
import json
import os
import re
import socket
import stat
import tempfile
from pathlib import Path
from typing import IO, Any, BinaryIO, Callable

from bench.errors import UnusablePath
from bench.lifetime import alive

REPO_ROOT = Path(__file__).resolve().parents[2]
# What the repository holds: the committed baselines (baselines/) and the published runs (paper/,
# studies/)
COMMITTED_RESULTS = REPO_ROOT / "results"
# A command's results folder unless --results says otherwise: results/ in the working directory
# (the repository's own when run from its root, a user's project's when run from there)
DEFAULT_RESULTS = Path("results")

# The columns that open every table a run writes (metrics.csv and each evaluation's file).
RUN_COLUMNS = ("run_id", "method", "dataset", "preset", "seed", "z_dim", "s_dim")
METRICS_COLUMNS = (*RUN_COLUMNS, "probe", "split", "accuracy")
SPLITS = ("train", "test")

CONFIG_FILE = "config.json"
ENV_FILE = "env.json"
LOSSES_FILE = "losses.csv"
METRICS_FILE = "metrics.csv"  # the latent probes (the paper's table); each evaluation names its own
EVALUATION_FILE = "evaluation.json"  # each evaluation's version and how it was computed
CHECKPOINT_FILE = "checkpoint.pt"
STATUS_FILE = "status.json"
ERROR_FILE = "error.log"
FIGURES_FILE = "figures.json"  # what drew each evaluation's figures
CURVES_FIGURE = "curves.png"  # the run's training curves; an evaluation names its own figures
# A published run (results/paper/, bench/launch/publish.py): what trained it, and its losses per epoch
TRAINING_FILE = "training.json"
EPOCH_LOSSES_FILE = "losses_per_epoch.csv"
COMPLETE, FAILED = "complete", "failed"


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_UMASK = _current_umask()


# A name read from a run's files (its dataset, preset, method) may become part of a file name
# only when it is plain: letters, digits, "_" and "-", not starting with "-".
PLAIN_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_-]{0,63}")


def is_plain_name(text: object) -> bool:
    return isinstance(text, str) and PLAIN_NAME.fullmatch(text) is not None


def runs_dir(results: Path) -> Path:
    return Path(results) / "runs"


def run_folders(results: Path) -> list[Path]:
    """The run folders of the results folder ``results`` (runs/*/), sorted; a runs folder or a
    run folder that is a symbolic link is an UnusablePath naming it: its records would be read
    from wherever it points."""
    folder = runs_dir(results)
    not_a_link(folder)
    found = sorted(path for path in folder.glob("*") if path.is_dir() or path.is_symlink())
    not_a_link(*found)
    return found


def write_atomic(path: Path, write: Callable[[Path], None]) -> None:
    """Call ``write(tmp)`` on a temporary file beside ``path``, then rename it over ``path``:
    a reader sees the old file or the new one, never half of one. A link at ``path`` is replaced,
    never written through."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.{_HOST}.{os.getpid()}.",
                                   suffix=TEMPORARY_SUFFIX)
    os.close(handle)
    try:
        write(Path(tmp))
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp (and some writers) create 0600; results are shared
        os.replace(tmp, path)
    except IsADirectoryError:  # a folder where bench writes a file (a results folder from someone)
        Path(tmp).unlink(missing_ok=True)
        raise UnusablePath(f"{path} is a folder, not a file bench wrote: bench replaces no "
                           "folder with a file") from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


TEMPORARY_SUFFIX = ".tmp"
# This machine, as a temporary's name carries it: a results folder on a shared filesystem is
# written from several hosts, and a pid means nothing on another host.
_HOST = re.sub(r"[^A-Za-z0-9-]", "-", socket.gethostname())[:40] or "host"


def remove_stale_temporaries(folder: Path) -> list[Path]:
    """Delete the temporaries of ``write_atomic`` in ``folder`` that this host's dead writers left
    (a process killed mid-write, SIGKILL or power loss, never reaches its clean-up); a live
    writer's, another host's and any other file are kept. Returns the deleted paths."""
    removed = []
    for tmp in Path(folder).glob(f".*{TEMPORARY_SUFFIX}"):
        parts = tmp.name.split(".")  # "", name..., host, pid, random, "tmp"
        if (len(parts) < 5 or parts[-4] != _HOST or not parts[-3].isdigit()
                or alive(int(parts[-3])) or not tmp.is_file() or tmp.is_symlink()):
            continue
        tmp.unlink(missing_ok=True)
        removed.append(tmp)
    return removed


def _link_refused(path) -> UnusablePath:
    return UnusablePath(f"{path} is a symbolic link: bench reads and writes nothing through one "
                        "in a results folder (a results folder may come from someone else)")


def not_a_link(*paths: Path) -> None:
    """Refuse (UnusablePath, naming it) any of ``paths`` that is a symbolic link: a link in a
    results folder would send the files bench writes there (a log appended to, a lock
    truncated) wherever it points."""
    for path in paths:
        if Path(path).is_symlink():
            raise _link_refused(path)


def no_links_in(folder: Path) -> None:
    """Refuse (UnusablePath) a folder that is a link or holds one anywhere inside (a run's
    folder, before bench writes into it)."""
    not_a_link(folder)
    for parent, names, files in os.walk(folder):
        for name in (*names, *files):
            if os.path.islink(os.path.join(parent, name)):
                raise _link_refused(os.path.join(parent, name))


def no_links_for(run_dirs: list[Path], *folders: Path) -> None:
    """Refuse (UnusablePath) a link among ``folders`` and the folders holding ``run_dirs``, or in
    any of ``run_dirs``: what every command checks before it writes into runs of a results folder
    (nothing is written yet)."""
    not_a_link(*folders, *dict.fromkeys(Path(run_dir).parent for run_dir in run_dirs))
    for run_dir in run_dirs:
        no_links_in(run_dir)


_OPEN_FLAGS = {"a": os.O_WRONLY | os.O_CREAT | os.O_APPEND, "w": os.O_WRONLY | os.O_CREAT | os.O_TRUNC,
               "r+": os.O_RDWR | os.O_CREAT}


def open_unlinked(path: Path, mode: str) -> IO[str]:
    """Open ``path`` as text for appending ("a"), writing anew ("w") or reading and writing ("r+";
    created when absent), never through a link, only as a regular file (a FIFO would block the
    writer) and only as the file's one name: a hard link to it elsewhere (st_nlink above 1) would
    have bench write into that other file, someone's victim. Each is an UnusablePath naming the
    file, checked on the opened descriptor before anything is truncated or written."""
    flags = _OPEN_FLAGS[mode] & ~os.O_TRUNC  # truncated below, once the file is known to be ours
    try:
        descriptor = os.open(path, flags | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, 0o666)
    except OSError as error:
        if os.path.islink(path):
            raise _link_refused(path) from None
        if error.errno in (errno.ENXIO, errno.EISDIR):  # a FIFO without a reader, a folder
            raise UnusablePath(f"{path} is not a regular file: bench writes only files it made") from None
        raise
    info = os.fstat(descriptor)
    if not stat.S_ISREG(info.st_mode):
        os.close(descriptor)
        raise UnusablePath(f"{path} is not a regular file: bench writes only files it made")
    if info.st_nlink > 1:
        os.close(descriptor)
        raise UnusablePath(f"{path} has {info.st_nlink} hard links: bench writes nothing into a "
                           "file that is also another file (a results folder may come from "
                           "someone else)")
    if mode == "w":
        os.ftruncate(descriptor, 0)
    os.set_blocking(descriptor, True)
    return os.fdopen(descriptor, mode, encoding="utf-8", errors="replace")


def write_text_atomic(path: Path, text: str) -> None:
    write_atomic(path, lambda tmp: tmp.write_text(text))


def write_json_atomic(path: Path, data: Any) -> None:
    write_text_atomic(path, json.dumps(data, indent=2, sort_keys=True) + "\n")


def write_table(path: Path, columns: tuple[str, ...], rows: list[dict]) -> None:
    """A CSV of ``rows`` (dicts holding at least ``columns``), written atomically."""
    lines = [",".join(columns)]
    lines += [",".join(str(row[column]) for column in columns) for row in rows]
    write_text_atomic(path, "\n".join(lines) + "\n")


# The most bench reads of a file in a results folder, by kind: a record or table of its own is
# far smaller (the largest JSON, a LORD run's figures.json, is kilobytes; a paper run's losses.csv
# about 10 MB); anything larger is not a file it wrote.
JSON_BYTES_LIMIT = 4 * 2**20
TABLE_BYTES_LIMIT = 256 * 2**20
FIGURE_BYTES_LIMIT = 32 * 2**20  # a PNG bench drew is a few hundred kilobytes


CHECKPOINT_BYTES_LIMIT = 4 * 2**30  # a checkpoint or weights file (a smoke run checkpoint: 2.5 MB)


def open_run_file(path: Path, limit: int) -> BinaryIO | None:
    """``path`` opened for reading in binary, as a file from someone else's results folder is
    opened: never through a symbolic link (O_NOFOLLOW), a regular file only (a FIFO would block,
    a device never end), of at most ``limit`` bytes; None when it is absent, or any of those. The
    one place bench opens a run's files (tests/test_run_file_reads.py holds every reader to it)."""
    try:
        descriptor = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return None
    info = os.fstat(descriptor)
    if not stat.S_ISREG(info.st_mode) or info.st_size > limit:
        os.close(descriptor)
        return None
    os.set_blocking(descriptor, True)
    return os.fdopen(descriptor, "rb")


def read_run_bytes(path: Path, limit: int) -> bytes | None:
    """The bytes of ``path`` (opened by ``open_run_file``: no link, a regular file, at most
    ``limit`` bytes, even where it grows while read), or None."""
    file = open_run_file(path, limit)
    if file is None:
        return None
    with file:
        data = file.read(limit + 1)
    return None if len(data) > limit else data


def read_run_file(path: Path, limit: int) -> str | None:
    """The text of ``path``, read as a file from someone else's results folder is read
    (``read_run_bytes``); None when it is absent, a link, not a regular file or over ``limit``
    bytes. Undecodable bytes are replaced."""
    data = read_run_bytes(path, limit)
    return None if data is None else data.decode("utf-8", errors="replace")


COMPRESSED_SUFFIX = ".gz"  # a published run's figure data: tsne.csv.gz (bench/launch/publish.py)


def table_file(run_dir: Path, name: str) -> Path | None:
    """Where the run's table ``name`` is: ``name`` itself, else its gzip-compressed copy
    ``name``.gz (as a published run holds a figure's data), else None. A link is returned as
    found: its reader refuses it by name (read_table_text gives None)."""
    for path in (Path(run_dir) / name, Path(run_dir) / f"{name}{COMPRESSED_SUFFIX}"):
        if path.is_file():
            return path
    return None


def read_table_text(path: Path, limit: int) -> str | None:
    """The text of a table file, gunzipped where ``path`` ends in .gz: at most ``limit`` bytes
    read and at most ``limit`` bytes unpacked (a small file may unpack to gigabytes), or None
    when it is unreadable, over the limit either way or not gzip."""
    if not str(path).endswith(COMPRESSED_SUFFIX):
        return read_run_file(path, limit)
    import zlib
    packed = read_run_bytes(path, limit)
    if packed is None:
        return None
    unpacker = zlib.decompressobj(wbits=zlib.MAX_WBITS | 16)  # a gzip stream
    try:
        data = unpacker.decompress(packed, limit + 1)
    except zlib.error:
        return None
    if len(data) > limit or unpacker.unconsumed_tail or not unpacker.eof:
        return None
    return data.decode("utf-8", errors="replace")


def not_readable(path: Path, kind: str, limit: int) -> str:
    """Why ``read_run_file(path, limit)`` gave nothing, for the error a caller raises: ``kind``
    says what the file should have been ("table", "record")."""
    return (f"{path}: not a {kind} bench wrote (a link, not a regular file, over "
            f"{limit // 2**20} MB" + (", or not gzip)" if str(path).endswith(COMPRESSED_SUFFIX)
                                      else ")"))


def read_json(path: Path) -> dict:
    """A JSON object from ``path`` (read by ``read_run_file``); {} when it is absent, unreadable,
    a link, not a regular file, too large, or not an object."""
    text = read_run_file(Path(path), JSON_BYTES_LIMIT)
    try:
        data = json.loads(text) if text is not None else None
    except (ValueError, RecursionError):
        return {}
    return data if isinstance(data, dict) else {}


def read_status(run_dir: Path) -> dict | None:
    """A run's status.json as an object, or None (absent, unreadable, or not an object)."""
    return read_json(Path(run_dir) / STATUS_FILE) or None


def is_complete(run_dir: Path) -> bool:
    status = read_status(run_dir)
    return status is not None and status.get("state") == COMPLETE
