"""Numbers behind the imperfect-corrector findings (closed forms of ``theory.imperfect``).

Paper: Cor. 4.5 (more γ helps the ideal π_γ), Def. 4.1, eq. (5). ``findings`` tabulates, for
one (n, λ) of the finite-sample ``augment`` loop (1-D, σ² = 1, known variance, averaged over
the real set): the stationary MSE of the mean of the ideal π_γ, of the equal-budget
``fresh`` control and of no correction; the bias at which a biased π_γ stops beating each of
them; the MSE-optimal γ as a function of the bias; and the population fixed point of the
shrinking corrector. ``python -m sims.gaussian.imperfect`` prints them; the lead's sweep
engine draws the maps.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

from theory import gaussian as gauss
from theory import imperfect as imp
from theory import operators as ops

__all__ = ["findings"]

GAMMAS = (0.1, 0.3, 1.0, 3.0, 10.0, math.inf)
BIASES_SE = (0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 5.0)  # in units of σ/√n, the real mean's SE


def _onset(n: int, lam: float, hi: float = 10.0) -> float:
    """Smallest bias (in σ/√n) at which γ_opt is finite: bisection on isinf(γ_opt)."""
    se = 1.0 / math.sqrt(n)
    lo = 0.0
    for _ in range(40):
        mid = 0.5 * (lo + hi)
        finite = math.isfinite(float(imp.mse_optimal_gamma(n, lam, mid * se)[0]))
        lo, hi = (lo, mid) if finite else (mid, hi)
    return 0.5 * (lo + hi)


def findings(n: int = 50, lam: float = 0.5) -> dict:
    """Tables for one (n, λ); biases are reported in units of σ/√n."""
    se = 1.0 / math.sqrt(n)
    none = float(imp.stationary_mse(n, lam, 0.0))
    rows = []
    for g in GAMMAS:
        rows.append(
            {
                "gamma": g,
                "fresh_points": int(imp.fresh_count(lam, g, n)),
                "mse_ideal": float(imp.stationary_mse(n, lam, g)),
                "mse_fresh": float(imp.fresh_stationary_mse(n, lam, g)),
                "break_even_vs_none": float(imp.break_even_bias(n, lam, g, "none")) / se,
                "break_even_vs_fresh": float(imp.break_even_bias(n, lam, g, "fresh")) / se,
            }
        )
    gam, mse = imp.mse_optimal_gamma(n, lam, jnp.asarray(BIASES_SE) * se)
    optimum = [
        {"bias_se": b, "gamma_opt": float(g), "mse_opt": float(m), "mse_none": none}
        for b, g, m in zip(BIASES_SE, np.asarray(gam), np.asarray(mse), strict=True)
    ]
    data = gauss.standard(1)
    shrink = []
    for s in (1.0, 0.8, 0.5, 0.0):
        fixed = imp.affine_fixed_point(lam, 1.0, data, ops.Affine.shrinking(jnp.zeros(1), s))
        shrink.append(
            {
                "shrink": s,
                "fixed_var": float(fixed.cov[0, 0]),
                "mse_mean": float(imp.stationary_mse(n, lam, 1.0, shrink=s, replace_var=0.0)),
            }
        )
    return {
        "n": n,
        "lam": lam,
        "mse_none": none,
        "by_gamma": rows,
        "optimum": optimum,
        "onset_bias_se": _onset(n, lam),
        "shrinking_gamma1": shrink,
    }


def main() -> None:  # pragma: no cover - a script for the lead
    for n, lam in ((50, 0.5), (10, 1.0), (50, 2.0)):
        f = findings(n, lam)
        print(f"\nn = {n}, λ = {lam}: no correction MSE = {f['mse_none']:.5f} (σ²/n = {1 / n:.5f})")
        print("  γ      m   MSE ideal  MSE fresh  b_even/SE vs none  vs fresh")
        for r in f["by_gamma"]:
            print(
                f"  {r['gamma']:<5g} {r['fresh_points']:3d}  {r['mse_ideal']:.5f}    "
                f"{r['mse_fresh']:.5f}    {r['break_even_vs_none']:8.3f}        "
                f"{r['break_even_vs_fresh']:.3f}"
            )
        print(f"  γ_opt is finite once bias > {f['onset_bias_se']:.3f} SE")
        for r in f["optimum"]:
            print(
                f"  bias {r['bias_se']:4.1f} SE: γ_opt = {r['gamma_opt']:.4g}, "
                f"MSE {r['mse_opt']:.5f} (none {r['mse_none']:.5f})"
            )
        for r in f["shrinking_gamma1"]:
            print(
                f"  shrink s = {r['shrink']}: population Σ∞ = {r['fixed_var']:.4f}, "
                f"mean MSE {r['mse_mean']:.5f}"
            )


if __name__ == "__main__":  # pragma: no cover
    jax.config.update("jax_enable_x64", True)
    main()
