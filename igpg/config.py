"""The one config layer of the zoo, the tokenizer and the generator: pydantic models that refuse unknown keys,
values of the wrong type and sizes out of range, each with a one-line `IgpgError`, and dotted overrides.

    cfg = load_config(TokenizerConfig, "configs/tokenizer/tiny.yaml", overrides=["train.lr=3e-3"])
    cfg.override({"train.steps": 10})    # a validated copy (what `--set train.steps=10` does on the command line)

A variant of a recipe is an override, not a file: `igpg train generator --config configs/generator/default.yaml
--set train.lr=3e-4 --set model.dim=256`. A value is read as a YAML scalar (`3e-4`, `true`, `[mlp]`, `null`).

Sizes have upper bounds (`Field(le=...)`), far above any model igpg trains and far below what would allocate
gigabytes: a corrupt or hostile config.json is refused before anything is built from it.
"""

from __future__ import annotations

import re
import types
import typing
from pathlib import Path
from typing import Annotated, Any, ClassVar

from pydantic import AfterValidator, BaseModel, ConfigDict, ValidationError

from igpg.errors import IgpgError


def _fraction(x: float) -> float:
    if not 0.0 <= x <= 1.0:  # also refuses NaN
        raise ValueError("must be between 0 and 1")
    return x


Fraction = Annotated[float, AfterValidator(_fraction)]  # a probability or a share


class Config(BaseModel):
    """A frozen, strictly typed config: a bool is not an int, a string is not a number, a list is a tuple."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)
    what: ClassVar[str] = "config"  # how errors name it: "generator config: ..."

    @classmethod
    def parse(cls, raw: Any, where: str | Path | None = None):
        """Validate a mapping read from YAML or JSON; `where` (a file) is named in errors."""
        head = f"{cls.what} config" + (f" {str(where)!r}" if where is not None else "")
        if not isinstance(raw, dict):
            raise IgpgError(f"{head}: expected a mapping of {cls.__name__} keys, got {type(raw).__name__}")
        try:
            return cls.model_validate(_tuples(raw))
        except ValidationError as e:
            raise IgpgError(f"{head}: {_first_error(e, cls)}") from None

    def to_dict(self) -> dict:
        """JSON-ready (tuples as lists): what a checkpoint's config.json holds."""
        return self.model_dump(mode="json")

    def override(self, changes: dict[str, Any]):
        """A validated copy with dotted keys set: {"train.lr": 3e-4}."""
        raw = self.to_dict()
        for path, value in changes.items():
            set_dotted(raw, path, value, type(self), head=f"{self.what} config")
        return type(self).parse(raw)

    def replace(self, **changes: Any):
        """A validated copy with some fields changed (as `dataclasses.replace`)."""
        return self.override(changes)


