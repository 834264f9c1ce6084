"""Experiment configs: field metadata, validation in one place, and flags generated from them.

Every experiment has one frozen ``Config`` dataclass. Each field declares, once, what the
command line and the validator need to know, through ``option``:

    @dataclasses.dataclass(frozen=True)
    class Config:
        \"\"\"...

        Attributes:
            lam: synthetic ratio λ (⌊λn⌋ synthetic points per generation).
            workflow: the data workflow.
        \"\"\"

        lam: float = option(0.5, check=nonneg)
        workflow: str = option("augment", choices=WORKFLOWS)
        seeds: tuple[int, ...] = option(tuple(range(32)), parse=seed_list)

        def __post_init__(self):
            validate(self)  # per-field checks from the metadata
            ...  # checks that involve several fields

        @classmethod
        def smoke(cls, **overrides): ...

and the CLI adds the flags of a whole dataclass with ``add_arguments`` and builds the
config back with ``from_args``:

- the flag is ``--`` + the field name with ``_`` → ``-`` (``flag=`` overrides it,
  ``flag=None`` keeps a field off the command line);
- the value is parsed from the field's annotation: ``int``, ``float`` (``inf`` allowed),
  ``str``, ``bool`` (``--x`` / ``--no-x``), ``Path``, ``tuple[T, ...]`` as a comma list,
  ``T | None`` (``none`` gives None); ``parse=`` replaces that for one field (for example
  a seed count *or* a seed list);
- the help is the field's line under ``Attributes:`` in the class docstring (or
  ``help=``), with the default appended;
- ``choices=`` become argparse choices (each element for a tuple field), and the validator
  enforces them too, so a config built in Python is checked by the same rule;
- presets: every classmethod of ``PRESETS`` the class defines becomes one flag of a
  mutually exclusive group (``--smoke``, ``--quick``, ``--long``, ``--full``); the flags
  the user gives override the preset's values (a preset is called with them as keyword
  arguments when it accepts ``**overrides``, else they are applied with
  ``dataclasses.replace``);
- nested configs: a field whose type is a config dataclass, declared
  ``option(default_factory=..., nested=("n", "frames"))``, offers the named fields of the
  nested config under their own flags (``--n``, ``--frames``); the flags replace those
  fields in the preset's (or the default) nested config;
- ``nargs="+"`` makes a tuple field space separated (``--index 3 5``);
- flags that are not one field each (motion's ``--n``, ``--lams``, ``--seeds`` build
  ``runs`` as their product; ``--compare-pd`` sets ``pd_runs``; one ``--seed`` that seeds
  two configs) go in an ``Adapter``: its ``Flag`` list and one rule ``apply(base, given)``
  from the preset's config and the given flags to field values. The config's constructor
  validates the result like any other.

Adding a command: give its config fields ``option`` metadata (``flag="--physics"`` where
the flag's name differs from the field, ``parse=`` for a composite value), register it
with ``sims.cli.add_command(sub, name, Config, handler, presets=("quick", "long", "full",
"smoke"), default_preset="quick", extra=..., adapter=...)`` and put the flags that are not
config fields (``--out``, ``--resume``, ``--no-progress``) in ``extra``. A subcommand's
parser (``scsc motion demo``) is built the same way under its parent's subparsers; its
config sees only its own flags.

Errors. A value that cannot be parsed is an argparse error (exit status 2, naming the
flag); a value out of range is a ``ValueError`` from the config's own validation, which
``scsc`` prints naming the field and turns into exit status 2. Both happen before any
computation: building the config is all the CLI does before handing it to ``run``.

Why a small generator and not a library (tyro, typer): every existing flag must keep its
name and meaning, and several do not fit those libraries' conventions (``--seeds 32`` is a
count while ``--seeds 0,5,7`` is a list; lists are comma separated, not space separated;
presets are one mutually exclusive flag group whose values the other flags override), and
the lent GPU machine installs nothing from the network. The generator is about 300 lines
over ``dataclasses.fields`` and ``typing.get_type_hints``.
"""

