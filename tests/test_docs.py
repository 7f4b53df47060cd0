"""The README and docs/ render cleanly: no control characters (a formula once lost the backslash
of every \\frac, \\big and \\rVert to form-feed, backspace and carriage-return characters), and
every math block and inline formula is closed."""
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


def prose_paragraphs(text: str) -> list[str]:
    """The paragraphs outside fenced code blocks, with code spans removed."""
    text = re.sub(r"^(```+|~~~+).*?^\1[ \t]*$", "", text, flags=re.S | re.M)
    text = re.sub(r"(`+)(.+?)\1", "", text, flags=re.S)
    return re.split(r"\n[ \t]*\n", text)


def unclosed_math(paragraph: str) -> str | None:
    """What is left open in a paragraph: a display block ($$) or an inline formula ($)."""
    unescaped = re.sub(r"\\\$", "", paragraph)
    if unescaped.count("$$") % 2:
        return "$$"
    if unescaped.replace("$$", "").count("$") % 2:
        return "$"
    return None


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda p: p.name)
def test_no_control_characters(document):
    for number, line in enumerate(document.read_text(encoding="utf-8").splitlines(), 1):
        found = CONTROL.search(line)
        assert found is None, f"{document.name}:{number}: control character {found.group()!r}"


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda p: p.name)
def test_every_formula_is_closed(document):
    for paragraph in prose_paragraphs(document.read_text(encoding="utf-8")):
        assert unclosed_math(paragraph) is None, f"{document.name}: unclosed math in\n{paragraph}"


@pytest.mark.parametrize("text, left_open", [
    ("$$a$$ and $b$", None), ("the cost $5 alone", "$"), ("$$\\frac{1}{2}", "$$"),
    ("price \\$5 and `$x` in code", None), ("$\\mu$ and $\\sigma", "$")])
def test_the_checker_finds_what_it_claims(text, left_open):
    assert unclosed_math(prose_paragraphs(text)[0]) == left_open


def test_the_checker_finds_the_corruption_it_was_written_for():
    corrupted = "$$\\mathcal L = \x0crac{1}{2BP}$$"
    assert CONTROL.search(corrupted)



def without_code_blocks(text: str) -> str:
    return re.sub(r"^(```+|~~~+).*?^\1[ \t]*$", "", text, flags=re.S | re.M)


def anchors(text: str) -> set[str]:
    """The anchors GitHub makes for a document's headings: lower case, punctuation dropped
    (letters with accents kept), spaces as hyphens; a repeated heading gets -1, -2, ..."""
    found, seen = set(), {}
    for heading in re.findall(r"^#{1,6}[ \t]+(.+?)[ \t]*#*$", without_code_blocks(text), flags=re.M):
        slug = re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
        found.add(slug if slug not in seen else f"{slug}-{seen[slug]}")
        seen[slug] = seen.get(slug, 0) + 1
    return found


def section_links(text: str) -> list[tuple[str, str]]:
    """(file, anchor) of every link to a section: `(#anchor)` (file "") or `(other.md#anchor)`."""
    return re.findall(r"\]\(([^)\s#]*\.md|)#([^)\s]+)\)", without_code_blocks(text))


def test_the_slugs_and_links_are_found_as_github_makes_them():
    assert anchors("## Szabó et al. 2018\n## Deviations from the authors, method by method\n"
                   "## `bench check`: regression checks\n## Notes\n## Notes\n"
                   "```\n# a comment in code\n```\n") == {
        "szabó-et-al-2018", "deviations-from-the-authors-method-by-method",
        "bench-check-regression-checks", "notes", "notes-1"}
    assert section_links("see [a](#one), [b](usage.md#two), [c](https://x.org/#three) and "
                         "[d](usage.md)") == [("", "one"), ("usage.md", "two")]


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda p: p.name)
def test_every_link_to_a_section_finds_its_heading(document):
    """A link `(#anchor)` or `(other.md#anchor)` between the project's documents names a heading
    that exists (a renamed section once left links pointing nowhere)."""
    links = section_links(document.read_text(encoding="utf-8"))
    for target, anchor in links:
        linked = (document.parent / target).resolve() if target else document
        assert linked.exists(), f"{document.name}: links to {target}, which does not exist"
        assert anchor in anchors(linked.read_text(encoding="utf-8")), \
            f"{document.name}: no heading for {target}#{anchor}"


def test_the_encoding_batch_the_docs_give_is_the_codes():
    """README and docs/ give the batch the evaluations encode with as bench/metrics/batches.py
    has it (they once said 1,000 where a CPU takes 100); usage.md and evaluation.md give it."""
    from bench.metrics.batches import ACCELERATOR_BATCH, CPU_BATCH
    said = re.compile(r"([\d,]+) images at a time(?: on a\s+CPU)? \(([\d,]+) on a\s+GPU")
    found = {}
    for document in DOCUMENTS:
        text = without_code_blocks(document.read_text(encoding="utf-8"))
        assert not re.search(r"chunks of [\d,]+ images", text), document.name
        for cpu, gpu in said.findall(text):
            assert (int(cpu.replace(",", "")), int(gpu.replace(",", ""))) == \
                (CPU_BATCH, ACCELERATOR_BATCH), document.name
            found[document.name] = found.get(document.name, 0) + 1
    assert {"usage.md", "evaluation.md"} <= set(found)
