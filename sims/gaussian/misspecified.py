"""The misspecified family with real κ > 0: a Gaussian fitted to bounded, non-Gaussian data.

Paper: Assumption 4.2, Thm 4.3 (stable when λ(1+κ) < (1+γ)/(2+γ), rate ρ(λ)/(1+γ) with
ρ = u/(1−u), u = λ(1+κ)), Lemma A.7 (the exact Jacobian). ``theory.constants.
gaussian_on_bounded_data`` computes α, L, ε and κ = εL/α for the uniform and the
truncated-Laplace data; here the loop is *simulated* on those data, point by point over
(λ, γ), beside the theorem's region at that κ.

What the simulation measures, per (λ, γ) and data law (``points``):

- stability: every seed's θ_t finite and below the blow-up threshold for all generations;
- the mean's per-generation contraction: from θ₀ = (m* + ``offset``, v*), E(μ_t − m*) decays
  exactly like (kq/(n+k))^t (the mean recursion is linear and E δ = 0 for symmetric data;
  ``theory.chains.augment_moments``); estimated from the first generation, with a z-score
  against kq/(n+k) (= λ/((1+λ)(1+γ)) when λn is an integer, Lemma A.7);
- the stationary E(μ − m*)² and E σ² at the last generation against
  ``theory.chains.augment_stationary``, which holds for *any* p_data (the Gaussian MLE sees
  only its mean and variance), with z-scores.

Finding (see ``main``): the Gaussian MLE's population map depends on p_data only through
its first two moments, so the misspecified loop is the well-specified one with
p_data ↦ N(m*, v*): its exact population rate is λ/((1+λ)(1+γ)) for every κ, and it is
stable far beyond the theorem's λ*(γ, κ) = (1+γ)/((2+γ)(1+κ)); κ > 0 only makes the
theorem's sufficient condition stricter. Run ``python -m sims.gaussian.misspecified``.
"""

from __future__ import annotations

import dataclasses
import math
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

from sims.gaussian import loop
from theory import bounds, chains, constants, imperfect
from theory import gaussian as gauss
from theory import operators as ops

__all__ = ["MisspecifiedConfig", "points"]


