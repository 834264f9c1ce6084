"""sims.common.config: flags generated from a Config dataclass, validation from metadata."""

import argparse
import dataclasses
from pathlib import Path

import pytest

from sims.common import config as C


@dataclasses.dataclass(frozen=True)
class Demo:
    """A config with every kind of field the generator parses.

    Attributes:
        lam: synthetic ratio λ.
        names: which correctors.
        backend: physics backend.
        steps: number of steps, a
            continuation line.
        cap: optional cap.
        fast: a switch.
        path: where data lives.
        hidden: not on the command line.
    """

    lam: float = C.option(check=C.nonneg)
    names: tuple[str, ...] = C.option(("a",), choices=("a", "b"), check=C.non_empty())
    backend: str = C.option("mjx", choices=("mjx", "mujoco"), flag="--physics")
    steps: int = C.option(3, check=C.positive_int)
    cap: float | None = None
    fast: bool = False
    path: Path | None = None
    hidden: int = C.option(7, flag=None)

    def __post_init__(self):
        C.validate(self)

    @classmethod
    def smoke(cls, **overrides):
        """Tiny."""
        return cls(**{"lam": 0.1, "steps": 1, **overrides})

    @classmethod
    def full(cls, path, lam=1.0):
        """Needs a path."""
        return cls(lam=lam, path=Path(path), steps=100)


def _build(argv, **kwargs):
    p = argparse.ArgumentParser(prog="demo")
    C.add_arguments(p, Demo, **kwargs)
    return C.from_args(p.parse_args(argv)), p


def test_types_flags_and_defaults():
    cfg, p = _build(["--lam", "0.5", "--names", "a,b", "--physics", "mujoco", "--cap", "none"])
    assert cfg == Demo(lam=0.5, names=("a", "b"), backend="mujoco")
    cfg, _ = _build(["--lam", "2", "--fast"])
    assert cfg.fast and cfg.lam == 2.0 and cfg.hidden == 7
    cfg, _ = _build(["--lam", "1", "--cap", "3", "--path", "x/y", "--no-fast"])
    assert cfg.cap == 3.0 and cfg.path == Path("x/y") and not cfg.fast
    text = p.format_help()
    assert "number of steps, a continuation line (default: 3)" in text
    assert "--hidden" not in text and "--physics {mjx,mujoco}" in text
    assert "a comma list of: a, b" in text


def test_presets_then_overrides():
    assert _build(["--smoke"])[0] == Demo.smoke()
    assert _build(["--smoke", "--steps", "5"])[0] == Demo.smoke(steps=5)
    # A preset with named parameters receives them; the other flags are applied on top.
    cfg, _ = _build(["--full", "--path", "d", "--steps", "4"])
    assert cfg == dataclasses.replace(Demo.full("d"), steps=4)
    cfg, _ = _build([], default_preset="smoke")
    assert cfg == Demo.smoke()


def test_required_and_parse_errors(capsys):
    for argv, text in [(["--lam", "x"], "--lam"), (["--physics", "gpu"], "--physics")]:
        with pytest.raises(SystemExit) as e:
            _build(argv)
        assert e.value.code == 2 and text in capsys.readouterr().err
    # With presets a field without a default may come from the preset: not an argparse
    # requirement, but a ValueError naming it when neither gives it.
    with pytest.raises(ValueError, match=r"lam is required \(--lam"):
        _build([])
    p = argparse.ArgumentParser(prog="demo")
    C.add_arguments(p, Demo, presets=())
    with pytest.raises(SystemExit):
        p.parse_args([])
    assert "required: --lam" in capsys.readouterr().err


def test_validation_from_metadata():
    with pytest.raises(ValueError, match="lam must lie in"):
        Demo(lam=-1.0)
    with pytest.raises(ValueError, match="names must be each one of"):
        Demo(lam=1.0, names=("a", "z"))
    with pytest.raises(ValueError, match="names must be a non-empty list"):
        Demo(lam=1.0, names=())
    with pytest.raises(ValueError, match="backend must be one of"):
        Demo(lam=1.0, backend="gpu")
    with pytest.raises(ValueError, match="steps must be an integer >= 1"):
        Demo(lam=1.0, steps=0)
    assert Demo(lam=1.0, names=["b"]).names == ("b",)  # lists stored as tuples


def test_seed_list():
    assert C.seed_list("3") == (0, 1, 2) and C.seed_list("4,1") == (4, 1)
    for bad in ("0", "x", "1,y"):
        with pytest.raises(argparse.ArgumentTypeError, match="seeds"):
            C.seed_list(bad)
