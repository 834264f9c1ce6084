"""theory/ imports only jax/numpy (and itself): no I/O, plotting or simulation code."""

import ast
from pathlib import Path

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


def test_theory_imports_only_jax_and_numpy():
    for path in (Path(__file__).parents[1] / "theory").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                names = [node.module]
            for name in names:
                assert name.split(".")[0] in ALLOWED, f"{path.name} imports {name}"
