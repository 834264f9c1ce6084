"""Results of a run, and saving them with provenance: JSON (+ optional NPZ) beside every
figure."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import platform
import subprocess
import tempfile
from importlib import metadata
from pathlib import Path
from typing import Any

import jax
import numpy as np

SCHEMA_VERSION = 1
_PACKAGES = ("jax", "jaxlib", "numpy", "scipy", "matplotlib", "scsc")


@dataclasses.dataclass(frozen=True)
class Results:
    """What an experiment's ``run(cfg)`` returns and its ``report(results, out)`` saves.

    Every experiment has the shape ``Config`` → ``run(cfg) -> Results`` (computes, writes
    nothing) → ``report(results, out)`` (writes its JSON/NPZ and figure with provenance).

    Attributes:
        config: the frozen config that produced the results (its hash goes into the
            provenance of every saved file).
        data: the experiment's arrays and numbers, as its ``run`` documents them.
        seconds: wall time of ``run``, compilation included.
    """

    config: Any
    data: dict[str, Any]
    seconds: float


def _git(*args: str) -> str | None:
    try:
        out = subprocess.run(
            ["git", *args],
            cwd=Path(__file__).resolve().parent,
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip()


def config_dict(cfg) -> dict[str, Any]:
    """A frozen config dataclass as a JSON-ready dict."""
    return json.loads(json.dumps(dataclasses.asdict(cfg), default=list))


def _short_hash(obj) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


def config_hash(cfg) -> str:
    """Short content hash of a config (stable across runs and machines)."""
    return _short_hash(config_dict(cfg))


def run_hash(cfg) -> str:
    """Hash of a long-run config with ``generations`` left out (a run may be extended by
    resuming it with more generations)."""
    return _short_hash(dataclasses.asdict(dataclasses.replace(cfg, generations=1)))


def claim_run_dir(run_dir: Path | None, cfg, resume: bool) -> str:
    """Marks ``run_dir`` as holding the run of ``cfg`` (``run.json``), or checks that it
    already does when resuming; a clear error before any work otherwise.

    Returns:
        ``run_hash(cfg)``, which the loops store in their checkpoints.
    """
    h = run_hash(cfg)
    if run_dir is None:
        return h
    marker = Path(run_dir) / "run.json"
    if marker.exists():
        old = json.loads(marker.read_text())
        if not resume:
            raise ValueError(f"{run_dir} already holds a run; pass --resume or another --out")
        if old.get("hash") != h:
            raise ValueError(
                f"{run_dir} holds a run with another config (hash {old.get('hash')} ≠ {h}); "
                "only generations may change when resuming"
            )
    else:
        blob = json.dumps({"hash": h, "config": dataclasses.asdict(cfg)}, default=str).encode()
        write_bytes(marker, blob)
    return h


def provenance(cfg=None, seeds=None) -> dict[str, Any]:
    """Who/what/where produced a result: git SHA and dirty flag, versions, backend, x64."""
    versions = {}
    for name in _PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    # Generated outputs do not make the code dirty: `scsc figures` writes several results
    # in turn, and each would otherwise mark the next one's provenance dirty.
    status = _git("status", "--porcelain", "--", ".", ":(exclude)figures")
    info = {
        "schema_version": SCHEMA_VERSION,
        "git_sha": _git("rev-parse", "HEAD"),
        "git_dirty": None if status is None else bool(status),
        "versions": versions,
        "python": platform.python_version(),
        "backend": jax.default_backend(),
        "devices": [str(d) for d in jax.devices()],
        "x64": bool(jax.config.jax_enable_x64),
    }
    if cfg is not None:
        info["config_hash"] = config_hash(cfg)
    if seeds is not None:
        info["seeds"] = [int(s) for s in seeds]
    return info


def _jsonable(x, digits: int | None = None):
    if isinstance(x, dict):
        return {str(k): _jsonable(v, digits) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_jsonable(v, digits) for v in x]
    if isinstance(x, np.ndarray | jax.Array):
        return _jsonable(np.asarray(x).tolist(), digits)
    if isinstance(x, np.generic):
        return _jsonable(x.item(), digits)
    if isinstance(x, float):
        if not np.isfinite(x):
            return None if np.isnan(x) else ("inf" if x > 0 else "-inf")
        return float(f"{x:.{digits}g}") if digits else x
    return x


def write_bytes(path: str | os.PathLike, blob: bytes) -> Path:
    """Atomically writes ``blob`` (temp file in the same folder, then rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    with os.fdopen(fd, "wb") as f:
        f.write(blob)
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)
    return path


def write_json(path: str | os.PathLike, payload: dict, digits: int | None = None) -> Path:
    """Atomically writes ``payload`` as compact JSON (temp file, then rename); NaN → null.

    Args:
        path: destination.
        payload: dicts, lists, scalars and arrays.
        digits: significant digits kept for floats (None keeps full precision).
    """
    blob = json.dumps(_jsonable(payload, digits), separators=(",", ":")).encode()
    return write_bytes(path, blob)


def read_json(path: str | os.PathLike) -> dict:
    """Reads a result file; clear errors for a missing, unreadable or wrong-version file."""
    path = Path(path)
    try:
        payload = json.loads(path.read_text())
    except FileNotFoundError:
        raise ValueError(f"result file {path} does not exist") from None
    except (OSError, json.JSONDecodeError) as e:
        raise ValueError(f"result file {path} is not readable JSON: {e}") from None
    version = payload.get("provenance", {}).get("schema_version")
    if version != SCHEMA_VERSION:
        raise ValueError(
            f"result file {path} has schema version {version}; this scsc reads {SCHEMA_VERSION}"
        )
    return payload