from __future__ import annotations

import argparse
import dataclasses
import inspect
import math
import re
import types
import typing
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from theory._checks import check_nonneg, check_positive_int

__all__ = [
    "PRESETS",
    "Adapter",
    "Flag",
    "add_arguments",
    "at_least",
    "comma_list",
    "from_args",
    "in_open_unit",
    "non_empty",
    "nonneg",
    "nonneg_int",
    "nonneg_or_inf",
    "option",
    "positive",
    "positive_int",
    "presets_of",
    "seed_list",
    "validate",
]

PRESETS = ("smoke", "quick", "long", "full")
_META = "scsc"  # key of our entry in ``dataclasses.Field.metadata``
_UNSET = object()  # "flag not given": the preset's (or the default) value stands


def option(
    default: Any = dataclasses.MISSING,
    *,
    default_factory: Any = dataclasses.MISSING,
    help: str | None = None,
    choices: Sequence | None = None,
    check: Callable[[str, Any], None] | None = None,
    parse: Callable[[str], Any] | None = None,
    metavar: str | None = None,
    flag: Any = dataclasses.MISSING,
    default_text: str | None = None,
    nested: Sequence[str] | None = None,
    nargs: str | None = None,
) -> Any:
    """A dataclass field with what the CLI and the validator need (see the module doc).

    Args:
        default: the field's default (omit it, and ``default_factory``, for a required
            field: its flag becomes required).
        default_factory: as in ``dataclasses.field``.
        help: flag help; default the field's line under ``Attributes:`` in the docstring.
        choices: admissible values (each element, for a tuple field).
        check: ``check(name, value)`` raising ``ValueError`` with a message naming
            ``name``; run by ``validate`` on every construction (None is not checked
            for optional fields).
        parse: string → value for the command line, instead of the annotation's parser;
            it raises ``argparse.ArgumentTypeError`` (or ``ValueError``) on bad text.
        metavar: argparse metavar.
        flag: the flag (e.g. ``"--n"``); None keeps the field off the command line.
        default_text: how the help shows the default (default: the value itself).
        nested: for a field that is itself a config dataclass: the names of its fields
            that get flags here (under their own flag names); the command line then
            replaces only those in the nested config (the preset's or the default one).
        nargs: ``"+"`` for a tuple field given as space-separated values
            (``--index 3 5``) instead of a comma list.
    """
    meta = {
        "help": help,
        "choices": None if choices is None else tuple(choices),
        "check": check,
        "parse": parse,
        "metavar": metavar,
        "flag": flag,
        "default_text": default_text,
        "nested": None if nested is None else tuple(nested),
        "nargs": nargs,
    }
    return dataclasses.field(
        default=default, default_factory=default_factory, metadata={_META: meta}
    )


def _meta(f: dataclasses.Field) -> dict:
    return f.metadata.get(_META, {})


# --- checks (use as ``check=``; each names the parameter in its message) -----------------


def nonneg(name: str, value) -> None:
    """Every entry >= 0 and finite (a ratio λ, a size κ, a distance)."""
    check_nonneg(name, value, allow_inf=False)


def nonneg_or_inf(name: str, value) -> None:
    """Every entry >= 0, +inf allowed (a correction strength γ)."""
    check_nonneg(name, value, allow_inf=True)


def positive_int(name: str, value) -> None:
    """An integer >= 1 (n, d, generations, batch sizes); every entry of a tuple."""
    for v in value if isinstance(value, tuple | list) else (value,):
        check_positive_int(name, v)


def nonneg_int(name: str, value) -> None:
    """An integer >= 0 (a seed, a generation index); every entry of a tuple."""
    many = isinstance(value, tuple | list)
    for v in value if many else (value,):
        if isinstance(v, bool) or not isinstance(v, int | np.integer) or v < 0:
            what = "non-negative integers" if many else "a non-negative integer"
            raise ValueError(f"{name} must be {what}; got {v!r}")


