"""The paper's Gaussian toy (Fig. 2) over many seeds, plus its two companion panels.

Paper: §4 "Gaussian toy", Fig. 2: p_data = p_θ* = N(0, I₂), n = 50 real points, λ = 0.5
(25 synthetic points per generation), 500 generations, γ ∈ {0, .01, .03, .1, .3, 1, 2, 5},
the accumulating ``toy`` schedule and the histogram corrector; metric W2(p_θt, N(0, I)).

Three panels share the γ grid:

1. ``histogram-reference``: the protocol as published (official rejection sampler);
2. ``histogram``: the same with the corrector sampled exactly;
3. ``augment`` + ``ideal``: the theorem's own setting, started away from θ* so the
   transient is visible, with the exact population rate and the eq. (7) bound overlaid.

Shape: ``Config`` (``smoke()``; the defaults are the paper's protocol and the committed
figure) → ``run(cfg, panels=True)`` → ``Results`` (writes nothing) → ``report(results,
out)`` (``gaussian_toy.json`` with config, provenance and each panel's curves, and
``fig2_gaussian_toy.png`` when the panels were run). ``seed_sweep(cfg)`` is one protocol's
sweep alone.
"""

from __future__ import annotations

import dataclasses
import time
from functools import partial
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from sims.common import deprecation, results
from sims.common.config import (
    in_open_unit,
    non_empty,
    nonneg,
    nonneg_int,
    nonneg_or_inf,
    option,
    positive,
    positive_int,
    seed_list,
    validate,
)
from sims.common.results import Results
from sims.gaussian import loop
from theory import bounds
from theory import gaussian as gauss
from theory import operators as ops

PAPER_GAMMAS = (0.0, 0.01, 0.03, 0.1, 0.3, 1.0, 2.0, 5.0)
FILES = ("gaussian_toy.json", "fig2_gaussian_toy.png")
BOUND_SEED = 12345  # key of the theorem panel's τ_n estimate (``bound_curves``)


@dataclasses.dataclass(frozen=True)
class Config:
    """One Gaussian-toy experiment (defaults: the paper's Fig. 2 protocol, 32 seeds).

    Attributes:
        gammas: correction strengths γ (inf allowed).
        generations: T.
        seeds: explicit integer seeds; seed s draws the real set and drives the loop. On the
            command line a count N (seeds 0..N-1) or a comma list.
        n_real: real points n.
        lam: synthetic ratio λ (⌊λn⌋ synthetic points per generation).
        dim: dimension d.
        workflow: the data workflow (``sims.gaussian.loop.LOOP_WORKFLOWS``).
        correction: the corrector (``theory.operators.CORRECTIONS``).
        init_offset: None starts from the MLE on the real set (the paper); a number starts
            from N(init_offset·e₁, init_cov_scale·I), away from θ*.
        init_cov_scale: covariance scale of the displaced start.
        delta: δ of Theorem 4.3 for the bound overlay (theorem panel only).
    """

    gammas: tuple[float, ...] = option(PAPER_GAMMAS, check=non_empty(nonneg_or_inf))
    generations: int = option(500, check=positive_int)
    seeds: tuple[int, ...] = option(
        tuple(range(32)), parse=seed_list, check=non_empty(nonneg_int), default_text="32"
    )
    n_real: int = option(50, check=positive_int)
    lam: float = option(0.5, check=nonneg)
    dim: int = option(2, check=positive_int)
    workflow: str = option("toy", choices=loop.LOOP_WORKFLOWS)
    correction: str = option("histogram-reference", choices=ops.CORRECTIONS)
    init_offset: float | None = None
    init_cov_scale: float = option(1.0, check=positive)
    delta: float = option(0.1, check=in_open_unit)

    def __post_init__(self):
        validate(self)
        self.spec()  # the synthetic count

    @classmethod
    def smoke(cls, **overrides) -> Config:
        """Seconds long: γ ∈ {0, 1}, 20 generations, seeds 0, 1, 2 (tests, notebooks)."""
        base = {"gammas": (0.0, 1.0), "generations": 20, "seeds": (0, 1, 2)}
        return cls(**{**base, **overrides})

    def spec(self) -> loop.LoopSpec:
        k = (
            self.n_real
            if self.workflow == "replace"
            else int(ops.n_synthetic(self.lam, self.n_real))
        )
        if k < 1:
            raise ValueError(
                f"lam * n_real must be >= 1 synthetic point; got {self.lam} * {self.n_real}"
            )
        return loop.LoopSpec(self.workflow, self.correction, self.generations, self.n_real, k)

    def theta0(self) -> gauss.Gaussian | None:
        if self.init_offset is None:
            return None
        mean = jnp.zeros(self.dim).at[0].set(self.init_offset)
        return gauss.Gaussian(mean, self.init_cov_scale * jnp.eye(self.dim))


