"""The motion self-consuming loop (paper §4 "Human motion"): one import for its pieces.

The loop lives in three modules: ``sims.motion.config`` (``Config`` and its presets),
``sims.motion.step`` (one generation as one jitted function) and ``sims.motion.run``
(setup, the chains on the shared runner, collection). This module re-exports their public
names so ``from sims.motion import loop; loop.run(loop.Config.quick())`` keeps working.
"""

from __future__ import annotations

from sims.motion.config import ARMS, Config
from sims.motion.run import (
    EXTRA_METRICS,
    FIG4_METRICS,
    Chain,
    MotionLoop,
    Setup,
    chains,
    corrector_drift,
    n_synth,
    prepare,
    real_reference,
    run,
    step_config,
)
from sims.motion.step import Counts, LoopData, Model, StepConfig, make_finetune, make_step

__all__ = [
    "ARMS",
    "EXTRA_METRICS",
    "FIG4_METRICS",
    "Chain",
    "Config",
    "Counts",
    "LoopData",
    "Model",
    "MotionLoop",
    "Setup",
    "StepConfig",
    "chains",
    "corrector_drift",
    "make_finetune",
    "make_step",
    "n_synth",
    "prepare",
    "real_reference",
    "run",
    "step_config",
]
