#!/usr/bin/env bash
# Prepared GPU run of the motion loop (issue #6, item 5) for a lent H100/H200.
#
# The GPU machine has Python 3.12 with jax 0.11.2, Equinox, Optax, scikit-learn and
# matplotlib, but no mujoco / mujoco-mjx / mlxtend and no network: those travel as cp312
# wheels in .whl (see the device tool's README; fetch once here with
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 \
#     --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux2014_x86_64 \
#     -d .whl mujoco==3.17.0 mujoco-mjx==3.17.0 mlxtend==0.25.0 etils trimesh glfw absl-py
# ) and the call carries .whl. Everything it writes lands under $OUT:
#   motion_gpu/   results.json (Fig. 4 schema), fig4/fig5 figures, checkpoints
#   motion_loop_gpu.json   the per-phase benchmark (benchmarks/motion_loop.py)
#   log
# Budget: the reduced setting below (n = 64, λ ∈ {0.5, 1}, 20 generations, three arms) is
# meant to finish well inside one 10-minute call; the script stops the loop after 420 s
# (it resumes with --resume from the checkpoints in a second call).
set -uo pipefail
OUT=${OUT:-out/gpu}
mkdir -p "$OUT"
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
  --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1 SCSC_CACHE=$OUT/cache
{
  nvidia-smi --query-gpu=name,memory.total --format=csv
  python3 -c "import jax; print(jax.__version__, jax.devices())"
  timeout 420 python3 -m sims.cli motion --long --n 64 --lams 0.5,1 --seeds 0 \
    --generations 20 --out "$OUT/motion_gpu" --no-progress
  timeout 120 python3 benchmarks/motion_loop.py --runs 3 --json "$OUT/motion_loop_gpu.json"
} 2>&1 | tee "$OUT/log"
rm -rf "$OUT/cache" "$OUT/motion_gpu/chains" "$OUT"/motion_gpu/gen0_*.npz
