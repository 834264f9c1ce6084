"""The misspecified family on the phase grid: the Gaussian fitted to bounded data, simulated on
the tables engine over the phase diagram's default λ × γ grid, beside λ*(γ, κ).

Paper: Assumption 4.2, Thm 4.3 (stable when λ(1+κ) < (1+γ)/(2+γ)), Lemma A.7 (the exact rate
λ/((1+λ)(1+γ)) of the well-specified map). p_data is U[−√3, √3] or a Laplace truncated to
[−3, 3] (``theory.constants.EXAMPLE_KINDS``, whose κ = εL/α ``theory.constants.
gaussian_on_bounded_data`` computes), so θ* = (m*, v*) ≠ p_data. The engine
(``sims.gaussian.engine.batch``) needs only each seed's real set as (mean, scatter): those
are computed from n draws of the bounded law (``theory.imperfect.bounded_data_sample``),
standardised by θ* so that θ* = N(0, 1) is the engine's target (the Gaussian MLE is affine
equivariant, so stability and rates are those of the original coordinates; κ is stated in
the original ones). Everything else (the synthetic draws from p_θ, the replacements from
p_θ*) is the well-specified loop's law, d = 1.

``run_map(cfg)`` returns per data law the ``CellStats`` maps, κ and λ*(γ, κ) (writes
nothing); ``plot_map`` draws, per law, the simulated rate beside the exact one with the
theorem's threshold at that κ (and at κ = 0) overlaid, and the divergence map.
"""

from __future__ import annotations

import dataclasses
import math
import time
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

from sims.common.config import non_empty, option, positive_int, validate
from sims.gaussian import engine, phase
from sims.gaussian.cellstats import StatsSpec
from theory import bounds, constants
from theory import imperfect as imp
from theory import operators as ops

__all__ = ["MisspecifiedMapConfig", "plot_map", "run_map"]


@dataclasses.dataclass(frozen=True)
class MisspecifiedMapConfig:
    """One misspecified phase map per data law (defaults: ``scsc phase``'s default grid).

    Attributes:
        kinds: data laws (``theory.constants.EXAMPLE_KINDS``).
        n_lam: λ grid, linear on [0, lam_max].
        lam_max: largest λ.
        n_gamma: γ grid: 0 plus n_gamma − 1 values log-spaced on [gamma_min, gamma_max].
        gamma_min, gamma_max: the log-spaced γ range.
        seeds: seeds per cell.
        generations: T.
        n_real: real points n.
        displacement: ‖μ₀ − real mean‖ of the start (units of √v*), so the transient shows.
        batch_size: cells per compiled batch.
        seed: base seed (data law i uses seed + 1000·i).
    """

    kinds: tuple[str, ...] = option(
        constants.EXAMPLE_KINDS, choices=constants.EXAMPLE_KINDS, check=non_empty()
    )
    n_lam: int = option(64, check=positive_int)
    lam_max: float = 2.0
    n_gamma: int = option(64, check=positive_int)
    gamma_min: float = 0.01
    gamma_max: float = 10.0
    seeds: int = option(32, check=phase.check_seed_count)
    generations: int = option(300, check=positive_int)
    n_real: int = option(50, check=positive_int)
    displacement: float = 5.0
    batch_size: int = option(1024, check=positive_int)
    seed: int = 0

    def __post_init__(self):
        validate(self)
        if self.n_gamma < 2:
            raise ValueError(f"n_gamma must be >= 2; got {self.n_gamma}")
        if not 0 < self.gamma_min < self.gamma_max < math.inf:
            raise ValueError("need 0 < gamma_min < gamma_max < inf")
        if not 0 < self.lam_max < math.inf:
            raise ValueError(f"lam_max must be finite and > 0; got {self.lam_max}")
        self.spec()

    @classmethod
    def smoke(cls, **overrides) -> MisspecifiedMapConfig:
        base = {"n_lam": 5, "n_gamma": 4, "seeds": 4, "generations": 30, "batch_size": 32}
        return cls(**{**base, **overrides})

    def lams(self) -> np.ndarray:
        return phase.lam_grid(self.lam_max, self.n_lam)

    def gammas(self) -> np.ndarray:
        return phase.gamma_grid(self.gamma_min, self.gamma_max, self.n_gamma)

    def spec(self) -> StatsSpec:
        k_max = max(1, int(ops.n_synthetic(self.lam_max, self.n_real)))
        return StatsSpec(
            "augment",
            generations=self.generations,
            n_real=self.n_real,
            dim=1,
            k_max=k_max,
            displacement=self.displacement,
        )


@partial(jax.jit, static_argnames=("spec", "layout"))
def _chunk(spec, layout, tabs, real, lams, gammas):
    return engine.batch(spec, layout, tabs, real, lams, gammas)


def _bounded_real(key, kind: str, seeds: int, n: int):
    """(mean [S, 1], scatter [S, 1, 1]) of n standardised draws of the bounded law per seed."""
    m_star, v_star = imp.bounded_data_theta_star(kind)
    x = imp.bounded_data_sample(key, kind, (seeds, n, 1))
    z = (x - m_star) / math.sqrt(v_star)
    mean = jnp.mean(z, axis=1)
    dev = z - mean[:, None, :]
    return mean, jnp.einsum("sni,snj->sij", dev, dev)