def at_least(k: int) -> Callable[[str, Any], None]:
    """A check: an integer >= ``k`` (a test set that must fill an R-precision batch)."""

    def run(name: str, value) -> None:
        positive_int(name, value)
        if value < k:
            raise ValueError(f"{name} must be >= {k}; got {value}")

    return run


def in_open_unit(name: str, value) -> None:
    """A number in (0, 1) (a probability δ, a relative tolerance)."""
    if not 0 < value < 1:
        raise ValueError(f"{name} must lie in (0, 1); got {value}")


def positive(name: str, value) -> None:
    """A finite number > 0."""
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be a finite number > 0; got {value}")


def non_empty(check: Callable[[str, Any], None] | None = None) -> Callable[[str, Any], None]:
    """A check: a non-empty tuple whose entries also pass ``check``."""

    def run(name: str, value) -> None:
        if len(value) == 0:
            raise ValueError(f"{name} must be a non-empty list")
        if check is not None:
            check(name, value)

    return run


def seed_list(text: str) -> tuple[int, ...]:
    """Parser: ``32`` → seeds 0..31; ``0,5,7`` → exactly those seeds."""
    try:
        if "," in text:
            return tuple(int(s) for s in text.split(",") if s.strip())
        count = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"seeds must be a count or a comma list; got {text!r}"
        ) from None
    if count < 1:
        raise argparse.ArgumentTypeError(f"seeds must be >= 1; got {count}")
    return tuple(range(count))


# --- validation ------------------------------------------------------------------------


def _hints(cls) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _split_optional(tp) -> tuple[Any, bool]:
    """(T, True) for ``T | None``; (tp, False) otherwise."""
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1 and len(typing.get_args(tp)) == 2:
            return args[0], True
    return tp, False


def _is_tuple(tp) -> bool:
    return typing.get_origin(tp) is tuple


def validate(cfg) -> None:
    """Checks every field of ``cfg`` against its metadata (choices, ``check``).

    Call it first in ``__post_init__``. Lists given for tuple fields are stored as tuples
    (so configs stay hashable and compare equal however they were built).

    Raises:
        ValueError: naming the first field whose value is not admissible.
    """
    hints = _hints(type(cfg))
    for f in dataclasses.fields(cfg):
        value = getattr(cfg, f.name)
        tp, optional = _split_optional(hints[f.name])
        if _is_tuple(tp) and isinstance(value, list | np.ndarray):
            value = tuple(value.tolist() if isinstance(value, np.ndarray) else value)
            object.__setattr__(cfg, f.name, value)
        if value is None and optional:
            continue
        meta = _meta(f)
        if meta.get("choices") is not None:
            items = value if _is_tuple(tp) else (value,)
            for item in items:
                if item not in meta["choices"]:
                    raise ValueError(
                        f"{f.name} must be {'each ' if _is_tuple(tp) else ''}one of "
                        f"{meta['choices']}; got {item!r}"
                    )
        if meta.get("check") is not None:
            meta["check"](f.name, value)


# --- parsing ---------------------------------------------------------------------------


def _scalar_parser(tp) -> Callable[[str], Any]:
    if tp is bool:
        return _parse_bool
    if tp in (int, float, str):
        return tp
    if tp is Path or (isinstance(tp, type) and issubclass(tp, Path)):
        return Path
    if typing.get_origin(tp) is typing.Literal:
        return str
    raise TypeError(f"no command-line parser for type {tp!r}; give the field parse=")


def _parse_bool(text: str) -> bool:
    low = text.strip().lower()
    if low in ("1", "true", "yes", "on"):
        return True
    if low in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true/false; got {text!r}")


