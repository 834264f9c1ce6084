"""Every notebook runs in smoke mode and writes its figure (into a temporary directory)."""

import os
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
}


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
