"""The report's document model: the blocks a section is made of (bench/report/document.py renders
them to Markdown and to HTML, escaping every text), and which figures a block may embed."""
from __future__ import annotations

import dataclasses
import os
from pathlib import Path

from bench.store import results


@dataclasses.dataclass(frozen=True)
class Heading:
    level: int
    text: str


@dataclasses.dataclass(frozen=True)
class Paragraph:
    text: str  # may hold **bold** and `code`
    quote: bool = False


@dataclasses.dataclass(frozen=True)
class Table:
    header: list[str]
    rows: list[list[str]]


@dataclasses.dataclass(frozen=True)
class Figure:
    path: Path | None  # None: the figure does not exist, and the caption says why
    caption: str
    width: int = 900  # display width in the HTML page, pixels


@dataclasses.dataclass(frozen=True)
class Gallery:
    """Figures side by side (one after another in Markdown)."""
    figures: list[Figure]


@dataclasses.dataclass(frozen=True)
class Details:
    summary: str
    text: str  # shown verbatim


Block = Heading | Paragraph | Table | Figure | Gallery | Details


PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def embeddable(path: Path, inside: Path) -> bool:
    """Whether the report may embed ``path``: a PNG that is a regular file, not a link, lying in
    the folder ``inside`` (a run's folder, or the report's own figures). A results folder may
    come from someone else, and a "figure" that links to a key file would be shared with it."""
    path, inside = Path(path), Path(inside)
    if path.is_symlink() or not path.is_file() or os.path.islink(path.parent):
        return False
    if path.stat().st_size > results.FIGURE_BYTES_LIMIT:
        return False
    if Path(os.path.realpath(path)).parent != Path(os.path.realpath(inside)):
        return False
    image = results.open_run_file(path, results.FIGURE_BYTES_LIMIT)
    if image is None:
        return False
    with image:
        return image.read(len(PNG_SIGNATURE)) == PNG_SIGNATURE
