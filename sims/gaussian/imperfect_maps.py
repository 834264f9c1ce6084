"""Phase maps of imperfect correctors: (γ × bias), (λ × bias), (γ × shrink) and a ``replace``
panel, simulated on the tables engine beside the exact theory.

Paper: Def. 4.1 (π_γ), eq. (5), Thm 4.3 / Cor. 4.5 (more γ helps the *ideal* π_γ), Lemma A.7.
The correctors are the affine family of ``theory.operators.Affine``, acting on p_data =
p_θ* = N(0, I₂):

- *biased* π_γ (maps ``gamma_bias`` and ``lam_bias``): replacements from p_c = N(b·e₁, I),
  b in units of the data's standard deviation;
- *shrinking* (map ``gamma_shrink``): with probability γ/(1+γ), x ↦ m* + s(x − m*), a
  pointwise corrector whose fixed points are not the data (s < 1 contracts diversity as
  snapping to centroids does);
- ``replace`` (no real data): the same shrinking corrector decides whether the loop
  collapses (s small), explodes (s large) or neither.

Per cell the simulation (``sims.gaussian.engine.imperfect_batch``; the corrector's
parameters are traced per cell, so each map is one compilation) gives the stationary
moments of coordinate 0 (E μ, E μ², E σ² over the window t ≥ T/2, seed means with SEs),
the stationary W2, and divergence / collapse. Coordinate 0 of this loop is exactly the 1-D
loop of ``theory.chains.augment_stationary``, so the theory side is exact, not a bound:

- the *stationary error* e² = E(μ − m*)² + (E σ² − σ*²)² (the mean's MSE plus the squared
  offset of the expected variance), simulated and exact;
- the population fixed point θ∞ (``theory.imperfect.affine_fixed_point``): its mean offset
  μ∞ − m* (bias maps) or variance Σ∞ (shrink map), drawn as contours;
- the e²-optimal γ per bias (theory on a fine γ grid; simulation: the best grid column);
- the region where correction is worse than none: e²(γ) > e²(0) (theory: a contour;
  simulation: cells more than ``Z_WORSE`` standard errors above the γ = 0 cell).

The ``replace`` panel's theory is first order: the log-variance drifts by
log r + ψ((n−1)/2) + log(2/n) per generation and dimension, r = q + (1−q)s² the
population covariance rate (``theory.imperfect.affine_rates`` at λ = inf) and the rest the
uncorrected MLE's drift (``theory.chains.replace_log_det_drift``); it predicts collapse
where that sum is < 0 and growth where it is > 0 (the mixture's shape and the spread of the
kept and moved means are neglected).

``run_maps(cfg)`` returns every map as arrays (writes nothing); ``plot_maps`` draws the
figure; ``sims.imperfect`` wraps them into ``scsc imperfect``.
"""

from __future__ import annotations

import dataclasses
import math
import time
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

from sims.common.config import nonneg, option, positive_int, validate
from sims.gaussian import engine, phase
from sims.gaussian.cellstats import SWEEP_WORKFLOWS, StatsSpec
from theory import chains
from theory import gaussian as gauss
from theory import imperfect as imp
from theory import operators as ops

__all__ = [
    "MAPS",
    "Z_WORSE",
    "MapsConfig",
    "plot_maps",
    "run_maps",
    "simulate_cells",
    "theory_cells",
]

MAPS = ("gamma_bias", "lam_bias", "gamma_shrink", "replace")
Z_WORSE = 2.0  # simulated "worse than none": e²(γ) − e²(0) above this many SEs