def run_map(cfg: MisspecifiedMapConfig) -> dict:
    """Per data law: ``CellStats`` fields shaped (n_lam, n_gamma, ...), κ, λ*(γ, κ)."""
    spec = cfg.spec()
    layout = engine.layout_for(spec)
    dtype = jnp.result_type(float)
    lams, gammas = cfg.lams(), cfg.gammas()
    ll, gg = np.meshgrid(lams, gammas, indexing="ij")
    size = ll.size
    batch = min(cfg.batch_size, size)
    total = -(-size // batch) * batch
    flat = [np.concatenate([a.ravel(), np.repeat(a.ravel()[-1:], total - size)]) for a in (ll, gg)]
    out: dict = {"lams": lams, "gammas": gammas, "kinds": {}}
    for i, kind in enumerate(cfg.kinds):
        t0 = time.perf_counter()
        key = jax.random.key(cfg.seed + 1000 * i)
        k_data, k_loop = jax.random.split(key)
        keys = jax.random.split(k_loop, cfg.seeds)
        tabs, _ = jax.jit(engine.tables, static_argnums=(0, 2, 3, 4))(
            layout, keys, spec.generations, spec.n_real, dtype
        )
        real = _bounded_real(k_data, kind, cfg.seeds, cfg.n_real)
        real = jax.tree.map(lambda a: a.astype(dtype), real)
        parts = [
            _chunk(
                spec,
                layout,
                tabs,
                real,
                jnp.asarray(flat[0][lo : lo + batch], dtype),
                jnp.asarray(flat[1][lo : lo + batch], dtype),
            )
            for lo in range(0, total, batch)
        ]
        cells = jax.tree.map(lambda *a: np.concatenate([np.asarray(x) for x in a])[:size], *parts)
        stats = {
            f: np.asarray(getattr(cells, f)).reshape(*ll.shape, *np.shape(getattr(cells, f))[1:])
            for f in (fld.name for fld in dataclasses.fields(cells))
        }
        ex = constants.gaussian_on_bounded_data(kind)
        out["kinds"][kind] = {
            **stats,
            "kappa": float(ex.kappa),
            "lam_star": np.asarray(bounds.threshold(jnp.asarray(gammas), ex.kappa)),
            "lam_star_kappa0": np.asarray(bounds.threshold(jnp.asarray(gammas), 0.0)),
            "exact_rate": np.asarray(bounds.well_specified_rate(jnp.asarray(ll), jnp.asarray(gg))),
            "seconds": time.perf_counter() - t0,
        }
    return out


def plot_map(res: dict, cfg: MisspecifiedMapConfig, path) -> None:
    """Per data law: simulated (autocorrelation) rate, exact rate, divergence; λ*(γ, κ)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    lams, gammas = res["lams"], res["gammas"]
    gx = np.where(gammas > 0, gammas, cfg.gamma_min / 3)
    kinds = list(res["kinds"])
    fig, axes = plt.subplots(
        len(kinds), 3, figsize=(15, 4.2 * len(kinds)), squeeze=False, constrained_layout=True
    )
    for row, kind in enumerate(kinds):
        m = res["kinds"][kind]
        panels = (
            (m["rate_autocorr"], "simulated rate (lag-1 autocorr.)", (0, 1)),
            (m["exact_rate"], "exact rate λ/((1+λ)(1+γ))", (0, 1)),
            (m["diverged_frac"], "seeds diverged", (0, 1)),
        )
        for j, (vals, title, (lo, hi)) in enumerate(panels):
            ax = axes[row, j]
            im = ax.pcolormesh(gx, lams, vals, vmin=lo, vmax=hi, shading="nearest", cmap="viridis")
            ax.plot(gx, m["lam_star"], "w-", lw=2, label=f"λ*(γ, κ = {m['kappa']:.3f})")
            ax.plot(gx, m["lam_star_kappa0"], "w--", lw=1, label="λ*(γ, κ = 0)")
            ax.set_xscale("log")
            ax.set_xlim(gx[0] / 1.5, gx[-1] * 1.5)
            ax.set_ylim(lams[0], lams[-1])
            ax.set_xlabel("γ (γ = 0 at the left edge)")
            ax.set_ylabel("λ")
            ax.set_title(f"{kind} data, κ = {m['kappa']:.3f}: {title}", fontsize=9)
            fig.colorbar(im, ax=ax)
            if j == 0:
                ax.legend(fontsize=7, loc="upper right")
    stable = all(res["kinds"][k]["diverged_frac"].max() == 0 for k in kinds)
    fig.suptitle(
        f"misspecified Gaussian loop on bounded data (augment, n = {cfg.n_real}, "
        f"{cfg.seeds} seeds × {cfg.generations} generations); every cell stable: "
        f"{'yes' if stable else 'no'}; white: the theorem's λ*(γ, κ) (solid) and λ*(γ, 0)",
        fontsize=10,
    )
    fig.savefig(path, dpi=100)
    plt.close(fig)
