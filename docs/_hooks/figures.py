"""MkDocs hook: serve the committed figures at ``assets/figures/`` without copying them.

The results pages show the PNGs that ``make figures`` writes to ``figures/``. Copying them
into ``docs/`` would keep two versions of every figure in the repository; this hook adds
``figures/*.png`` and ``figures/*.gif`` to the site's files instead, so a page links
``../assets/figures/phase_diagram.png`` and strict mode still checks that the file exists.
"""

from __future__ import annotations

from pathlib import Path

from mkdocs.structure.files import File

FIGURES = Path(__file__).resolve().parents[2] / "figures"


def on_files(files, config):
    for path in sorted(FIGURES.glob("*")):
        if path.suffix in {".png", ".gif"}:
            files.append(
                File.generated(config, f"assets/figures/{path.name}", abs_src_path=str(path))
            )
    return files