@dataclasses.dataclass(frozen=True)
class MapsConfig:
    """The four maps (defaults: the committed figure, about a minute on 2 CPU cores).

    Attributes:
        n_real: real points n (the replace panel draws n points per generation).
        lam: λ of the (γ × bias) and (γ × shrink) maps.
        gamma: γ of the (λ × bias) map.
        n_gamma: γ grid: 0 plus n_gamma − 1 values log-spaced on [gamma_min, gamma_max].
        gamma_min, gamma_max: the log-spaced γ range.
        n_bias: bias grid, linear on [0, bias_max] (units of the data's std).
        bias_max: largest bias.
        n_lam: λ grid of the (λ × bias) map, log-spaced on [lam_min, lam_max].
        lam_min, lam_max: the λ range.
        n_shrink: shrink grid, linear on [0, shrink_max] (augment) and
            [replace_shrink_min, shrink_max] (replace).
        shrink_max: largest s.
        replace_shrink_min: smallest s of the replace panel.
        seeds: seeds per cell (seed s uses ``jax.random.key(seed + s)``, shared by all cells).
        generations: T (the stationary window is t ≥ T/2).
        seed: base seed.
        batch_size: cells per compiled batch (a map is padded to whole batches).
    """

    n_real: int = option(50, check=positive_int)
    lam: float = option(0.5, check=nonneg)
    gamma: float = option(1.0, check=nonneg)
    n_gamma: int = option(16, check=positive_int)
    gamma_min: float = 0.05
    gamma_max: float = 50.0
    n_bias: int = option(13, check=positive_int)
    bias_max: float = option(0.6, check=nonneg)
    n_lam: int = option(12, check=positive_int)
    lam_min: float = 0.1
    lam_max: float = 4.0
    n_shrink: int = option(13, check=positive_int)
    shrink_max: float = option(1.5, check=nonneg)
    replace_shrink_min: float = option(0.8, check=nonneg)
    seeds: int = option(32, check=phase.check_seed_count)
    generations: int = option(200, check=positive_int)
    seed: int = 0
    batch_size: int = option(256, check=positive_int)

    def __post_init__(self):
        validate(self)
        if self.n_gamma < 2:
            raise ValueError(f"n_gamma must be >= 2 (0 and one γ > 0); got {self.n_gamma}")
        if not 0 < self.gamma_min < self.gamma_max < math.inf:
            raise ValueError(
                f"need 0 < gamma_min < gamma_max < inf; got {self.gamma_min}, {self.gamma_max}"
            )
        if not 0 < self.lam_min < self.lam_max < math.inf:
            raise ValueError(
                f"need 0 < lam_min < lam_max < inf; got {self.lam_min}, {self.lam_max}"
            )
        if not self.replace_shrink_min < self.shrink_max:
            raise ValueError(
                f"need replace_shrink_min < shrink_max; got {self.replace_shrink_min}, "
                f"{self.shrink_max}"
            )
        if self.n_real < 3:
            raise ValueError(
                f"n_real must be >= 3 (d + 1 for the replace panel); got {self.n_real}"
            )
        self.spec("augment", max(self.lam, self.lam_max))

    @classmethod
    def smoke(cls, **overrides) -> MapsConfig:
        """Seconds long: 4 γ × 3 biases / λ / shrinks, 4 seeds, 20 generations."""
        base = {"n_gamma": 4, "n_bias": 3, "n_lam": 3, "n_shrink": 3, "seeds": 4}
        return cls(**{**base, "generations": 20, "batch_size": 64, **overrides})

    @classmethod
    def quick(cls, **overrides) -> MapsConfig:
        """A laptop in well under a minute: 10 γ × 7 biases / shrinks, 16 seeds."""
        base = {"n_gamma": 10, "n_bias": 7, "n_lam": 6, "n_shrink": 7, "seeds": 16}
        return cls(**{**base, "generations": 120, **overrides})

    def gammas(self) -> np.ndarray:
        logs = np.geomspace(self.gamma_min, self.gamma_max, self.n_gamma - 1)
        return np.concatenate([[0.0], logs])

    def biases(self) -> np.ndarray:
        return np.linspace(0.0, self.bias_max, self.n_bias)

    def lams(self) -> np.ndarray:
        return np.geomspace(self.lam_min, self.lam_max, self.n_lam)

    def shrinks(self) -> np.ndarray:
        return np.linspace(0.0, self.shrink_max, self.n_shrink)

    def replace_shrinks(self) -> np.ndarray:
        return np.linspace(self.replace_shrink_min, self.shrink_max, self.n_shrink)

    def spec(self, workflow: str, lam_max: float) -> StatsSpec:
        k_max = max(1, int(ops.n_synthetic(lam_max, self.n_real)))
        return StatsSpec(
            workflow=workflow,
            generations=self.generations,
            n_real=self.n_real,
            dim=2,
            k_max=k_max,
            displacement=0.0,
        )


