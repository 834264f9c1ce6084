"""No tracked file names a repository path, module or command that does not exist.

The README, the docs site (``docs/``), ``figures/README.md``, the notebooks' markdown and
every docstring and comment name files (``sims/gaussian/loop.py``, ``figures/bounds.png``),
modules and functions (``sims.gaussian.sweep.grid``) and CLI commands (``scsc phase``).
Files move (the house restructure moved most of ``sims/``); this test is what keeps those
names from rotting. ``mkdocs build --strict`` (``make docs``) checks the links between
docs pages and the API reference; this test checks everything else, also outside ``docs/``.

What counts as a reference:

* inside a code span (single or double backticks) or a fenced code block, a token that
  starts with a top-level folder of the repository (``theory/``, ``sims/``, ``docs/``,
  ``figures/``, ...) or is a top-level file (``Makefile``, ``pyproject.toml``, ...): the
  path must exist (``{png,json}`` alternatives are expanded, ``*`` must match something,
  a trailing ``/`` means a folder). Tokens with a placeholder (``<arm>``, ``...``) are
  skipped;
* a dotted name ``theory.x.y`` / ``sims.x.y.z``: the longest prefix must be a module of
  the tree and the next part a name defined at its top level (or a submodule). An old
  module name of the deprecation alias in ``sims/__init__.py`` (``MOVED``) passes on its
  own (``sims.loop``, to say that it still imports) but not as a prefix
  (``sims.loop.sweep``): documentation uses the new names;
* in Markdown, ``scsc WORD``: WORD must be a subcommand of ``sims.cli.parser()`` (nested
  ones count; docstrings also write ``scsc argv`` for "scsc with these arguments");
* in Markdown files, a relative link target ``[text](path)`` (the docs' images at
  ``assets/figures/`` are the files of ``figures/``, served by ``docs/_hooks/figures.py``).
"""

from __future__ import annotations

import argparse
import ast
import functools
import json
import re
import subprocess
from itertools import product
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TOP_DIRS = ("theory", "sims", "tests", "docs", "figures", "benchmarks", "notebooks", ".ci")
TOP_FILES = ("README.md", "Makefile", "pyproject.toml", "mkdocs.yml", ".gitignore")
PACKAGES = ("theory", "sims")

CODE_SPAN = re.compile(r"(`+)(?!`)(.+?)(?<!`)\1(?!`)", re.DOTALL)
FENCE = re.compile(r"^```[^\n]*\n(.*?)^```", re.DOTALL | re.MULTILINE)
MD_LINK = re.compile(r"\]\(([^)\s]+)\)")
DOTTED = re.compile(r"^(?:theory|sims)(?:\.[A-Za-z_]\w*)+$")
SPLIT = re.compile(r"[\s,;()\[\]\"'=]+")
PLACEHOLDER = re.compile(r"<[^>]*>|\.\.\.|…|\$|~")


