"""The plot style every figure shares, and saving with provenance in the PNG metadata."""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

DPI = 110


def save(fig, path: str | Path, provenance: dict) -> Path:
    """Saves ``fig`` as ``path`` (parents created) with ``provenance`` as the PNG
    ``Description`` metadata (git SHA, config hash, versions), then closes it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=DPI, metadata={"Description": json.dumps(provenance, default=str)})
    plt.close(fig)
    return path