def comma_list(
    item: Callable[[str], Any], what: str = "values", choices: Sequence | None = None
) -> Callable[[str], tuple]:
    """A parser of ``"a,b,c"`` into a tuple of ``item(a), ...`` (empty entries skipped),
    each in ``choices`` when given."""

    def parse(text: str) -> tuple:
        try:
            out = tuple(item(s.strip()) for s in text.split(",") if s.strip())
        except (ValueError, TypeError):
            raise argparse.ArgumentTypeError(
                f"expected comma-separated {what}; got {text!r}"
            ) from None
        bad = [v for v in out if choices is not None and v not in choices]
        if bad:
            raise argparse.ArgumentTypeError(
                f"expected comma-separated {what} of {tuple(choices)}; got {bad[0]!r}"
            )
        return out

    parse.__name__ = f"comma list of {what}"
    return parse


def _parser_for(f: dataclasses.Field, tp) -> Callable[[str], Any]:
    meta = _meta(f)
    if meta.get("parse") is not None:
        parse = meta["parse"]
    else:
        inner, optional = _split_optional(tp)
        if _is_tuple(inner):
            args = typing.get_args(inner)
            if len(args) != 2 or args[1] is not Ellipsis:
                raise TypeError(f"{f.name}: only tuple[T, ...] fields get a comma-list parser")
            what = {int: "integers", float: "numbers", str: "names"}.get(args[0], "values")
            parse = comma_list(_scalar_parser(args[0]), what)
        else:
            parse = _scalar_parser(inner)
        if optional:
            base = parse

            def parse(text: str, base=base):
                return None if text.strip().lower() == "none" else base(text)

            parse.__name__ = getattr(base, "__name__", "value")
    return parse


def _docstring_help(cls) -> dict[str, str]:
    """Field → its description under ``Attributes:`` (Google style, continuation lines
    joined; a line ``a, b: text`` describes both)."""
    doc = inspect.getdoc(cls) or ""
    out: dict[str, str] = {}
    lines = doc.splitlines()
    try:
        start = next(i for i, line in enumerate(lines) if line.strip() == "Attributes:")
    except StopIteration:
        return out
    current: list[str] = []
    indent = None
    for line in lines[start + 1 :]:
        if not line.strip():
            continue
        ind = len(line) - len(line.lstrip())
        if indent is None:
            indent = ind
        if ind < indent:
            break
        m = re.match(r"([\w, ]+):\s*(.*)", line.strip()) if ind == indent else None
        if m:
            current = [n.strip() for n in m.group(1).split(",")]
            for name in current:
                out[name] = m.group(2)
        else:
            for name in current:
                out[name] += " " + line.strip()
    return {k: " ".join(v.replace("``", "").split()) for k, v in out.items()}


def _default_text(f: dataclasses.Field, value) -> str:
    meta = _meta(f)
    if meta.get("default_text") is not None:
        return meta["default_text"]
    if isinstance(value, tuple):
        return ",".join(f"{v:g}" if isinstance(v, float) else str(v) for v in value)
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def _flag(f: dataclasses.Field) -> str | None:
    flag = _meta(f).get("flag", dataclasses.MISSING)
    if flag is dataclasses.MISSING:
        return "--" + f.name.replace("_", "-")
    return flag


def _required(f: dataclasses.Field) -> bool:
    return f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING


def presets_of(cls) -> tuple[str, ...]:
    """The preset classmethods (of ``PRESETS``) that ``cls`` defines."""
    return tuple(p for p in PRESETS if callable(getattr(cls, p, None)))


@dataclasses.dataclass(frozen=True)
class Flag:
    """A command-line flag that is not a config field (its value goes to an ``Adapter``).

    Attributes:
        name: the flag, e.g. ``"--n"``.
        dest: its key in the ``given`` dict the adapter receives.
        help: the help line.
        parse: string → value; None makes a ``--x`` / ``--no-x`` switch.
        metavar: argparse metavar.
    """

    name: str
    dest: str
    help: str
    parse: Callable[[str], Any] | None = None
    metavar: str | None = None


