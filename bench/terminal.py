"""Text read from a results folder, made safe to print: a failure reason or a method name from
someone else's folder could hold terminal escape sequences (which move the cursor, rewrite what is
shown or set the window title) or right-to-left overrides."""
from __future__ import annotations


def printable(text: object) -> str:
    """``text`` with every character that is not printable (control characters, escape sequences'
    ESC, line breaks, format characters) shown as its Python escape, e.g. ``\\x1b``."""
    text = str(text)
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in text)