def tracked_files() -> list[Path]:
    """Markdown, Python and notebooks that git tracks or would track (tree walk without git)."""
    suffixes = {".md", ".py", ".ipynb"}
    try:
        out = subprocess.run(
            ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.split("\n")
        paths = [ROOT / p for p in out if p]
    except (OSError, subprocess.CalledProcessError):
        skip = {".venv", ".git", "site", "out", "build", "dist"}
        paths = [p for p in ROOT.rglob("*") if not skip & set(p.relative_to(ROOT).parts)]
    return sorted(p for p in paths if p.suffix in suffixes and p.is_file())


def text_of(path: Path) -> str:
    """A file's text; for a notebook, its markdown cells only (code cells run in tests)."""
    text = path.read_text(encoding="utf-8")
    if path.suffix != ".ipynb":
        return text
    cells = json.loads(text).get("cells", [])
    return "\n\n".join(
        "".join(c.get("source", [])) for c in cells if c.get("cell_type") == "markdown"
    )


def code_snippets(text: str, markdown: bool) -> list[str]:
    """Code spans (and, in Markdown, fenced blocks) of a text."""
    snippets = []
    if markdown:
        snippets += FENCE.findall(text)
        text = FENCE.sub("", text)
    snippets += [m.group(2) for m in CODE_SPAN.finditer(text)]
    return snippets


def expand_braces(token: str) -> list[str]:
    """``a.{png,json}`` -> ``a.png``, ``a.json`` (any number of brace groups)."""
    parts = re.split(r"\{([^{}]*)\}", token)
    choices = [[p] if i % 2 == 0 else p.split(",") for i, p in enumerate(parts)]
    return ["".join(c) for c in product(*choices)]


def path_exists(token: str) -> bool:
    for candidate in expand_braces(token):
        if "*" in candidate or "?" in candidate:
            if not any(ROOT.glob(candidate)):
                return False
        elif candidate.endswith("/"):
            if not (ROOT / candidate).is_dir():
                return False
        elif not (ROOT / candidate).exists():
            return False
    return True


@functools.cache
def top_level_names(module_file: Path) -> frozenset[str]:
    """Names defined at a module's top level (functions, classes, assignments, imports)."""
    names = set()
    for node in ast.parse(module_file.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Assign):
            names |= {t.id for t in node.targets if isinstance(t, ast.Name)}
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names.add(node.target.id)
        elif isinstance(node, ast.Import | ast.ImportFrom):
            names |= {(a.asname or a.name).split(".")[0] for a in node.names}
    return frozenset(names)


def module_file(parts: list[str]) -> Path | None:
    base = ROOT.joinpath(*parts)
    if (base / "__init__.py").is_file():
        return base / "__init__.py"
    if base.with_suffix(".py").is_file():
        return base.with_suffix(".py")
    return None


@functools.cache
def moved_names() -> frozenset[str]:
    """The old module names that ``sims/__init__.py`` still imports (keys of ``MOVED``)."""
    for node in ast.parse((ROOT / "sims" / "__init__.py").read_text()).body:
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "MOVED" for t in node.targets
        ):
            return frozenset(ast.literal_eval(node.value))
    return frozenset()


def dotted_exists(name: str) -> bool:
    """``sims.gaussian.sweep.grid``: longest module prefix exists, next part defined in it."""
    if name in moved_names():
        return True
    parts = name.split(".")
    for i in range(len(parts), 0, -1):
        found = module_file(parts[:i])
        if found is None:
            continue
        if i == len(parts):
            return True
        # Only the top package matched: ``sims.MOVED`` is a name in ``sims/__init__.py``,
        # an old module name such as ``sims.loop.sweep`` is not.
        return parts[i] in top_level_names(found)
    return False


@functools.cache
def cli_commands() -> frozenset[str]:
    """Every subcommand name of the real ``scsc`` parser, nested ones included."""
    from sims import cli  # the parser itself, however its subcommands are generated

    def names(parser: argparse.ArgumentParser) -> set[str]:
        found = set()
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, sub in action.choices.items():
                    found |= {name} | names(sub)
        return found

    return frozenset(names(cli.parser()))


def broken_references(text: str, markdown: bool, source: Path | None = None) -> list[str]:
    """Every reference in ``text`` that does not resolve (see the module docstring)."""
    broken = []
    for snippet in code_snippets(text, markdown):
        # Commas inside ``{png,json}`` belong to the path, not between tokens.
        snippet = re.sub(r"\{[^{}\s]*\}", lambda m: m.group(0).replace(",", "\0"), snippet)
        tokens = [t.rstrip(".:!?").replace("\0", ",") for t in SPLIT.split(snippet) if t]
        for i, token in enumerate(tokens):
            if markdown and token == "scsc" and i + 1 < len(tokens):
                word = tokens[i + 1]
                if re.fullmatch(r"[a-z][\w-]*", word) and word not in cli_commands():
                    broken.append(f"scsc {word}")
            if PLACEHOLDER.search(token):
                continue
            is_path = token in TOP_FILES or (token.split("/")[0] in TOP_DIRS and "/" in token)
            if DOTTED.match(token):
                if not dotted_exists(token):
                    broken.append(token)
            elif is_path and not path_exists(token):
                broken.append(token)
    if markdown and source is not None:
        for target in MD_LINK.findall(text):
            target = target.split("#")[0]
            if not target or re.match(r"^[a-z]+:", target) or target.startswith("/"):
                continue
            resolved = (source.parent / target).resolve()
            served = ROOT / "docs" / "assets" / "figures"  # docs/_hooks/figures.py
            if resolved.parent == served:
                resolved = ROOT / "figures" / resolved.name
            if not resolved.exists():
                broken.append(f"link {target}")
    return broken