def theorem_panel(base: Config) -> Config:
    """The theorem's own setting for ``base``'s γ grid: augment + ideal π_γ, displaced start."""
    return dataclasses.replace(
        base, workflow="augment", correction="ideal", init_offset=2.0, init_cov_scale=2.0
    )


def real_sets(keys: jax.Array, n: int, d: int) -> jax.Array:
    """The real set of each seed: n draws of p_data = N(0, I) from ``fold_in(key, 0)``."""
    target = gauss.standard(d)
    return jax.vmap(lambda k: gauss.sample(jax.random.fold_in(k, 0), target, n))(keys)


# LLVM at -O1 instead of -O3: compiling the sweep takes about as long as running the
# paper's whole protocol, and -O1 halved compilation (4.2 → 2.4 s) for ≤ 10% more run time
# (2-core CPU, benchmarks/gaussian_toy.py). Only this function is affected.
_COMPILER_OPTIONS = {"xla_backend_optimization_level": 1}


@partial(jax.jit, static_argnames=("spec", "dim"), compiler_options=_COMPILER_OPTIONS)
def _sweep(spec: loop.LoopSpec, seeds, lam, gammas, dim: int, theta0) -> loop.Trace:
    """Seed s: its real set from ``fold_in(key(s), 0)``, its loop from ``fold_in(key(s), 1)``.

    Key derivation and real sets are compiled with the sweep: done eagerly, their many small
    operations cost more than a second of dispatch and compilation in a fresh process.
    """
    keys = jax.vmap(jax.random.key)(seeds)
    reals = real_sets(keys, spec.n_real, dim)
    loop_keys = jax.vmap(lambda k: jax.random.fold_in(k, 1))(keys)
    return loop.sweep(spec, loop_keys, reals, lam[None], gammas, gauss.standard(dim), theta0)


def seed_sweep(cfg: Config) -> dict:
    """One protocol over its γ grid and seeds: arrays (γ × seeds × (T+1)) and summaries.

    Writes nothing. Keys: ``gammas``, ``w2``, ``param_err``, ``synth_ratio``,
    ``diverged_at`` (γ × seeds; −1 where the run stayed finite), ``seconds``, and the
    ``summarize`` bands of ``w2`` and ``param_err``.
    """
    start = time.perf_counter()
    trace = _sweep(
        cfg.spec(),
        np.asarray(cfg.seeds, np.uint32),
        np.asarray(cfg.lam, float),
        np.asarray(cfg.gammas, float),
        cfg.dim,
        cfg.theta0(),
    )
    trace = jax.tree.map(np.asarray, trace)
    seconds = time.perf_counter() - start
    take = lambda a: np.moveaxis(a[:, 0], 0, 1)  # (seeds, 1, γ, …) → (γ, seeds, …)  # noqa: E731
    out = {
        "gammas": list(cfg.gammas),
        "w2": take(trace.w2),
        "param_err": take(trace.param_err),
        "synth_ratio": trace.synth_ratio[0, 0, 0],
        "diverged_at": loop.diverged_at(take(trace.finite)),
        "seconds": seconds,
    }
    out.update(summarize(out["w2"], "w2"))
    out.update(summarize(out["param_err"], "param_err"))
    return out


