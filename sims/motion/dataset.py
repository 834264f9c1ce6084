"""The ground-truth motion dataset: templated-text motion classes, realised in physics.

No motion capture ships offline, so this stands in for HumanML3D: a library of
``CLASSES`` (nine everyday standing motions). Each sample draws its own amplitude, tempo,
phase, duration and side, gets a templated description from them, is built as a kinematic
reference (hinge-angle curves around a standing rest pose; the pelvis kept upright and
above the origin, the body lowered so its lowest point touches the floor), and is then
**realised in physics**: the humanoid tracks it under ``humanoid.GROUND_TRUTH`` settings
(timestep 2.5 ms instead of 5 ms, stiffer and stronger joint servos, a weaker root
residual: 30 % of body weight instead of 50 %), through the C backend. The *simulated*
trajectory is the data, so real motions are physically valid but are not the corrector's
own fixed points. Samples whose realisation falls are redrawn.

What it cannot show: real human variety (styles, body shapes, transitions, locomotion
across the floor, object interaction, long sequences), the free-form language of
HumanML3D, or contact-rich motions (only the feet touch the floor in this model). Classes
are separable by construction, so a text-to-motion model learns them far more easily
than real motions.

Deterministic from ``Config.seed``; cached under ``$SCSC_CACHE`` (default
``~/.cache/scsc``) by a content hash of the config, the generator version and the
MuJoCo version.
"""

from __future__ import annotations

import dataclasses
import functools
import os
from pathlib import Path

import mujoco
import numpy as np

from sims.common import results
from sims.common.config import nonneg_int, option, positive_int, validate
from sims.motion import humanoid as hm

__all__ = ["CLASSES", "Config", "load", "make_reference", "sample_params"]

GENERATOR_VERSION = 2
CLASSES = (
    "raise_arms",
    "wave",
    "squat",
    "twist",
    "side_bend",
    "reach",
    "march",
    "bow",
    "punch",
)
_SIDED = {"wave", "side_bend", "reach", "punch"}


def _frames(name: str, value) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not 20 <= value <= 400:
        raise ValueError(f"{name} must be an integer in [20, 400]; got {value!r}")


@dataclasses.dataclass(frozen=True)
class Config:
    """One dataset.

    Attributes:
        n: number of motions.
        frames: frames per motion T (at ``humanoid.FPS``).
        seed: everything is drawn from ``np.random.default_rng(seed)``.
        settings: physics settings of the realisation (not the corrector's).
    """

    n: int = option(512, check=positive_int)
    frames: int = option(60, check=_frames)
    seed: int = option(0, check=nonneg_int)
    settings: hm.Settings = option(hm.GROUND_TRUTH, flag=None)

    def __post_init__(self):
        validate(self)

    @classmethod
    def smoke(cls) -> Config:
        return cls(n=18, frames=40)


# ------------------------------------------------------------------ parameters and text

_PARAMS = ("cls", "side", "amplitude", "tempo", "phase", "duration")


def sample_params(rng: np.random.Generator, n: int, frames: int) -> dict[str, np.ndarray]:
    """Per-sample parameters: class (balanced), side (0 right, 1 left, 2 both), amplitude in
    [0.4, 1], tempo (cycles/s) in [0.3, 1.2], phase in [0, 2π), active duration in
    [0.6, 1] × the clip."""
    cls = rng.permutation(np.arange(n) % len(CLASSES))
    side = rng.integers(0, 2, n)
    side = np.where(np.isin(cls, [CLASSES.index("reach")]), rng.integers(0, 3, n), side)
    return {
        "cls": cls,
        "side": side,
        "amplitude": rng.uniform(0.4, 1.0, n),
        "tempo": rng.uniform(0.3, 1.2, n),
        "phase": rng.uniform(0, 2 * np.pi, n),
        "duration": rng.uniform(0.6, 1.0, n) * frames / hm.FPS,
    }


_SUBJECT = ("a person", "someone", "a man", "a woman", "the person")
_VERB = {
    "raise_arms": ("raises both arms above the head", "lifts both arms up"),
    "wave": ("waves the {side} hand", "waves with the {side} arm"),
    "squat": ("squats down and stands up", "does squats"),
    "twist": ("twists the torso", "rotates the upper body left and right"),
    "side_bend": ("bends to the {side} side", "leans the upper body to the {side}"),
    "reach": ("reaches forward with the {side} arm", "stretches the {side} arm out in front"),
    "march": ("marches in place", "lifts the knees in turn, marching on the spot"),
    "bow": ("bows forward", "bends forward at the waist"),
    "punch": ("punches forward with the {side} fist", "throws punches with the {side} arm"),
}


