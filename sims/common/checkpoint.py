"""Chain states of the learned-model loops, and their atomic checkpoint files.

A chain (one arm of one setting: a sequence of models θ_0, θ_1, … of Algorithm 1) is a
``ChainState``: the arrays that carry over between generations (network parameters,
optimiser state, the last generation's samples) plus the host-side record (generation
index, per-generation metrics, losses, diagnostics) and the hash of the run it belongs to.

On disk a state is one ``.npz`` written atomically (temp file, then rename): ``tree`` holds
the arrays serialised leaf by leaf with ``equinox.tree_serialise_leaves``, ``meta`` the
record as JSON, ``version`` the format version. Reading needs a template state of the same
structure (``like``); a file of another version, structure or leaf shape raises a
``ValueError`` naming the file, before any work starts.
"""

from __future__ import annotations

import dataclasses
import io
import json
from pathlib import Path
from typing import Any

import equinox as eqx
import jax
import numpy as np

from sims.common import results

__all__ = ["CHECKPOINT_VERSION", "ChainState", "load", "save"]

CHECKPOINT_VERSION = 2  # 1: the loops' leaf-index npz files before the shared runner


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class ChainState:
    """One chain after generation ``t``.

    Attributes:
        arrays: the pytree that carries over between generations, e.g.
            ``{"params": ..., "opt_state": ..., "samples": ...}`` (the pytree's leaves).
        t: generation index (0: the shared generation-0 model).
        history: JSON-able record, one list entry per generation (``metrics``,
            ``losses``, ``diag``, ...); static (not a leaf).
        run_hash: hash of the run configuration that produced the state.
    """

    arrays: Any
    t: int = dataclasses.field(default=0, metadata={"static": True})
    history: dict = dataclasses.field(default_factory=dict, metadata={"static": True})
    run_hash: str = dataclasses.field(default="", metadata={"static": True})

    def advance(self, arrays: Any, **entries: Any) -> ChainState:
        """The state one generation later: new arrays, each ``entries`` item appended to
        its history list."""
        history = {k: list(v) for k, v in self.history.items()}
        for k, v in entries.items():
            history.setdefault(k, []).append(v)
        return dataclasses.replace(self, arrays=arrays, t=self.t + 1, history=history)


def save(path: str | Path, state: ChainState) -> Path:
    """Writes ``state`` to ``path`` atomically (a killed writer leaves the old file)."""
    tree = io.BytesIO()
    eqx.tree_serialise_leaves(tree, state.arrays)
    meta = {"t": state.t, "history": state.history, "run_hash": state.run_hash}
    buf = io.BytesIO()
    np.savez(
        buf,
        tree=np.frombuffer(tree.getvalue(), np.uint8),
        meta=np.frombuffer(json.dumps(meta).encode(), np.uint8),
        version=np.asarray(CHECKPOINT_VERSION),
    )
    return results.write_bytes(path, buf.getvalue())


def load(path: str | Path, like: ChainState) -> ChainState:
    """Reads a state written by ``save``; ``like`` gives the arrays' structure and shapes.

    Raises:
        ValueError: the file is not a checkpoint of this version, or its arrays do not
            match ``like`` (another configuration's run).
    """
    path = Path(path)
    try:
        with np.load(path) as z:
            version = int(z["version"]) if "version" in z.files else 1
            if version == CHECKPOINT_VERSION:
                tree, meta = bytes(z["tree"]), json.loads(bytes(z["meta"]).decode())
    except (OSError, KeyError, ValueError, EOFError) as e:
        raise ValueError(f"{path}: not a readable checkpoint ({e})") from None
    if version != CHECKPOINT_VERSION:
        raise ValueError(
            f"{path}: checkpoint format {version}, this code reads {CHECKPOINT_VERSION}; "
            f"start a fresh run directory"
        )
    try:
        arrays = eqx.tree_deserialise_leaves(io.BytesIO(tree), like.arrays)
    except (RuntimeError, ValueError, TypeError) as e:  # equinox: shape/dtype/structure
        raise ValueError(f"{path}: does not match this run's arrays ({e})") from None
    return ChainState(arrays, meta["t"], meta["history"], meta["run_hash"])
