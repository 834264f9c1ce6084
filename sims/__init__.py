"""The experiments: ``sims.common`` (shared host code) and one package per family
(``sims.gaussian``, ``sims.digits``, ``sims.motion``), each with ``Config`` presets,
``run(cfg) -> Results`` and ``report(results, out)``.

Modules that moved keep working under their old names for one release, with a
``DeprecationWarning`` naming the new place (users script against them).
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys
import warnings

# old name -> new name (the house restructure, 2026-12)
MOVED = {
    "sims.results": "sims.common.results",
    "sims.diffusion": "sims.common.diffusion",
    "sims.loop": "sims.gaussian.loop",
    "sims.sweep": "sims.gaussian.sweep",
    "sims.gaussian_toy": "sims.gaussian.toy",
    "sims.phase_diagram": "sims.gaussian.phase",
    "sims.effective": "sims.gaussian.effective",
    "sims.plotting": "sims.gaussian.plotting",
    "sims.motion.gamma": "sims.motion.effective",
}


class _Alias(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Imports an old module name as the new module (the same object), with a warning."""

    def find_spec(self, name, path=None, target=None):
        if name in MOVED:
            return importlib.util.spec_from_loader(name, self)
        return None

    def create_module(self, spec):
        new = MOVED[spec.name]
        warnings.warn(
            f"{spec.name} moved to {new}; the old name will be removed",
            DeprecationWarning,
            stacklevel=3,
        )
        return importlib.import_module(new)

    def exec_module(self, module):
        pass


if not any(isinstance(f, _Alias) for f in sys.meta_path):
    sys.meta_path.append(_Alias())
