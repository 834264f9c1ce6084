"""The checkpointed chain runner shared by the learned-model loops (digits, motion).

Paper: Algorithm 1. A loop experiment is a set of *chains* (one per arm and setting), each
starting from a shared generation-0 model of its *group* and advanced one generation at a
time. The runner owns what every such experiment repeats: claiming the run directory
(``results.claim_run_dir``: a resumed run must have the same configuration), training or
loading each group's generation 0, starting or loading each chain, stepping every chain
generation by generation (generation t of all chains before t+1, so a partial run is
balanced), writing each new state atomically (``checkpoint.save``), the progress bar and
the timing. The experiment supplies the mathematics through a ``ChainExperiment``.

A resumed run equals an uninterrupted one because every generation's randomness is derived
from (seed, chain, t) by the experiment, never from the runner's order.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Protocol

from sims.common import checkpoint, results
from sims.common.checkpoint import ChainState

__all__ = ["Chain", "ChainExperiment", "run_chains"]


class Chain(Protocol):
    """What the runner needs of a chain: a file-safe ``name`` and the ``group`` whose
    generation-0 state it starts from."""

    name: str
    group: str


class ChainExperiment(Protocol):
    """The experiment-specific half of a loop (see ``sims.digits.loop``, ``sims.motion.run``)."""

    def chains(self) -> Sequence[Chain]:
        """Every chain of the run, in stepping order."""

    def template(self, group: str) -> ChainState:
        """A state with the arrays' structure and shapes (values unused), for loading."""

    def generation_zero(self, group: str) -> ChainState:
        """Trains and evaluates the group's generation-0 model (t = 0)."""

    def start(self, gen0: ChainState, chain: Chain) -> ChainState:
        """The chain's state before generation 1, from its group's generation 0."""

    def step(self, state: ChainState, chain: Chain) -> tuple[ChainState, dict[str, float]]:
        """Generation t → t+1 of one chain; returns the state and seconds per phase."""

    def status(self, state: ChainState) -> str:
        """A short progress-bar text for a freshly stepped state (e.g. its FID)."""


def run_chains(
    exp: ChainExperiment,
    cfg,
    ckpt_dir: Path | None = None,
    *,
    generations: int,
    resume: bool = False,
    progress: bool = True,
    desc: str = "chains",
    on_checkpoint: Callable[[str, int], None] | None = None,
) -> tuple[dict[str, ChainState], dict[str, ChainState], dict[str, float]]:
    """Runs (or resumes) every chain of ``exp`` to ``generations``.

    Args:
        exp: the experiment (its chains, generation 0 and step).
        cfg: the run's configuration (hashed into the run directory and every state).
        ckpt_dir: where ``<group>.npz`` and ``chains/<name>.npz`` are written after every
            generation (None: nothing is written).
        generations: generations after generation 0.
        resume: continue from the states in ``ckpt_dir``.
        progress: show a tqdm bar.
        desc: the bar's label.
        on_checkpoint: called with (chain name, generation) after each checkpoint (tests
            use it to interrupt a run).

    Returns:
        ``(states, gen0, timing)``: chain name → final state, group → generation-0 state,
        and seconds per phase (``gen0``, the experiment's phases, ``generations`` counts
        the steps taken in this call).
    """
    from tqdm.auto import tqdm

    ckpt_dir = Path(ckpt_dir) if ckpt_dir is not None else None
    run_hash = results.claim_run_dir(ckpt_dir, cfg, resume)
    chains = list(exp.chains())
    timing: dict[str, float] = {"gen0": 0.0, "generations": 0}

    def stored(rel: str) -> Path | None:
        return None if ckpt_dir is None else ckpt_dir / rel

    gen0: dict[str, ChainState] = {}
    for group in dict.fromkeys(c.group for c in chains):
        path = stored(f"{group}.npz")
        if path is not None and path.exists():
            gen0[group] = checkpoint.load(path, exp.template(group))
            continue
        t0 = time.perf_counter()
        st = exp.generation_zero(group)
        gen0[group] = ChainState(st.arrays, 0, st.history, run_hash)
        timing["gen0"] += time.perf_counter() - t0
        if path is not None:
            checkpoint.save(path, gen0[group])

    states: dict[str, ChainState] = {}
    for c in chains:
        path = stored(f"chains/{c.name}.npz")
        first = exp.start(gen0[c.group], c)
        states[c.name] = checkpoint.load(path, first) if path and path.exists() else first

    todo = sum(max(0, generations - st.t) for st in states.values())
    with tqdm(total=todo, desc=desc, disable=not progress, dynamic_ncols=True) as bar:
        for t in range(1, generations + 1):
            for c in chains:
                if states[c.name].t >= t:
                    continue
                st, phases = exp.step(states[c.name], c)
                states[c.name] = st
                for k, v in phases.items():
                    timing[k] = timing.get(k, 0.0) + v
                timing["generations"] += 1
                path = stored(f"chains/{c.name}.npz")
                if path is not None:
                    checkpoint.save(path, st)
                    if on_checkpoint is not None:
                        on_checkpoint(c.name, t)
                bar.set_postfix_str(f"gen {t} {c.name} {exp.status(st)}")
                bar.update(1)
    return states, gen0, timing