def _tuples(x: Any) -> Any:
    """Lists become tuples (strict tuples fields take no lists), recursively."""
    if isinstance(x, dict):
        return {k: _tuples(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return tuple(_tuples(v) for v in x)
    return x


_KINDS = {"int_type": "int", "float_type": "float", "bool_type": "bool", "string_type": "str", "tuple_type": "list",
          "dict_type": "mapping", "model_type": "mapping", "model_attributes_type": "mapping"}


def _first_error(e: ValidationError, cls: type[BaseModel]) -> str:
    """pydantic's first error as one short line: the dotted key, what it must be, what it got."""
    err = e.errors(include_url=False)[0]
    key = ".".join(str(p) for p in err["loc"])
    got = repr(err.get("input"))[:40]
    kind, ctx = err["type"], err.get("ctx") or {}
    if kind == "extra_forbidden":
        return f"unknown key {key!r}; allowed: {', '.join(_allowed(cls, err['loc'][:-1]) or ())}"
    if kind == "missing":
        return f"missing key {key!r}"
    if kind in _KINDS:
        return f"{key} must be {_KINDS[kind]}, got {got}"
    if kind == "greater_than_equal":
        return f"{key} must be at least {ctx['ge']}, got {got}"
    if kind == "less_than_equal":
        return f"{key} must be at most {ctx['le']}, got {got}"
    if kind == "too_short":
        return f"{key} must have at least {ctx['min_length']} item(s), got {got}"
    if kind == "greater_than":
        return f"{key} must be more than {ctx['gt']}, got {got}"
    if kind == "value_error":
        return f"{key} {ctx['error']}, got {got}"
    if kind == "literal_error":
        return f"{key} must be one of {ctx['expected']}, got {got}"
    return f"{key}: {err['msg']}, got {got}"


def _allowed(cls: type[BaseModel], loc: tuple) -> list[str] | None:
    """The keys of the (nested) config at `loc`; None where the keys are free (a mapping's own keys, as a zoo's
    dataset names) or `loc` is not a section."""
    annotation: Any = cls
    for part in loc:
        origin = typing.get_origin(annotation)
        if origin in (dict, tuple):  # `part` is a key of a mapping or an index of a list: step into its values
            annotation = typing.get_args(annotation)[-1 if origin is dict else 0]
        else:
            model = _model_in(annotation)
            field = model.model_fields.get(part) if model is not None and isinstance(part, str) else None
            if field is None:
                return None
            annotation = field.annotation
        annotation = _strip_optional(annotation)
    if typing.get_origin(annotation) in (dict, tuple):
        return None
    model = _model_in(annotation)
    return sorted(model.model_fields) if model is not None else None


def _strip_optional(annotation: Any) -> Any:
    """`X | None` -> X."""
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    if typing.get_origin(annotation) in (typing.Union, types.UnionType) and len(args) == 1:
        return args[0]
    return annotation


def _model_in(annotation: Any) -> type[BaseModel] | None:
    return annotation if isinstance(annotation, type) and issubclass(annotation, BaseModel) else None


_EXPONENT = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+")


def parse_override(text: str) -> tuple[str, Any]:
    """"train.lr=3e-4" -> ("train.lr", 0.0003): the value is a YAML scalar (or a flow list / mapping)."""
    import yaml

    path, sep, value = text.partition("=")
    if not sep or not path.strip():
        raise IgpgError(f"--set {text!r}: expected KEY=VALUE, e.g. --set train.lr=3e-4")
    try:
        parsed = yaml.safe_load(value) if value.strip() else ""
    except yaml.YAMLError:
        raise IgpgError(f"--set {text!r}: the value is not valid YAML") from None
    if isinstance(parsed, str) and _EXPONENT.fullmatch(parsed.strip()):
        parsed = float(parsed)  # YAML 1.1 reads 3e-4 (no dot) as a string; on a command line it means a number
    return path.strip(), parsed


Schema = type[BaseModel] | dict[tuple, set[str]] | None  # what keys exist where (a dict: at each path; else raw's)


def _keys_at(schema: Schema, loc: tuple, node: Any) -> list[str]:
    if isinstance(schema, dict) and loc in schema:
        return sorted(schema[loc])
    if isinstance(schema, type):
        allowed = _allowed(schema, loc)
        if allowed is not None:
            return allowed
    return sorted(map(str, node)) if isinstance(node, dict) else []


def set_dotted(raw: dict, path: str, value: Any, schema: Schema = None, head: str = "--set") -> None:
    """Set raw[a][b][c] = value for path "a.b.c". Each part must be a key the `schema` allows at its place (a
    missing section is created), or, where it says nothing, a key `raw` already has. An unknown path is an error,
    never a new key. Errors start with `head` (the command-line option, or "generator config" for `override`)."""
    node, parts = raw, path.split(".")
    for i in range(len(parts)):
        allowed = _keys_at(schema, tuple(parts[:i]), node)
        if parts[i] not in allowed:
            raise IgpgError(f"{head} {path}: unknown key {'.'.join(parts[: i + 1])!r}; allowed: "
                            f"{', '.join(allowed) or 'none (not a section)'}")
        if i == len(parts) - 1:
            node[parts[i]] = value
            return
        if node.get(parts[i]) is None and schema is not None and _keys_at(schema, tuple(parts[: i + 1]), None):
            node[parts[i]] = {}
        if not isinstance(node.get(parts[i]), dict):
            raise IgpgError(f"{head} {path}: {'.'.join(parts[: i + 1])!r} is not a section")
        node = node[parts[i]]


def apply_overrides(raw: Any, overrides: list[str] | None, schema: Schema = None) -> Any:
    """`raw` (a mapping read from a config file) with each "KEY=VALUE" of `overrides` set."""
    if not overrides:
        return raw
    if not isinstance(raw, dict):
        raise IgpgError("--set: the config file is not a mapping")
    for text in overrides:
        set_dotted(raw, *parse_override(text), schema)
    return raw


def read_yaml(path: str | Path, what: str):
    """The parsed content of a YAML config file, with one-line errors for a missing or malformed file."""
    import yaml

    path = Path(path)
    if not path.is_file():
        raise IgpgError(f"{what} config {str(path)!r} not found")
    try:
        return yaml.safe_load(path.read_text())
    except (yaml.YAMLError, UnicodeDecodeError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise IgpgError(f"{what} config {str(path)!r} is not valid YAML: {first}") from None


def load_config(cls: type[Config], path: str | Path, overrides: list[str] | None = None):
    """A config file (YAML) with `--set` overrides, validated."""
    raw = apply_overrides(read_yaml(path, cls.what), overrides, cls)
    return cls.parse(raw, where=path)


def sections_of_flat(raw: Any, sections: dict[str, type[BaseModel]], removed: dict[str, Any], what: str,
                     where: str | Path | None = None) -> Any:
    """A flat mapping (a config written before its sections: every key at the top) read into `sections`
    ({"model": ModelCls, ...}), each key into the section whose model has that field; anything else as it is.
    A key in `removed` (an option taken out, with its neutral value) is dropped if it holds that value (a list
    equals a tuple; a bool never equals a number) and refused otherwise, in one line headed "`what` config"."""
    if not (isinstance(raw, dict) and raw and not set(raw) & set(sections)):
        return raw
    owner: dict[str, str] = {}
    for section, cls in sections.items():
        for name in cls.model_fields:
            if owner.setdefault(name, section) != section:
                raise IgpgError(f"{what} config: field {name!r} is in sections {owner[name]!r} and {section!r}")
    head = f"{what} config" + (f" {str(where)!r}" if where is not None else "")
    out: dict[str, dict] = {}
    for key in sorted(raw, key=str):
        if key in removed:
            value, neutral = raw[key], removed[key]
            same = (tuple(value) if isinstance(value, list) else value) == neutral
            if not same or isinstance(value, bool) != isinstance(neutral, bool):
                raise IgpgError(f"{head}: option {key!r} was removed; an old config may hold it only at its "
                                f"neutral value {neutral!r}, got {repr(value)[:40]}")
            continue
        section = owner.get(key) if isinstance(key, str) else None
        if section is None:
            raise IgpgError(f"{head}: unknown key {str(key)!r}; allowed: {', '.join(sorted(owner))}")
        out.setdefault(section, {})[key] = raw[key]
    return out
