"""Griffe extension: ``a, b: description`` in an ``Args:`` section documents both a and b.

The project's docstrings sometimes document parameters that share a meaning on one line
(``quantile_a, quantile_b: vectorised quantile functions ...``). Google style as griffe
parses it wants one name per entry and would report one unknown parameter named
"quantile_a, quantile_b" (a warning, so ``mkdocs build --strict`` fails). This extension
rewrites such an entry, before the docstring is parsed, into one entry per name with the
same description, so the shorthand stays legal and the rendered page lists each name.
"""

from __future__ import annotations

import re

import griffe

SECTION = re.compile(r"^(\s*)(Args|Arguments|Parameters|Keyword Args|Keyword Arguments):\s*$")
SHARED = re.compile(r"^(\s+)(\*{0,2}\w+(?:\s*,\s*\*{0,2}\w+)+)(\s*\([^)]*\))?:(.*)$")


def split_shared_entries(text: str) -> str:
    """Rewrites every ``a, b: ...`` entry of the Args-like sections of a docstring."""
    lines = text.split("\n")
    out: list[str] = []
    i = 0
    section_indent = None
    while i < len(lines):
        line = lines[i]
        header = SECTION.match(line)
        if header:
            section_indent = len(header.group(1))
            out.append(line)
            i += 1
            continue
        indent = len(line) - len(line.lstrip())
        if section_indent is not None and line.strip() and indent <= section_indent:
            section_indent = None  # the section ended
        shared = SHARED.match(line) if section_indent is not None else None
        if shared is None:
            out.append(line)
            i += 1
            continue
        # The entry's continuation lines are the following, more indented ones.
        block_end = i + 1
        while block_end < len(lines) and (
            not lines[block_end].strip()
            or len(lines[block_end]) - len(lines[block_end].lstrip()) > indent
        ):
            block_end += 1
        while block_end > i + 1 and not lines[block_end - 1].strip():
            block_end -= 1
        lead, names, kind, rest = shared.groups()
        for name in re.split(r"\s*,\s*", names):
            out.append(f"{lead}{name}{kind or ''}:{rest}")
            out.extend(lines[i + 1 : block_end])
        i = block_end
    return "\n".join(out)


class SharedArgs(griffe.Extension):
    def on_object(self, *, obj, loader, **kwargs) -> None:
        if obj.docstring is not None and "," in obj.docstring.value:
            obj.docstring.value = split_shared_entries(obj.docstring.value)