@dataclasses.dataclass(frozen=True)
class Adapter:
    """Flags that set fields only together or through a rule, and that rule.

    ``apply(base, given) -> given`` receives the preset's (or the default) config and the
    flags the user gave (field names, ``outer.inner`` for nested fields, and the
    ``Flag.dest`` of ``flags``) and returns the field values to set (without the
    ``Flag.dest`` keys). It is called on every build, so a rule such as "drop the pd arm
    when ``corrector`` is ``pd``" holds for plain field flags too. Validation stays in the
    config's constructor, which checks whatever the adapter returns.

    Attributes:
        flags: the extra flags.
        apply: the rule.
    """

    flags: tuple[Flag, ...] = ()
    apply: Callable[[Any, dict[str, Any]], dict[str, Any]] = lambda base, given: given


def _field_default(f: dataclasses.Field, base) -> Any:
    if base is not None:
        return getattr(base, f.name)
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return _UNSET


def _add_field(parser, f, tp, help_text: str, default, dest: str, required: bool) -> None:
    meta = _meta(f)
    help_text = (meta.get("help") or help_text).rstrip(".")
    inner, _ = _split_optional(tp)
    nargs = meta.get("nargs")
    if _is_tuple(inner) and meta.get("parse") is None and nargs is None:
        of = f" of: {', '.join(map(str, meta['choices']))}" if meta.get("choices") else ""
        help_text = f"{help_text}; a comma list{of}"
    if default not in (_UNSET, None) and not required:
        shown = _default_text(f, default)
        if nargs is not None and isinstance(default, tuple):
            shown = " ".join(map(str, default))
        help_text = f"{help_text} (default: {shown})" if help_text else f"default: {shown}"
    kwargs: dict[str, Any] = {
        "dest": dest,
        "default": _UNSET,
        "help": help_text.replace("%", "%%"),
        # A nested field's metavar is its own name (N, not DATASET.N).
        "metavar": meta.get("metavar") or (dest.split(".")[-1].upper() if "." in dest else None),
        "required": required,
    }
    choices = meta.get("choices")
    if inner is bool and meta.get("parse") is None:
        kwargs["action"] = argparse.BooleanOptionalAction
        kwargs.pop("metavar")
    elif nargs is not None:
        if not _is_tuple(inner):
            raise TypeError(f"{f.name}: nargs= needs a tuple[T, ...] field")
        kwargs["nargs"] = nargs
        kwargs["type"] = meta.get("parse") or _scalar_parser(typing.get_args(inner)[0])
        if choices is not None:
            kwargs["choices"] = choices
    else:
        kwargs["type"] = _parser_for(f, tp)
        if choices is not None and not _is_tuple(inner):
            kwargs["choices"] = choices
    parser.add_argument(_flag(f), **kwargs)