def _corr(center0, shrink, replace_var) -> ops.Affine:
    """Per-cell ``Affine`` (leaves with a leading cell axis) on d = 2: centre c₀·e₁, shrink s,
    Σ₂ = replace_var·I, no noise on the kept points."""
    c0 = np.asarray(center0, float)
    n = c0.size
    center = np.stack([c0, np.zeros(n)], axis=1)
    cov = np.broadcast_to(np.asarray(replace_var, float), (n,))[:, None, None] * np.eye(2)[None]
    return ops.Affine(center, np.asarray(shrink, float), cov, np.zeros(n))


_WORKFLOWS = ("augment", "replace")  # the maps' workflows, one compilation for both


@partial(jax.jit, static_argnames=("spec", "layout"))
def _chunk(spec, layout, tabs, real, lams, gammas, corr, codes):
    return engine.imperfect_batch(spec, layout, tabs, real, lams, gammas, corr, codes)


def simulate_cells(cfg: MapsConfig, lams, gammas, corr: ops.Affine, workflows) -> dict:
    """Every cell (flat arrays; ``workflows``: one name of ``augment``/``replace`` per cell) on
    the tables engine, in batches of ``cfg.batch_size``: the workflow and the corrector are
    data, so every map shares one compilation. Returns NumPy arrays of the ``Moments``
    fields and the ``CellStats`` summaries the maps use."""
    spec = cfg.spec("augment", max(cfg.lam, cfg.lam_max))
    dtype = jnp.result_type(float)
    keys = jax.vmap(jax.random.key)(jnp.arange(cfg.seeds) + cfg.seed)
    layout = engine.layout_for(spec, workflows=_WORKFLOWS)
    codes = np.asarray(
        [SWEEP_WORKFLOWS.index(w) for w in np.broadcast_to(workflows, np.shape(lams))]
    )
    tabs, real = jax.jit(engine.tables, static_argnums=(0, 2, 3, 4))(
        layout, keys, spec.generations, spec.n_real, dtype
    )
    size = int(np.size(lams))
    batch = cfg.batch_size  # every map padded to the same batch: one compilation per spec
    total = -(-size // batch) * batch
    pad = lambda a: np.concatenate([a, np.repeat(a[-1:], total - size, axis=0)])  # noqa: E731
    flat = [pad(np.asarray(lams, float)), pad(np.asarray(gammas, float))]
    corr = jax.tree.map(pad, corr)
    codes = pad(codes)
    parts = []
    for lo in range(0, total, batch):
        sl = lambda a, lo=lo: jnp.asarray(a[lo : lo + batch], dtype)  # noqa: E731
        part_codes = jnp.asarray(codes[lo : lo + batch])
        corr_part = jax.tree.map(sl, corr)
        parts.append(
            _chunk(spec, layout, tabs, real, sl(flat[0]), sl(flat[1]), corr_part, part_codes)
        )
    stats = jax.tree.map(lambda *a: np.concatenate([np.asarray(x) for x in a])[:size], *parts)
    cells, moments = stats
    out = {k: getattr(moments, k) for k in moments._fields}
    out.update(
        w2=cells.stationary_w2_mean,
        diverged=cells.diverged_frac,
        collapsed=cells.collapsed_frac,
        log_det_final=cells.log_det_mean[:, -1],
        log_det_start=cells.log_det_mean[:, 0],
    )
    return out


def theory_cells(n: int, lams, gammas, center0, shrink, replace_var) -> dict:
    """Exact stationary (E μ, E μ², E σ², rate) of coordinate 0 (``augment_stationary``) and
    the population fixed point (``affine_fixed_point``) per cell, as NumPy arrays."""
    lams, gammas, center0, shrink, replace_var = np.broadcast_arrays(
        *(np.asarray(a, float) for a in (lams, gammas, center0, shrink, replace_var))
    )

    def one(lam, gamma, c, s, v):
        mean, msq, var, rate = chains.augment_stationary(
            n, lam, gamma, center=c, shrink=s, replace_var=v
        )
        params = ops.Affine(
            jnp.stack([c, jnp.zeros_like(c)]), s, v * jnp.eye(2, dtype=c.dtype), jnp.zeros_like(c)
        )
        fixed = imp.affine_fixed_point(lam, gamma, gauss.standard(2, c.dtype), params)
        w2 = gauss.w2(fixed, gauss.standard(2, c.dtype))
        return mean, msq, var, rate, fixed.mean[0], fixed.cov[0, 0], w2

    size = lams.size
    total = -(-size // _THEORY_BLOCK) * _THEORY_BLOCK  # one compilation for every map
    args = [
        jnp.asarray(np.concatenate([a.ravel(), np.repeat(a.ravel()[-1:], total - size)]))
        for a in (lams, gammas, center0, shrink, replace_var)
    ]
    vals = _theory_jit(n, one)(*args)
    names = ("mean", "msq", "var", "rate", "fixed_mean", "fixed_var", "fixed_w2")
    return {k: np.asarray(v)[:size].reshape(lams.shape) for k, v in zip(names, vals, strict=True)}


_THEORY_BLOCK = 1024
_JITTED: dict = {}


def _theory_jit(n: int, fn):
    """One jitted vmap per n (``theory_cells``'s inner function is rebuilt per call)."""
    if n not in _JITTED:
        _JITTED[n] = jax.jit(jax.vmap(fn))
    return _JITTED[n]


def _error(msq, var, msq_se=None, var_se=None):
    """e² = E μ² + (E σ² − 1)² and (simulation) its SE by the delta method."""
    e2 = msq + (var - 1.0) ** 2
    if msq_se is None:
        return e2
    return e2, np.sqrt(msq_se**2 + (2.0 * np.abs(var - 1.0) * var_se) ** 2)


def _fine_gammas() -> np.ndarray:
    return np.concatenate([[0.0], np.geomspace(1e-3, 1e3, 241)])


def _optimal_gamma_theory(n, lam, biases) -> np.ndarray:
    """Per bias: the γ minimising the exact e² on a fine grid (γ = 0 or up to 1e3)."""
    g = _fine_gammas()
    gg, bb = np.meshgrid(g, biases, indexing="ij")
    th = theory_cells(n, lam, gg, bb, 0.0, 1.0)
    e2 = _error(th["msq"], th["var"])
    return g[np.argmin(e2, axis=0)]


def _bias_map(cfg, lams, gammas, biases) -> dict:
    """One (λ or γ) × bias map of the biased π_γ, with its γ = 0 reference per λ."""
    ll, gg, bb = np.broadcast_arrays(lams[:, None], gammas[:, None], biases[None, :])
    # γ = 0 reference per row: no correction, the bias has no effect.
    ref_l, ref_g = lams, np.zeros_like(lams)
    flat_l = np.concatenate([ll.ravel(), ref_l])
    flat_g = np.concatenate([gg.ravel(), ref_g])
    flat_b = np.concatenate([bb.ravel(), np.zeros_like(ref_l)])
    sim = simulate_cells(cfg, flat_l, flat_g, _corr(flat_b, np.zeros_like(flat_b), 1.0), "augment")
    th = theory_cells(cfg.n_real, flat_l, flat_g, flat_b, 0.0, 1.0)
    return _assemble(sim, th, ll.shape, len(lams))


def _assemble(sim: dict, th: dict, shape, n_ref: int) -> dict:
    size = int(np.prod(shape))
    cut = lambda a: np.asarray(a[:size]).reshape(shape)  # noqa: E731
    ref = lambda a: np.asarray(a[size : size + n_ref])  # noqa: E731
    e2, e2_se = _error(sim["msq"], sim["var"], sim["msq_se"], sim["var_se"])
    te2 = _error(th["msq"], th["var"])
    out = {f"sim_{k}": cut(v) for k, v in sim.items()}
    out.update({f"theory_{k}": cut(v) for k, v in th.items()})
    out.update(sim_e2=cut(e2), sim_e2_se=cut(e2_se), theory_e2=cut(te2))
    out.update(sim_e2_none=ref(e2), sim_e2_none_se=ref(e2_se), theory_e2_none=ref(te2))
    z = (out["sim_e2"] - out["sim_e2_none"][:, None]) / np.sqrt(
        out["sim_e2_se"] ** 2 + out["sim_e2_none_se"][:, None] ** 2
    )
    out["sim_worse_z"] = z
    out["theory_worse"] = out["theory_e2"] > out["theory_e2_none"][:, None]
    return out


def run_maps(cfg: MapsConfig) -> dict:
    """Every map: a dict of map name → dict of arrays (axes in the map's order) + grids."""
    t0 = time.perf_counter()
    gammas, biases, lams, shrinks = cfg.gammas(), cfg.biases(), cfg.lams(), cfg.shrinks()
    out: dict = {"grids": {"gamma": gammas, "bias": biases, "lam": lams, "shrink": shrinks}}
    gb = _gamma_bias(cfg, gammas, biases)
    gb["theory_gamma_opt"] = _optimal_gamma_theory(cfg.n_real, cfg.lam, biases)
    out["gamma_bias"] = gb

    lb = _bias_map(cfg, lams, np.full_like(lams, cfg.gamma), biases)
    out["lam_bias"] = lb

    # (γ × shrink) at λ = cfg.lam, shrinking toward m* (Σ₂ = 0): rows s, columns γ.
    ss, gg = np.meshgrid(shrinks, gammas, indexing="ij")
    flat_s = np.concatenate([ss.ravel(), [0.0]])
    flat_g = np.concatenate([gg.ravel(), [0.0]])
    flat_l = np.full_like(flat_g, cfg.lam)
    sim = simulate_cells(cfg, flat_l, flat_g, _corr(0 * flat_s, flat_s, 0 * flat_s), "augment")
    th = theory_cells(cfg.n_real, flat_l, flat_g, 0.0, flat_s, 0.0)
    gs = _assemble(sim, th, ss.shape, 1)
    # one γ = 0 reference for every row (s does nothing at γ = 0)
    for k in ("sim_e2_none", "sim_e2_none_se", "theory_e2_none"):
        gs[k] = np.repeat(gs[k], len(shrinks))
    gs["sim_worse_z"] = (gs["sim_e2"] - gs["sim_e2_none"][:, None]) / np.sqrt(
        gs["sim_e2_se"] ** 2 + gs["sim_e2_none_se"][:, None] ** 2
    )
    gs["theory_worse"] = gs["theory_e2"] > gs["theory_e2_none"][:, None]
    out["gamma_shrink"] = gs

    # replace (no real data): rows s, columns γ.
    rs = cfg.replace_shrinks()
    ss, gg = np.meshgrid(rs, gammas, indexing="ij")
    corr = _corr(0 * ss.ravel(), ss.ravel(), 0 * ss.ravel())
    sim = simulate_cells(cfg, np.zeros(ss.size), gg.ravel(), corr, "replace")
    _, r = imp.affine_rates(math.inf, jnp.asarray(gg), jnp.asarray(ss))
    drift = float(chains.replace_log_det_drift(cfg.n_real, 2)) / 2.0
    out["replace"] = {
        "shrink": rs,
        **{f"sim_{k}": np.asarray(sim[k]).reshape(ss.shape) for k in sim},
        "theory_cov_rate": np.asarray(r),
        "theory_log_var_drift": np.log(np.asarray(r)) + drift,
        "mle_drift": drift,
    }
    out["seconds"] = time.perf_counter() - t0
    return out


def _gamma_bias(cfg, gammas, biases) -> dict:
    """(bias × γ) at λ = cfg.lam, with one γ = 0 reference shared by every bias row."""
    bb, gg = np.meshgrid(biases, gammas, indexing="ij")
    flat_b = np.concatenate([bb.ravel(), [0.0]])
    flat_g = np.concatenate([gg.ravel(), [0.0]])
    flat_l = np.full_like(flat_g, cfg.lam)
    sim = simulate_cells(cfg, flat_l, flat_g, _corr(flat_b, 0 * flat_b, 1.0), "augment")
    th = theory_cells(cfg.n_real, flat_l, flat_g, flat_b, 0.0, 1.0)
    out = _assemble(sim, th, bb.shape, 1)
    for k in ("sim_e2_none", "sim_e2_none_se", "theory_e2_none"):
        out[k] = np.repeat(out[k], len(biases))
    out["sim_worse_z"] = (out["sim_e2"] - out["sim_e2_none"][:, None]) / np.sqrt(
        out["sim_e2_se"] ** 2 + out["sim_e2_none_se"][:, None] ** 2
    )
    out["theory_worse"] = out["theory_e2"] > out["theory_e2_none"][:, None]
    out["sim_gamma_opt"] = gammas[np.argmin(out["sim_e2"], axis=1)]
    return out


def plot_maps(maps: dict, cfg: MapsConfig, path) -> None:
    """The figure: simulation and theory side by side for each augment map, the replace panel."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.colors import LogNorm

    g = maps["grids"]
    gam = g["gamma"]
    gx = np.where(gam > 0, gam, cfg.gamma_min / 3)  # γ = 0 drawn one step left of gamma_min
    fig, axes = plt.subplots(3, 3, figsize=(15, 13), constrained_layout=True)

    def pair(row, m, x, y, xlabel, ylabel, title, contour_key, contour_label, logx=True):
        vals = np.concatenate([m["sim_e2"].ravel(), m["theory_e2"].ravel()])
        vals = vals[np.isfinite(vals) & (vals > 0)]
        norm = LogNorm(vmin=vals.min(), vmax=vals.max())
        for j, (key, name) in enumerate(
            (("sim_e2", "simulation"), ("theory_e2", "theory (exact)"))
        ):
            ax = axes[row, j]
            im = ax.pcolormesh(x, y, m[key], norm=norm, shading="nearest", cmap="viridis")
            ax.contour(
                x, y, m["theory_worse"].astype(float), levels=[0.5], colors="w", linewidths=2
            )
            if key == "sim_e2":
                worse = m["sim_worse_z"] > Z_WORSE
                yy, xx = np.nonzero(worse)
                ax.scatter(
                    np.asarray(x)[xx],
                    np.asarray(y)[yy],
                    marker="x",
                    c="r",
                    s=14,
                    label=f"sim worse than none (> {Z_WORSE:g} SE)",
                )
            cs = ax.contour(x, y, m[contour_key], colors="0.8", linewidths=0.8, linestyles="dashed")
            ax.clabel(cs, fontsize=7, fmt="%.2g")
            if logx:
                ax.set_xscale("log")
                ax.set_xlim(np.asarray(x)[0] / 1.5, np.asarray(x)[-1] * 1.5)
            ax.set_xlabel(xlabel)
            ax.set_ylabel(ylabel)
            ax.set_title(
                f"{title}: {name}\nwhite: theory worse than none; dashed: {contour_label}",
                fontsize=9,
            )
            fig.colorbar(im, ax=ax, label="stationary e² = E(μ−m*)² + (Eσ²−σ*²)²")
        return axes[row, 0], axes[row, 1]

    gb = maps["gamma_bias"]
    a0, a1 = pair(
        0,
        gb,
        gx,
        g["bias"],
        "γ (γ = 0 at the left edge)",
        "bias b (data std)",
        f"(γ × bias), λ = {cfg.lam:g}, n = {cfg.n_real}",
        "theory_fixed_mean",
        "population μ∞ − m*",
    )
    for ax in (a0, a1):
        opt = np.where(gb["theory_gamma_opt"] > 0, gb["theory_gamma_opt"], cfg.gamma_min / 3)
        ax.plot(np.clip(opt, gx[0], gx[-1]), g["bias"], "m-", lw=2, label="e²-optimal γ (theory)")
        sopt = np.where(gb["sim_gamma_opt"] > 0, gb["sim_gamma_opt"], cfg.gamma_min / 3)
        ax.plot(sopt, g["bias"], "mo", ms=4, label="best γ column (sim)")
    a0.legend(fontsize=7, loc="upper right")
    # The MSE profile of a few bias rows, sim ± 2 SE and theory.
    ax = axes[0, 2]
    for i in np.linspace(0, len(g["bias"]) - 1, 4).astype(int):
        line = ax.plot(gx, gb["theory_e2"][i], "-", label=f"b = {g['bias'][i]:.2f}")[0]
        ax.errorbar(
            gx, gb["sim_e2"][i], 2 * gb["sim_e2_se"][i], fmt="o", ms=3, color=line.get_color()
        )
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("γ")
    ax.set_ylabel("stationary e²")
    ax.set_title("rows of the (γ × bias) map: theory (lines), sim ± 2 SE", fontsize=9)
    ax.legend(fontsize=7)

    lb = maps["lam_bias"]
    pair(
        1,
        lb,
        g["bias"],
        g["lam"],
        "bias b (data std)",
        "λ",
        f"(λ × bias), γ = {cfg.gamma:g}",
        "theory_fixed_mean",
        "population μ∞ − m*",
        logx=False,
    )
    for ax in axes[1, :2]:
        ax.set_yscale("log")
    # transpose: pair() draws m[key] with rows = y; lam_bias rows are λ, columns bias. OK.

    gs = maps["gamma_shrink"]
    pair(
        2,
        gs,
        gx,
        g["shrink"],
        "γ",
        "shrink s (toward m*)",
        f"(γ × shrink), λ = {cfg.lam:g}",
        "theory_fixed_var",
        "population Σ∞ (0,0)",
    )

    rp = maps["replace"]
    ax = axes[1, 2]
    fate = np.where(rp["sim_diverged"] > 0.5, 1.0, np.where(rp["sim_collapsed"] > 0.5, -1.0, 0.0))
    ax.pcolormesh(gx, rp["shrink"], fate, shading="nearest", cmap="coolwarm", vmin=-1, vmax=1)
    ax.contour(gx, rp["shrink"], rp["theory_log_var_drift"], levels=[0.0], colors="k", linewidths=2)
    ax.set_xscale("log")
    ax.set_xlabel("γ")
    ax.set_ylabel("shrink s")
    ax.set_title(
        "replace (no real data), shrinking corrector: blue collapsed, red exploded,\n"
        "white neither (sim, > half the seeds); black: first-order theory drift = 0",
        fontsize=9,
    )
    ax = axes[2, 2]
    mid = len(rp["shrink"]) // 2
    for i in (0, mid, len(rp["shrink"]) - 1):
        steps = cfg.generations
        pts = ax.plot(
            gx,
            (rp["sim_log_det_final"][i] - rp["sim_log_det_start"][i]) / (2 * steps),
            "o",
            ms=3,
            label=f"sim, s = {rp['shrink'][i]:.2f}",
        )[0]
        ax.plot(gx, rp["theory_log_var_drift"][i], "-", lw=1, color=pts.get_color())
    ax.axhline(0, color="k", lw=0.5)
    ax.set_xscale("log")
    ax.set_xlabel("γ")
    ax.set_ylabel("log-variance drift per generation")
    ax.set_title("replace: measured drift (points) vs first-order theory (lines)", fontsize=9)
    ax.legend(fontsize=7)
    fig.savefig(path, dpi=110)
    plt.close(fig)