@dataclasses.dataclass(frozen=True)
class MisspecifiedConfig:
    """One run of ``points``.

    Attributes:
        kinds: data laws (``theory.constants.EXAMPLE_KINDS``).
        lams: λ values (the theorem's λ* at these κ lies between 0.2 and 0.45).
        gammas: γ values.
        n_real: real points n.
        generations: T.
        seeds: independent runs per cell (each with its own real set).
        offset: μ₀ − m*, the start of the rate measurement.
        seed: base PRNG seed.
    """

    kinds: tuple[str, ...] = constants.EXAMPLE_KINDS
    lams: tuple[float, ...] = (0.1, 0.25, 0.5, 1.0, 2.0)
    gammas: tuple[float, ...] = (0.0, 1.0, 5.0)
    n_real: int = 50
    generations: int = 40
    seeds: int = 256
    offset: float = 3.0
    seed: int = 0

    def __post_init__(self):
        for kind in self.kinds:
            if kind not in constants.EXAMPLE_KINDS:
                raise ValueError(f"kinds must be in {constants.EXAMPLE_KINDS}; got {kind!r}")
        if not self.lams or min(self.lams) < 0 or not all(map(math.isfinite, self.lams)):
            raise ValueError(f"lams must be finite and >= 0; got {self.lams}")
        if not self.gammas or min(self.gammas) < 0:
            raise ValueError(f"gammas must be >= 0; got {self.gammas}")
        for name in ("n_real", "generations", "seeds"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 2:
                raise ValueError(f"{name} must be an integer >= 2; got {v!r}")

    @staticmethod
    def smoke() -> MisspecifiedConfig:
        return MisspecifiedConfig(lams=(0.25, 2.0), gammas=(1.0,), generations=15, seeds=64)


@partial(jax.jit, static_argnames=("spec",))
def _simulate(spec: loop.LoopSpec, keys, reals, lams, gammas, target, theta0):
    """(μ_t, σ_t², finite_t), t = 1..T, per seed × cell: ``loop.generation`` scanned."""

    def run(key, real, lam, gamma):
        fit = gauss.fit(real)
        n = jnp.asarray(float(spec.n_real), real.dtype)
        real_stats = (n, fit.mean, n * fit.cov)
        state = loop.LoopState(theta0, loop.PoolSums.zeros(1, real.dtype), None)

        def step(state, t):
            state, (_, _, finite, _, _) = loop.generation(
                spec, key, real_stats, lam, gamma, target, None, state, t
            )
            return state, (state.theta.mean[0], state.theta.cov[0, 0], finite)

        return jax.lax.scan(step, state, jnp.arange(1, spec.generations + 1))[1]

    cells = jax.vmap(run, in_axes=(None, None, 0, 0))
    return jax.vmap(cells, in_axes=(0, 0, None, None))(keys, reals, lams, gammas)


def _one_step_rate(first_err: np.ndarray, offset: float) -> tuple[float, float]:
    """(rate, SE) from E(μ₁ − m*) = (kq/(n+k)) (μ₀ − m*): the mean of μ₁ − m* over seeds
    divided by the deterministic offset (unbiased; later generations add the real sets'
    persistent offsets and are left out)."""
    return float(first_err.mean() / offset), float(
        first_err.std(ddof=1) / offset / math.sqrt(first_err.size)
    )


def points(cfg: MisspecifiedConfig) -> list[dict]:
    """One row per (kind, λ, γ): κ, the theorem's verdict and rate, and the simulated ones."""
    rows = []
    lam_grid = np.repeat(np.asarray(cfg.lams, float), len(cfg.gammas))
    gamma_grid = np.tile(np.asarray(cfg.gammas, float), len(cfg.lams))
    k_max = max(int(ops.n_synthetic(lam, cfg.n_real)) for lam in cfg.lams)
    spec = loop.LoopSpec("augment", "ideal", cfg.generations, cfg.n_real, max(k_max, 1))
    for i, kind in enumerate(cfg.kinds):
        ex = constants.gaussian_on_bounded_data(kind)  # float64 inside, float results
        with jax.enable_x64(True):  # θ* by the same float64 quadrature
            m_star, v_star = (float(v) for v in imperfect.bounded_data_theta_star(kind))
        target = gauss.Gaussian(jnp.asarray([m_star]), jnp.asarray([[v_star]]))
        theta0 = gauss.Gaussian(jnp.asarray([m_star + cfg.offset]), jnp.asarray([[v_star]]))
        key = jax.random.key(cfg.seed + 1000 * i)
        k_data, k_loop = jax.random.split(key)
        reals = imperfect.bounded_data_sample(k_data, kind, (cfg.seeds, cfg.n_real, 1))
        keys = jax.random.split(k_loop, cfg.seeds)
        mu, var, finite = (
            np.asarray(a)
            for a in _simulate(
                spec, keys, reals, jnp.asarray(lam_grid), jnp.asarray(gamma_grid), target, theta0
            )
        )
        for c, (lam, gamma) in enumerate(zip(lam_grid, gamma_grid, strict=True)):
            err = mu[:, c] - m_star  # (seeds, T)
            rate, rate_se = _one_step_rate(err[:, 0], cfg.offset)
            k = int(ops.n_synthetic(lam, cfg.n_real))
            q = 1.0 / (1.0 + gamma)
            _, sq_exact, var_exact, chain_rate = (
                float(v) for v in chains.augment_stationary(cfg.n_real, lam, gamma, m_star, v_star)
            )
            sq, vv = err[:, -1] ** 2, var[:, c, -1]
            rows.append(
                {
                    "kind": kind,
                    "kappa": ex.kappa,
                    "lam": float(lam),
                    "gamma": float(gamma),
                    "lam_star": float(bounds.threshold(gamma, ex.kappa)),
                    "theorem_stable": bool(bounds.is_stable(lam, gamma, ex.kappa)),
                    "theorem_rate": float(bounds.contraction(lam, gamma, ex.kappa)),
                    "exact_rate": k * q / (cfg.n_real + k),
                    "chain_rate": chain_rate,
                    "sim_rate": rate,
                    "sim_rate_z": float((rate - k * q / (cfg.n_real + k)) / rate_se),
                    "sim_stable": bool(finite[:, c].all()),
                    "sq_err_sim": float(sq.mean()),
                    "sq_err_exact": sq_exact,
                    "sq_err_z": float(
                        (sq.mean() - sq_exact) / (sq.std(ddof=1) / math.sqrt(sq.size))
                    ),
                    "var_sim": float(vv.mean()),
                    "var_exact": var_exact,
                    "var_z": float((vv.mean() - var_exact) / (vv.std(ddof=1) / math.sqrt(vv.size))),
                }
            )
    return rows


def main() -> None:  # pragma: no cover - a script for the lead
    import time

    cfg = MisspecifiedConfig()
    start = time.perf_counter()
    rows = points(cfg)
    print(f"misspecified loop: {len(rows)} cells, {time.perf_counter() - start:.1f} s")
    head = (
        "kind               κ      λ    γ   λ*    thm   thm rate exact  sim rate  z(rate) "
        "stable  z(e²)  z(σ²)"
    )
    print(head)
    for r in rows:
        print(
            f"{r['kind']:<17} {r['kappa']:.3f} {r['lam']:5.2f} {r['gamma']:4.1f} "
            f"{r['lam_star']:.3f} {'yes' if r['theorem_stable'] else 'no ':>4} "
            f"{r['theorem_rate']:8.3f} {r['exact_rate']:.3f} {r['sim_rate']:8.3f} "
            f"{r['sim_rate_z']:7.2f} "
            f"{'yes' if r['sim_stable'] else 'no':>6} {r['sq_err_z']:6.2f} {r['var_z']:6.2f}"
        )


if __name__ == "__main__":  # pragma: no cover
    jax.config.update("jax_enable_x64", True)
    main()