def summarize(values: np.ndarray, name: str) -> dict[str, np.ndarray]:
    """Mean, median and 10–90% band over seeds (axis 1), ignoring diverged (NaN) runs.

    NumPy's nan-quantiles loop in Python over every other index, so they are used only
    when some value is NaN.
    """
    nan = np.isnan(values).any()
    mean, median, quantile = (
        (np.nanmean, np.nanmedian, np.nanquantile) if nan else (np.mean, np.median, np.quantile)
    )
    with np.errstate(all="ignore"):
        return {
            f"{name}_mean": mean(values, axis=1),
            f"{name}_median": median(values, axis=1),
            f"{name}_q10": quantile(values, 0.1, axis=1),
            f"{name}_q90": quantile(values, 0.9, axis=1),
        }


@partial(jax.jit, static_argnames=("spec", "num"))
def _deviations(spec, key, lam, gamma, theta0, target, num):
    def one(k):
        k_s, k_real, k_gen = jax.random.split(k, 3)
        s = jax.random.uniform(k_s, dtype=theta0.mean.dtype)
        theta = jax.tree.map(lambda a, b: b + s * (a - b), theta0, target)
        real = gauss.sample(k_real, target, spec.n_real)
        new = loop.simulate(spec, k_gen, real, lam, gamma, target, theta).final
        exact = gauss.population_map(theta, spec.k_max / spec.n_real, gamma, target)
        return gauss.param_distance(new, exact)

    return jax.vmap(one)(jax.random.split(key, num))


def one_step_deviations(key: jax.Array, cfg: Config, gamma: float, num: int) -> np.ndarray:
    """Samples ‖π_γG^n_λ(θ) − π_γG^∞_λ(θ)‖ for θ in U (Assumption 3's random quantity).

    Each draw is one ``augment`` generation with the ideal π_γ from θ on a fresh real set of
    n points; G^∞ is the exact population map with the same synthetic weight ⌊λn⌋/n. U is
    the segment {θ* + s(θ_0 − θ*) : s ∈ [0, 1]} from θ* to the displaced start, the region
    the iterates travel through. γ is traced: one compilation serves every γ.
    """
    spec = dataclasses.replace(cfg, workflow="augment", correction="ideal", generations=1).spec()
    target = gauss.standard(cfg.dim)
    theta0 = cfg.theta0() or target
    return np.asarray(_deviations(spec, key, cfg.lam, gamma, theta0, target, num))


def bound_curves(cfg: Config, key: jax.Array, num: int = 20000) -> dict[str, np.ndarray]:
    """Eq. (7) per γ with τ_n(δ/t) estimated as the (1 − δ/t)-quantile of one-step deviations.

    Also returns the exact noise-free transient ‖θ_0 − θ*‖·a^t, a = λ/((1+λ)(1+γ)) (the mean
    part of the population map contracts at exactly a), and τ_n(δ) per γ.
    """
    t = np.arange(cfg.generations + 1)
    theta0 = cfg.theta0() or gauss.standard(cfg.dim)
    err0 = float(gauss.param_distance(theta0, gauss.standard(cfg.dim)))
    levels = 1.0 - cfg.delta / np.maximum(t, 1)
    out = {"bound": [], "exact_transient": [], "tau": [], "err0": err0}
    for i, gamma in enumerate(cfg.gammas):
        dev = one_step_deviations(jax.random.fold_in(key, i), cfg, gamma, num)
        tau_t = np.quantile(dev, np.minimum(levels, 1.0 - 1.0 / num))
        out["tau"].append(float(np.quantile(dev, 1.0 - cfg.delta)))
        out["bound"].append(np.asarray(bounds.bound(t, cfg.lam, gamma, 0.0, tau_t, err0)))
        rate = float(gauss.population_contraction(cfg.lam, gamma))
        out["exact_transient"].append(err0 * rate**t)
    return {k: np.asarray(v) if isinstance(v, list) else v for k, v in out.items()}