def add_arguments(
    parser: argparse.ArgumentParser,
    cls,
    *,
    presets: Sequence[str] | None = None,
    default_preset: str | None = None,
    skip: Sequence[str] = (),
    adapter: Adapter | None = None,
) -> None:
    """Adds one flag per field of the config dataclass ``cls`` (and its preset flags).

    Args:
        parser: the (sub)command's parser.
        cls: a frozen config dataclass (fields made with ``option`` or plain fields).
        presets: preset flags to offer (default: every one of ``PRESETS`` that ``cls``
            defines); ``()`` offers none.
        default_preset: the preset used when no preset flag is given (default: the
            dataclass defaults, ``cls()``).
        skip: fields to keep off this command line (their value is the preset's).
        adapter: flags that are not fields and the rule that turns them into fields.
    """
    presets = presets_of(cls) if presets is None else tuple(presets)
    if presets:
        group = parser.add_mutually_exclusive_group()
        for name in presets:
            doc = (inspect.getdoc(getattr(cls, name)) or "").split("\n\n")[0]
            doc = " ".join(doc.replace("``", "").split()).replace("%", "%%")
            group.add_argument(
                f"--{name}", dest="_preset", action="store_const", const=name, help=doc or None
            )
    base = getattr(cls, default_preset)() if default_preset else None
    hints = _hints(cls)
    docs = _docstring_help(cls)
    dests: list[str] = []
    for f in dataclasses.fields(cls):
        flag = _flag(f)
        if flag is None or f.name in skip or not f.init:
            continue
        tp = hints[f.name]
        nested = _meta(f).get("nested")
        if nested is not None:
            sub = _field_default(f, base)
            sub_cls = _split_optional(tp)[0]
            sub_hints, sub_docs = _hints(sub_cls), _docstring_help(sub_cls)
            for g in dataclasses.fields(sub_cls):
                if g.name not in nested:
                    continue
                what = sub_docs.get(g.name, g.name).rstrip(".")
                dest = f"{f.name}.{g.name}"
                _add_field(
                    parser, g, sub_hints[g.name], f"{what} ({dest})", getattr(sub, g.name),
                    dest, required=False,
                )  # fmt: skip
                dests.append(dest)
            unknown = set(nested) - {g.name for g in dataclasses.fields(sub_cls)}
            if unknown:
                raise TypeError(f"{f.name}: nested= names no field {sorted(unknown)}")
            continue
        # A field without a default is a required flag, unless a preset can supply it
        # (then ``from_args`` reports it missing when no preset was chosen).
        required = _required(f) and not presets and default_preset is None
        _add_field(parser, f, tp, docs.get(f.name, ""), _field_default(f, base), f.name, required)
        dests.append(f.name)
    for extra in adapter.flags if adapter is not None else ():
        kwargs: dict[str, Any] = {"dest": extra.dest, "default": _UNSET, "help": extra.help}
        if extra.parse is None:
            kwargs["action"] = argparse.BooleanOptionalAction
        else:
            kwargs.update(type=extra.parse, metavar=extra.metavar)
        parser.add_argument(extra.name, **kwargs)
        dests.append(extra.dest)
    # Every key is set, so a subcommand's parser replaces its parent command's in the
    # namespace (argparse copies a subparser's namespace over the parent's).
    parser.set_defaults(
        _config_cls=cls, _preset=default_preset, _config_dests=tuple(dests), _adapter=adapter
    )


def from_args(args: argparse.Namespace, cls=None):
    """The config the parsed ``args`` describe: the preset (or defaults) with every flag
    the user gave applied (through the command's ``Adapter``, if any). Validation happens
    in the config's constructor (ValueError)."""
    cls = cls or args._config_cls
    dests = getattr(args, "_config_dests", None)
    if dests is None:  # a parser built without add_arguments' defaults
        dests = tuple(f.name for f in dataclasses.fields(cls))
    given = {d: getattr(args, d) for d in dests if getattr(args, d, _UNSET) is not _UNSET}
    preset = getattr(args, "_preset", None)
    adapter = getattr(args, "_adapter", None)
    needs_base = adapter is not None or any("." in k for k in given)
    base = None
    if needs_base:
        base = getattr(cls, preset)() if preset else cls()
    if adapter is not None:
        given = adapter.apply(base, dict(given))
    for key in [k for k in given if "." in k]:  # nested fields: replace inside the config
        outer, inner = key.split(".", 1)
        current = given.get(outer, getattr(base, outer))
        given[outer] = dataclasses.replace(current, **{inner: given.pop(key)})
    if preset is None:
        missing = [f for f in dataclasses.fields(cls) if _required(f) and f.name not in given]
        if missing:
            flags = ", ".join(_flag(f) or f.name for f in missing)
            raise ValueError(f"{missing[0].name} is required ({flags}, or a preset flag)")
        return cls(**given)
    make = getattr(cls, preset)
    params = inspect.signature(make).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return make(**given)
    # A preset with named parameters (e.g. ``full(mnist_path)``) gets those; the other
    # flags are applied on top.
    cfg = make(**{k: v for k, v in given.items() if k in params})
    rest = {k: v for k, v in given.items() if k not in params}
    return dataclasses.replace(cfg, **rest) if rest else cfg