def describe(p: dict, i: int, rng: np.random.Generator) -> str:
    """Templated description of sample ``i`` from its parameters."""
    name = CLASSES[int(p["cls"][i])]
    side = ("right", "left", "both")[int(p["side"][i])]
    verb = _VERB[name][rng.integers(2)]
    if side == "both":
        verb = verb.replace("the {side} arm", "both arms")
    verb = verb.format(side=side)
    tempo = p["tempo"][i]
    speed = "slowly" if tempo < 0.6 else ("quickly" if tempo > 0.9 else "")
    amp = p["amplitude"][i]
    size = (
        ", with small movements" if amp < 0.6 else (", with large movements" if amp > 0.85 else "")
    )
    brief = "briefly" if p["duration"][i] < 0.7 * p["_clip"] else ""
    adverbs = " and ".join(w for w in (brief, speed) if w)
    return " ".join(w for w in (_SUBJECT[rng.integers(len(_SUBJECT))], verb, adverbs) if w) + size


# ------------------------------------------------------------------ kinematic references

_REST_ARM = np.array([0.82, -0.56, -1.75])
_ARM_POSES = {
    "up": np.array([-1.48, 0.59, -1.75]),
    "forward": np.array([-0.1, 0.82, -1.75]),
    "wave": np.array([-1.48, -0.56, -0.88]),
    "guard": np.array([0.0, 0.0, 0.0]),
}


def _joint(name: str) -> int:
    return hm.JOINTS.index(name)


def _set_arm(angles, side: str, value):
    for k, j in enumerate(("shoulder1", "shoulder2", "elbow")):
        angles[:, _joint(f"{j}_{side}")] = value[..., k]


def _envelope(t, duration):
    """1 inside the active window, smooth 0.4 s ramps at both ends, 0 after it."""
    ramp = 0.4
    up = np.clip(t / ramp, 0, 1)
    down = np.clip((duration - t) / ramp, 0, 1)
    return (0.5 - 0.5 * np.cos(np.pi * np.minimum(up, down))) * (t <= duration)


def joint_curves(params: dict, i: int, frames: int) -> np.ndarray:
    """Hinge angles [T, 21] of sample ``i`` (before canonicalisation)."""
    t = np.arange(frames) / hm.FPS
    name = CLASSES[int(params["cls"][i])]
    amp, tempo = params["amplitude"][i], params["tempo"][i]
    phase, side_id = params["phase"][i], int(params["side"][i])
    env = _envelope(t, params["duration"][i])
    osc = np.sin(2 * np.pi * tempo * t + phase)
    # A raise-and-return cycle starting at rest: 0 -> 1 -> 0 at the tempo.
    cycle = env * (0.5 - 0.5 * np.cos(2 * np.pi * tempo * t))
    hold = env  # go to a pose and stay while active
    angles = np.tile(hm.rest_qpos()[7:], (frames, 1))
    sides = ("right", "left", "both")[side_id]
    arm_sides = ("right", "left") if sides == "both" else (sides,)
    sign = 1.0 if sides == "right" else -1.0
    if name == "raise_arms":
        for s in ("right", "left"):
            # Small movements still reach above the shoulders (or the text would be wrong).
            lift = (0.6 + 0.4 * amp) * cycle[:, None]
            _set_arm(angles, s, _REST_ARM + lift * (_ARM_POSES["up"] - _REST_ARM))
    elif name == "wave":
        pose = _REST_ARM + hold[:, None] * (_ARM_POSES["wave"] - _REST_ARM)
        pose[:, 2] += hold * 0.45 * amp * np.sin(2 * np.pi * 2 * tempo * t + phase)
        _set_arm(angles, sides, pose)
    elif name == "squat":
        x = 1.1 * amp * cycle
        for s in ("right", "left"):
            angles[:, _joint(f"hip_y_{s}")] = -x
            angles[:, _joint(f"knee_{s}")] = -2 * x
            angles[:, _joint(f"ankle_y_{s}")] = -x
        for s in ("right", "left"):  # arms forward for balance
            _set_arm(
                angles, s, _REST_ARM + 0.7 * cycle[:, None] * (_ARM_POSES["forward"] - _REST_ARM)
            )
    elif name == "twist":
        angles[:, _joint("abdomen_z")] = 0.7 * amp * env * osc
    elif name == "side_bend":
        angles[:, _joint("abdomen_x")] = sign * 0.5 * amp * cycle
    elif name == "reach":
        for s in arm_sides:
            _set_arm(angles, s, _REST_ARM + cycle[:, None] * (_ARM_POSES["forward"] - _REST_ARM))
        angles[:, _joint("abdomen_y")] = -0.5 * amp * cycle
    elif name == "march":
        for k, s in enumerate(("right", "left")):
            lift = env * np.maximum(0.0, np.sin(2 * np.pi * tempo * t + phase + k * np.pi))
            angles[:, _joint(f"hip_y_{s}")] = -1.1 * amp * lift
            angles[:, _joint(f"knee_{s}")] = -1.8 * amp * lift
    elif name == "bow":
        angles[:, _joint("abdomen_y")] = -1.0 * amp * cycle
        for s in ("right", "left"):
            _set_arm(
                angles, s, _REST_ARM + 0.4 * cycle[:, None] * (_ARM_POSES["forward"] - _REST_ARM)
            )
    elif name == "punch":
        jab = env * np.maximum(0.0, np.sin(2 * np.pi * 1.5 * tempo * t + phase)) ** 2
        guard = _REST_ARM + hold[:, None] * (_ARM_POSES["guard"] - _REST_ARM)
        pose = guard + (amp * jab)[:, None] * (_ARM_POSES["forward"] - _ARM_POSES["guard"])
        _set_arm(angles, sides, pose)
    else:  # pragma: no cover - CLASSES and this table are kept in step
        raise AssertionError(name)
    lo, hi = hm.joint_ranges().T
    return np.clip(angles, lo, hi)