def panel_configs(cfg: Config) -> dict[str, Config]:
    """The figure's three panels for ``cfg``'s γ grid and seeds (see the module doc)."""
    return {
        "reference": dataclasses.replace(cfg, workflow="toy", correction="histogram-reference"),
        "histogram": dataclasses.replace(cfg, workflow="toy", correction="histogram"),
        "theorem": theorem_panel(cfg),
    }


def run(cfg: Config, *, panels: bool = True) -> Results:
    """The configured protocol and (``panels``) the figure's three panels; writes nothing.

    Returns:
        ``Results`` whose ``data`` holds ``main`` (``seed_sweep(cfg)``) and, with
        ``panels``, ``panels``: name → that panel's ``seed_sweep`` (the same dict as
        ``main`` where the panel is the configured run), the theorem panel with its
        ``bound_curves`` (key ``BOUND_SEED``) merged in.
    """
    begin = time.perf_counter()
    main = seed_sweep(cfg)
    data = {"main": main}
    if panels:
        data["panels"] = {}
        for name, panel_cfg in panel_configs(cfg).items():
            res = main if panel_cfg == cfg else seed_sweep(panel_cfg)
            if name == "theorem":
                res = {**res, **bound_curves(panel_cfg, jax.random.key(BOUND_SEED))}
            data["panels"][name] = res
    return Results(cfg, data, time.perf_counter() - begin)


_W2 = ("w2_mean", "w2_median", "w2_q10", "w2_q90")
_ERR = ("param_err_mean", "param_err_median", "param_err_q10", "param_err_q90")
# What each panel plots, and so what its JSON keeps (the reference panel is the top level
# whenever the configured run is the paper's protocol).
_PANEL_KEYS = {
    "reference": (*_W2, "seconds"),
    "histogram": (*_W2, "seconds"),
    "theorem": (*_ERR, "bound", "exact_transient", "tau", "err0", "seconds"),
}


def report(res: Results, out: str | Path) -> dict:
    """Saves ``gaussian_toy.json`` (and, when ``run`` made the panels,
    ``fig2_gaussian_toy.png``) into ``out``; returns the JSON payload."""
    from sims.gaussian import plotting

    cfg, main, out = res.config, res.data["main"], Path(out)
    payload = {
        "gammas": main["gammas"],
        **{k: main[k] for k in _W2},
        "final_w2": {
            "mean": main["w2_mean"][:, -1],
            "median": main["w2_median"][:, -1],
        },
        "diverged_runs": (main["diverged_at"] >= 0).sum(axis=1),
        "synth_ratio": main["synth_ratio"],
        "seconds": main["seconds"],
        "config": results.config_dict(cfg),
        "provenance": results.provenance(cfg, cfg.seeds),
    }
    if "panels" in res.data:
        panels = res.data["panels"]
        panel_cfgs = panel_configs(cfg)
        payload["panels"] = {
            name: {"config": results.config_dict(panel_cfgs[name])}
            | ({"same_as": "top level"} if panel_cfgs[name] == cfg else {})
            | {k: p[k] for k in _PANEL_KEYS[name] if panel_cfgs[name] != cfg or k == "seconds"}
            for name, p in panels.items()
        }
        plotting.fig2(panels, out / FILES[1], payload["provenance"])
    results.write_json(out / FILES[0], payload, digits=5)
    return payload


def _main(cfg: Config) -> dict:
    return seed_sweep(cfg)


main = deprecation.alias(f"{__name__}.main", f"{__name__}.seed_sweep", _main)
