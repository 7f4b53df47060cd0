"""The report's blocks (bench/sections/blocks.py) rendered to Markdown (figures linked) and to one
self-contained HTML page (figures embedded), so the report says everything once. Every text is
escaped here: a value read from a results folder may hold markup."""
from __future__ import annotations

import base64
import html
import os
import re
from pathlib import Path
from urllib.parse import quote

from bench.sections.blocks import Block, Details, Figure, Gallery, Heading, Paragraph, Table
from bench.store import results


def _md(text: str) -> str:
    """Text for Markdown that renders as the same text: on one line, with no raw HTML (a value
    read from a run's files may hold ``<script>``; a renderer would pass it on) and no link or
    image (``![x](https://...)`` in a failed run's reason would load a remote image: a beacon).
    The report's own text uses bold and code spans only."""
    text = " ".join(str(text).splitlines()).replace("<", "&lt;").replace(">", "&gt;")
    return text.replace("](", "]\\(").replace("![", "!\\[")


def _cell_md(text: str) -> str:
    return _md(text).replace("|", "\\|")


def _fence(text: str) -> str:
    """A code fence longer than any run of backticks in ``text``, which therefore cannot close it."""
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    return "`" * max(3, longest + 1)


def to_markdown(blocks: list[Block], base: Path) -> str:
    """Markdown with figures linked relative to ``base`` (the folder the file is written to)."""
    out = []
    for block in _flatten(blocks):
        if isinstance(block, Heading):
            out.append(f"{'#' * block.level} {_md(block.text)}")
        elif isinstance(block, Paragraph):
            out.append(("> " if block.quote else "") + _md(block.text))
        elif isinstance(block, Table):
            out.append("| " + " | ".join(map(_cell_md, block.header)) + " |")
            out.append("|" + "---|" * len(block.header))
            out += ["| " + " | ".join(map(_cell_md, row)) + " |" for row in block.rows]
        elif isinstance(block, Figure):
            if block.path is not None:
                alt = _md(block.caption).replace("[", "(").replace("]", ")")
                target = quote(Path(os.path.relpath(block.path, base)).as_posix(), safe="/")
                out.append(f"![{alt}]({target})")
                out.append("")
            out.append(f"*{_md(block.caption)}*")
        elif isinstance(block, Details):
            fence = _fence(block.text)
            out.append(f"<details><summary>{html.escape(block.summary)}</summary>\n\n{fence}\n"
                       f"{block.text}\n{fence}\n</details>")
        out.append("")
    return "\n".join(out)


def _flatten(blocks: list[Block]) -> list[Block]:
    return [f for b in blocks for f in (b.figures if isinstance(b, Gallery) else [b])]


def _inline_html(text: str) -> str:
    text = html.escape(text, quote=False)
    text = re.sub(r"\*\*(.+?)\*\*", r"<b>\1</b>", text)
    return re.sub(r"`(.+?)`", r"<code>\1</code>", text)


def _image_data(path: Path) -> str:
    """The PNG at ``path`` as a data URI, read as a run's file is (no link, a regular file under
    the figures' cap: results.read_run_bytes); empty if it changed into anything else since the
    report chose to embed it."""
    data = results.read_run_bytes(Path(path), results.FIGURE_BYTES_LIMIT) or b""
    return "data:image/png;base64," + base64.b64encode(data).decode("ascii")


STYLE = """
body { font-family: system-ui, sans-serif; max-width: 1200px; margin: 2em auto; padding: 0 1em;
       color: #222; line-height: 1.45; }
table { border-collapse: collapse; margin: 1em 0; font-size: 0.92em; }
th, td { border: 1px solid #ccc; padding: 0.3em 0.6em; text-align: left; vertical-align: top; }
th { background: #f2f2f2; }
figure { margin: 1.2em 0; }
figure img { max-width: 100%; border: 1px solid #ddd; }
img.pixels { image-rendering: pixelated; }
figcaption { font-size: 0.9em; color: #444; margin-top: 0.3em; }
blockquote { border-left: 4px solid #e0a000; margin: 1em 0; padding: 0.2em 1em; background: #fff8e5; }
.missing { color: #a00; }
.gallery { display: flex; flex-wrap: wrap; gap: 1.2em; } .gallery figure { margin: 0.4em 0; }
details { margin: 0.4em 0; } pre { background: #f7f7f7; padding: 0.6em; overflow-x: auto; }
"""


def _figure_html(figure: Figure) -> str:
    if figure.path is None:
        return f'<p class="missing">{_inline_html(figure.caption)}</p>'
    pixels = ' class="pixels"' if figure.width < 600 else ""
    return (f'<figure><img{pixels} src="{_image_data(figure.path)}" style="width:{figure.width}px" '
            f'alt="{html.escape(figure.caption)}"><figcaption>{_inline_html(figure.caption)}'
            "</figcaption></figure>")


def to_html(blocks: list[Block], title: str) -> str:
    """One HTML page with every figure embedded as a data URI: it opens offline, alone."""
    out = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
           f"<title>{html.escape(title)}</title><style>{STYLE}</style></head><body>"]
    for block in blocks:
        if isinstance(block, Heading):
            out.append(f"<h{block.level}>{_inline_html(block.text)}</h{block.level}>")
        elif isinstance(block, Paragraph):
            text = f"<p>{_inline_html(block.text)}</p>"
            out.append(f"<blockquote>{text}</blockquote>" if block.quote else text)
        elif isinstance(block, Table):
            out.append("<table><tr>" + "".join(f"<th>{_inline_html(h)}</th>" for h in block.header)
                       + "</tr>")
            out += ["<tr>" + "".join(f"<td>{_inline_html(c)}</td>" for c in row) + "</tr>"
                    for row in block.rows]
            out.append("</table>")
        elif isinstance(block, Figure):
            out.append(_figure_html(block))
        elif isinstance(block, Gallery):
            out.append('<div class="gallery">' + "".join(map(_figure_html, block.figures)) + "</div>")
        elif isinstance(block, Details):
            out.append(f"<details><summary>{html.escape(block.summary)}</summary>"
                       f"<pre>{html.escape(block.text)}</pre></details>")
    out.append("</body></html>")
    return "\n".join(out)
