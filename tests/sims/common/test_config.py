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


@dataclasses.dataclass(frozen=True)
class Inner:
    """A nested config.

    Attributes:
        n: size.
        seed: its seed.
    """

    n: int = C.option(5, check=C.positive_int)
    seed: int = C.option(0, check=C.nonneg_int)

    def __post_init__(self):
        C.validate(self)


@dataclasses.dataclass(frozen=True)
class Outer:
    """A config with a nested one, a space-separated list and a derived field.

    Attributes:
        inner: the nested config.
        index: indices.
        seed: outer seed.
        pairs: (a, b) pairs, built from --a and --b.
    """

    inner: Inner = C.option(default_factory=lambda: Inner(n=9), nested=("n",))
    index: tuple[int, ...] = C.option((0,), nargs="+", check=C.nonneg_int)
    seed: int = C.option(3, check=C.at_least(3))
    pairs: tuple[tuple[int, int], ...] = C.option(((1, 2),), flag=None)

    def __post_init__(self):
        C.validate(self)

    @classmethod
    def smoke(cls):
        """Tiny: inner n = 2,
        seed 3."""
        return cls(inner=Inner(n=2, seed=4), seed=3)


def _pairs(base, given):
    a, b = given.pop("a", None), given.pop("b", None)
    if a or b:
        a = a or tuple(p[0] for p in base.pairs)
        given["pairs"] = tuple((x, y) for x in a for y in b or (0,))
    if "seed" in given:
        given.setdefault("inner.seed", given["seed"])
    return given


ADAPTER = C.Adapter(
    flags=(
        C.Flag("--a", "a", "first entries", C.comma_list(int, "integers")),
        C.Flag("--b", "b", "second entries", C.comma_list(int, "integers")),
    ),
    apply=_pairs,
)


def _outer(argv, parser=None):
    p = parser or argparse.ArgumentParser(prog="outer")
    C.add_arguments(p, Outer, adapter=ADAPTER)
    return C.from_args(p.parse_args(argv)), p


def test_nested_fields_nargs_and_adapter():
    assert _outer([])[0] == Outer()
    cfg, p = _outer(["--n", "4", "--index", "3", "5"])
    # Only the named nested field is replaced; the rest keeps the default's values.
    assert cfg.inner == Inner(n=4) and cfg.index == (3, 5)
    # A preset's nested config is the base the flags replace fields in.
    assert _outer(["--smoke", "--n", "7"])[0].inner == Inner(n=7, seed=4)
    text = p.format_help()
    assert "--n N" in text and "size (inner.n) (default: 9)" in text
    assert "--index INDEX [INDEX ...]" in text and "(default: 0)" in text
    assert "--seed SEED" in text and "--inner" not in text and "--pairs" not in text
    assert "Tiny: inner n = 2, seed 3." in text  # the preset's first paragraph, joined
    cfg, _ = _outer(["--a", "1,2", "--b", "7"])
    assert cfg.pairs == ((1, 7), (2, 7))
    assert _outer(["--b", "5"])[0].pairs == ((1, 5),)  # a missing list: the base's
    cfg, _ = _outer(["--seed", "6"])  # the adapter sets a nested field too
    assert cfg.seed == 6 and cfg.inner == Inner(n=9, seed=6)
    with pytest.raises(ValueError, match="n must be an integer >= 1"):
        _outer(["--n", "0"])
    with pytest.raises(ValueError, match="seed must be >= 3"):
        _outer(["--seed", "2"])


def test_subcommand_config_does_not_see_the_parents_flags():
    """A subcommand's config is built from its own flags only (its parser's defaults
    replace the parent's: class, preset, flag list, adapter)."""
    top = argparse.ArgumentParser(prog="top")
    C.add_arguments(top, Outer, adapter=ADAPTER)
    sub = top.add_subparsers(dest="cmd").add_parser("inner")
    C.add_arguments(sub, Inner)
    args = top.parse_args(["--seed", "5", "--a", "3", "inner", "--n", "2"])
    assert args._adapter is None and C.from_args(args) == Inner(n=2)
    assert C.from_args(top.parse_args(["--seed", "5"])).seed == 5


def test_comma_list_choices_and_at_least():
    parse = C.comma_list(str, "names", choices=("id", "pd"))
    assert parse("id, pd") == ("id", "pd") and parse("") == ()
    with pytest.raises(argparse.ArgumentTypeError, match="names of \\('id', 'pd'\\); got 'x'"):
        parse("id,x")
    C.at_least(32)("n", 32)
    for bad, text in ((31, "n must be >= 32"), (2.5, "n must be an integer >= 1")):
        with pytest.raises(ValueError, match=text):
            C.at_least(32)("n", bad)