@functools.lru_cache(maxsize=1)
def _kin_data():
    m = hm.build_model()
    return m, mujoco.MjData(m)


def canonicalise(angles: np.ndarray) -> np.ndarray:
    """Hinge angles [T, 21] -> qpos [T, 28]: pelvis upright and above the origin, facing +x,
    lowest point on the floor."""
    m, d = _kin_data()
    pelvis, radius = m.body("pelvis").id, hm.keypoint_radius()
    sites = np.asarray(hm.keypoint_site_ids())
    out = np.zeros((len(angles), hm.NQ))
    for f, a in enumerate(angles):
        d.qpos[:] = 0
        d.qpos[3] = 1
        d.qpos[7:] = a
        mujoco.mj_kinematics(m, d)
        quat = np.empty(4)
        mujoco.mju_negQuat(quat, d.xquat[pelvis])
        d.qpos[3:7] = quat
        mujoco.mj_kinematics(m, d)
        d.qpos[:2] -= d.xpos[pelvis][:2]
        mujoco.mj_kinematics(m, d)
        d.qpos[2] -= np.min(d.site_xpos[sites, 2] - radius)
        out[f] = d.qpos
    return out


def make_reference(params: dict, i: int, frames: int) -> np.ndarray:
    """Kinematic reference qpos [T, 28] of sample ``i``."""
    return canonicalise(joint_curves(params, i, frames))


# ------------------------------------------------------------------ realisation and cache


def _cache_dir() -> Path:
    return Path(os.environ.get("SCSC_CACHE", Path.home() / ".cache" / "scsc")) / "motion"


def content_hash(cfg: Config) -> str:
    """Hash of everything the data depends on (config, generator, MuJoCo version)."""
    import hashlib
    import json

    blob = json.dumps(
        {
            "config": results.config_dict(cfg),
            "generator": GENERATOR_VERSION,
            "mujoco": mujoco.__version__,
        },
        sort_keys=True,
    ).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def generate(cfg: Config, batch: int = 64) -> dict[str, np.ndarray]:
    """Draws, realises (C backend, ``cfg.settings``) and returns the dataset (no caching).

    Returns:
        ``qpos`` [n, T, 28] (simulated, float32), ``features`` [n, T, 30], ``reference``
        [n, T, 28] (the kinematic references), ``labels`` [n] (class index), ``side`` [n],
        ``texts`` [n], the drawn parameters, and ``redrawn`` (falls replaced).
    """
    import jax.numpy as jnp

    from sims.motion import physics
    from sims.motion import representation as rep

    rng = np.random.default_rng(cfg.seed)
    keep: list[dict] = []
    redrawn = 0
    need = cfg.n
    while need > 0:
        size = max(need, min(batch, cfg.n))
        p = sample_params(rng, size, cfg.frames)
        p["_clip"] = cfg.frames / hm.FPS
        texts = [describe(p, i, rng) for i in range(size)]
        refs = np.stack([make_reference(p, i, cfg.frames) for i in range(size)])
        sims = []
        fell = []
        for lo in range(0, size, batch):
            chunk = refs[lo : lo + batch]
            pad = np.concatenate([chunk, np.repeat(chunk[-1:], batch - len(chunk), 0)])
            # The data are defined as PD tracking under GROUND_TRUTH (not the corrector).
            sim, info = physics.simulate(
                jnp.asarray(pad), cfg.settings, backend="mujoco", corrector="pd"
            )
            sims.append(np.asarray(sim)[: len(chunk)])  # one compiled shape for all chunks
            fell.append(np.asarray(info["fell"])[: len(chunk)])
        sim, fell = np.concatenate(sims), np.concatenate(fell)
        good = np.flatnonzero(~fell)[:need]
        redrawn += int(fell.sum())
        keep.append(
            {
                "qpos": sim[good],
                "reference": refs[good].astype(np.float32),
                "texts": np.array(texts)[good],
                **{k: p[k][good] for k in _PARAMS},
            }
        )
        need -= len(good)
    out = {k: np.concatenate([b[k] for b in keep]) for k in keep[0]}
    out["features"] = np.asarray(rep.to_features(jnp.asarray(out["qpos"])), np.float32)
    out["labels"] = out.pop("cls")
    out["redrawn"] = np.array(redrawn)
    return out


def load(cfg: Config, cache: bool = True) -> dict[str, np.ndarray]:
    """The dataset for ``cfg``, from the content-hash cache when present (see ``generate``)."""
    path = _cache_dir() / f"dataset_{content_hash(cfg)}.npz"
    if cache and path.exists():
        with np.load(path) as f:
            return {k: f[k] for k in f.files}
    data = generate(cfg)
    if cache:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp.npz")
        np.savez_compressed(tmp, **data)
        os.replace(tmp, path)
    return data
