"""Every notebook runs in smoke mode and writes its figure (into a temporary directory)."""

import os
import re
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOKS = sorted((Path(__file__).parents[1] / "notebooks").glob("*.ipynb"))
FIGURES = {
    "fig2_gaussian_toy.ipynb": "fig2_gaussian_toy.png",
    "bounds.ipynb": "bounds.png",
    "phase_diagram.ipynb": "phase_diagram.png",
    "workflows.ipynb": "workflows.png",
    "fig8_digits.ipynb": "fig8_digits.png",
    "fig4_motion.ipynb": "fig4_motion.png",
    "imperfect_correctors.ipynb": "imperfect_correctors.png",
}
# Notebooks that are cfg -> run -> report only (the digits and motion notebooks join once
# their experiments have the same shape).
RUN_REPORT = {
    "fig2_gaussian_toy.ipynb",
    "bounds.ipynb",
    "phase_diagram.ipynb",
    "workflows.ipynb",
    "imperfect_correctors.ipynb",
}
_CLI = re.compile(r"\bsims\.cli\b|\bimport cli\b|\bsims\.\w+\.cli\b|\bcli as\b")


@pytest.mark.heavy
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_smoke(path, tmp_path, monkeypatch):
    monkeypatch.setenv("SCSC_SMOKE", "1")
    monkeypatch.setenv("SCSC_OUT", str(tmp_path))
    nb = nbformat.read(path, as_version=4)
    NotebookClient(
        nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    ).execute()
    assert (tmp_path / FIGURES[path.name]).stat().st_size > 10_000
    assert os.environ["SCSC_SMOKE"] == "1"


def test_every_notebook_has_a_figure():
    assert NOTEBOOKS and all(p.name in FIGURES for p in NOTEBOOKS)


@pytest.mark.parametrize("name", sorted(RUN_REPORT))
def test_notebook_calls_run_and_report_not_a_cli_module(name):
    nb = nbformat.read(Path(__file__).parents[1] / "notebooks" / name, as_version=4)
    code = "\n".join(c.source for c in nb.cells if c.cell_type == "code")
    assert not _CLI.search(code), name
    assert re.search(r"\.run\(", code) and re.search(r"\.report\(", code), name
    assert all(not c.get("outputs") for c in nb.cells if c.cell_type == "code"), "saved outputs"