# Known stale references in files this test's author could not edit, each with its fix.
# An entry that is no longer broken fails ``test_known_broken_references_are_still_broken``:
# delete it then.
KNOWN_BROKEN: set[str] = set()


def all_broken_references() -> list[str]:
    problems = []
    for path in tracked_files():
        if path == Path(__file__).resolve():
            continue
        markdown = path.suffix in {".md", ".ipynb"}
        for ref in broken_references(text_of(path), markdown, path):
            problems.append(f"{path.relative_to(ROOT)}: {ref}")
    return problems


def test_every_referenced_path_module_and_command_exists():
    problems = [p for p in all_broken_references() if p not in KNOWN_BROKEN]
    assert not problems, "references to things that do not exist:\n" + "\n".join(problems)


def test_known_broken_references_are_still_broken():
    fixed = KNOWN_BROKEN - set(all_broken_references())
    assert not fixed, f"fixed, delete from KNOWN_BROKEN: {sorted(fixed)}"


@pytest.mark.parametrize(
    "text",
    [
        "see `sims/gaussian/nope.py`",
        "see ``figures/missing.png``",
        "`figures/bounds.{png,gif}`",
        "`sims.gaussian.loop.no_such_function`",
        "`sims.loop.sweep` (an old module name as a prefix)",
        "`sims.gaussian_toy.main`",
        "`tests/theory/test_*.nope`",
        "run `scsc no-such-command --out x`",
        "```bash\npython benchmarks/not_there.py\n```",
        "[the page](docs/not_a_page.md)",
    ],
)
def test_a_planted_broken_reference_is_reported(text):
    assert broken_references(text, markdown=True, source=ROOT / "README.md")


@pytest.mark.parametrize(
    "text",
    [
        "`sims/gaussian/loop.py`, ``figures/bounds.{png,json}``, `tests/theory/test_*.py`",
        "`sims.gaussian.sweep.grid`, `theory.bounds`, `theory.effective_gamma.effective_gamma`",
        "`scsc phase --out out/phase`, `out/x.json`, `chains/<arm>_lam<λ>.npz`",
        "`sims.loop` and `sims.motion.gamma` still import (old names), `sims.MOVED`",
        "[design](docs/design.md)",
    ],
)
def test_existing_references_pass(text):
    assert broken_references(text, markdown=True, source=ROOT / "README.md") == []


def test_figures_readme_lists_every_file_in_figures():
    """``figures/README.md`` names every file in ``figures/`` and nothing that is not there."""
    readme = (ROOT / "figures" / "README.md").read_text(encoding="utf-8")
    named = set()
    for snippet in code_snippets(readme, markdown=True):
        for token in SPLIT.split(snippet):
            if re.fullmatch(r"[\w.-]+\.(png|gif|json|npz)", token):
                named.add(token)
    present = {p.name for p in (ROOT / "figures").iterdir() if p.name != "README.md"}
    # A name in a "copy of the run's results.json" note is the run's file, not ours.
    run_files = {"results.json", "samples.npz", "effective_gamma.json"}
    assert present - named == set(), f"not listed in figures/README.md: {present - named}"
    missing = named - present - run_files
    assert not missing, f"listed in figures/README.md but not in figures/: {missing}"


def test_every_public_module_has_an_api_page():
    """Each public module of ``theory`` and ``sims`` is rendered by some ``::: module``."""
    directives = set()
    for page in (ROOT / "docs").rglob("*.md"):
        directives |= set(re.findall(r"^::: ([\w.]+)", page.read_text(), re.MULTILINE))
    modules = set()
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            parts = path.relative_to(ROOT).with_suffix("").parts
            if any(p.startswith("_") for p in parts):
                continue  # private modules and __init__ (packages are not pages)
            modules.add(".".join(parts))
    missing = sorted(modules - directives)
    assert not missing, (
        f"no API page for {missing}: add docs/api/<package>/<module>.md with "
        "'::: <module>' and list it in the nav of mkdocs.yml"
    )
    stale = sorted(d for d in directives - modules if d.split(".")[0] in PACKAGES)
    assert not stale, f"API pages for modules that do not exist: {stale}"
