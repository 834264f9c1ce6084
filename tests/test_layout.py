"""Dependencies point one way: theory <- sims/common <- sims/<experiment>.

Read from the source (AST), over every ``.py`` file under each package, imports inside
functions included: ``theory/`` imports only jax/numpy (and itself): no I/O, plotting or
simulation code; ``sims/common`` imports no experiment; an experiment (``sims/gaussian``,
``sims/digits``, ``sims/motion``) imports no other experiment. Relative imports are resolved,
``from sims import digits`` counts as importing ``sims.digits``, and a deprecated old name
(``sims.loop``, see ``sims.MOVED``) counts as the module it now points to.
"""

import ast
from pathlib import Path

import pytest

from sims import MOVED

ROOT = Path(__file__).parents[1]
EXPERIMENTS = ("gaussian", "digits", "motion")
ALLOWED = {
    "jax",
    "jaxtyping",
    "numpy",
    "theory",
    "__future__",
    "dataclasses",
    "functools",
    "collections",
    "typing",
    "math",
    "warnings",  # deprecation messages of moved names
}


def imported_modules(path: Path, root: Path = ROOT):
    """Absolute dotted names a file imports: ``a.b`` for ``import a.b``; for ``from a import
    x`` both ``a`` and ``a.x`` (``x`` may be a module); relative imports resolved."""
    package = path.relative_to(root).parts[:-1]  # a/b/c.py and a/b/__init__.py: package a.b
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            yield from (a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = ".".join(package[: len(package) - node.level + 1]) if node.level else ""
            module = ".".join(p for p in (base, node.module) if p)
            yield module
            yield from (f"{module}.{a.name}" for a in node.names)


def canonical(name: str) -> str:
    """The module an old (deprecated) name imports today."""
    for old, new in MOVED.items():
        if name == old or name.startswith(old + "."):
            return new + name[len(old) :]
    return name


def experiment_of(name: str) -> str | None:
    parts = canonical(name).split(".")
    return parts[1] if len(parts) > 1 and parts[0] == "sims" and parts[1] in EXPERIMENTS else None


def sources(package: str) -> list[Path]:
    files = sorted((ROOT / package).rglob("*.py"))
    assert files, f"no sources under {package}"
    return files


def test_theory_imports_only_jax_and_numpy():
    for path in sources("theory"):
        for name in imported_modules(path):
            assert name.split(".")[0] in ALLOWED, f"{path.relative_to(ROOT)} imports {name}"


def test_common_imports_no_experiment_and_not_the_cli():
    for path in sources("sims/common"):
        for name in imported_modules(path):
            assert experiment_of(name) is None, f"{path.relative_to(ROOT)} imports {name}"
            assert canonical(name) != "sims.cli", f"{path.relative_to(ROOT)} imports the CLI"


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_experiments_never_import_each_other(experiment):
    for path in sources(f"sims/{experiment}"):
        for name in imported_modules(path):
            other = experiment_of(name)
            assert other in (None, experiment), f"{path.relative_to(ROOT)} imports {name}"


def test_import_reader_sees_every_spelling_of_a_sibling_import(tmp_path):
    """The reader itself: relative, ``from sims import``, lazy and deprecated-name imports are
    all seen (else the checks above could pass by not looking)."""
    src = tmp_path / "sims" / "motion" / "x.py"
    src.parent.mkdir(parents=True)
    src.write_text(
        "from ..digits import ddpm\n"
        "from sims import gaussian\n"
        "from . import humanoid\n"
        "def f():\n"
        "    import sims.loop\n"
    )
    names = set(imported_modules(src, root=tmp_path))
    assert {"sims.digits.ddpm", "sims.gaussian", "sims.motion.humanoid", "sims.loop"} <= names
    assert {experiment_of(n) for n in names} == {None, "digits", "gaussian", "motion"}
    assert canonical("sims.loop") == "sims.gaussian.loop"


def test_no_experiment_and_not_common_imports_the_imperfect_layer():
    """``sims.imperfect`` sits above the experiments (it runs the digits and motion
    correctors and reads the Gaussian maps): nothing below it imports it."""
    for package in ("sims/common", *(f"sims/{e}" for e in EXPERIMENTS)):
        for path in sources(package):
            for name in imported_modules(path):
                top = ".".join(canonical(name).split(".")[:2])
                assert top != "sims.imperfect", f"{path.relative_to(ROOT)} imports {name}"
