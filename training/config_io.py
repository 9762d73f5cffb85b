"""YAML recipe files with ``--set key.sub=value`` overrides, validated into typed configs."""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

ConfigT = TypeVar("ConfigT", bound=BaseModel)

CONFIG_DIR = Path(__file__).parent / "configs"


class ConfigError(ValueError):
    """A recipe file or override that does not describe a valid configuration."""


def resolve_config_path(name: str | Path) -> Path:
    """A path as given, or the name of a recipe shipped in ``training/configs``."""
    path = Path(name)
    if path.is_file():
        return path
    shipped = CONFIG_DIR / path.name
    if shipped.is_file():
        return shipped
    if (shipped_yaml := shipped.with_suffix(".yaml")).is_file():
        return shipped_yaml
    names = ", ".join(sorted(p.stem for p in CONFIG_DIR.glob("*.yaml")))
    raise ConfigError(f"no recipe file {name}; shipped recipes: {names}")


def apply_override(tree: dict[str, Any], assignment: str) -> None:
    """Apply ``a.b.c=value`` (value parsed as YAML) to a nested dict in place."""
    key, sep, raw = assignment.partition("=")
    if not sep or not key:
        raise ConfigError(f"override {assignment!r} must look like key.sub=value")
    *parents, leaf = key.split(".")
    node = tree
    for part in parents:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ConfigError(f"override {assignment!r}: {part!r} is not a section")
        node = child
    node[leaf] = yaml.safe_load(raw)


def load_config(
    path: str | Path, model: type[ConfigT], overrides: list[str] | tuple[str, ...] = ()
) -> ConfigT:
    resolved = resolve_config_path(path)
    try:
        tree = yaml.safe_load(resolved.read_text()) or {}
    except yaml.YAMLError as err:
        raise ConfigError(f"{resolved}: not valid YAML: {err}") from err
    if not isinstance(tree, dict):
        raise ConfigError(f"{resolved}: a recipe must be a mapping at the top level")
    for assignment in overrides:
        apply_override(tree, assignment)
    try:
        return model.model_validate(tree)
    except ValidationError as err:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in err.errors()
        )
        raise ConfigError(f"{resolved}: {problems}") from err
