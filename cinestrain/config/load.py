"""Load and validate a node configuration file.

One call, one answer: either a valid :class:`NodeConfig`, or a :class:`ConfigError` listing
every bad key with its value and what is allowed (not just the first one found).
"""

from __future__ import annotations

import os
import tomllib
from importlib import resources
from pathlib import Path

from pydantic import ValidationError

from cinestrain.config.schema import NodeConfig

#: environment variable naming the configuration file when no path is given
CONFIG_ENV = "CINESTRAIN_CONFIG"


class ConfigError(ValueError):
    """The configuration file cannot be read or does not validate."""

    def __init__(self, source: str, problems: list[str]) -> None:
        self.source = source
        self.problems = problems
        lines = "\n".join(f"  - {p}" for p in problems)
        super().__init__(f"invalid configuration {source}:\n{lines}")


def default_config_path() -> Path:
    """The embedded defaults, ``config/default.toml`` inside the package."""
    return Path(str(resources.files("cinestrain.config").joinpath("default.toml")))


def _describe(error: dict) -> str:
    """One validation error as ``key = value: what is allowed``."""
    key = ".".join(str(part) for part in error["loc"]) or "(top level)"
    message = error["msg"].removeprefix("Value error, ")
    if error["type"] == "extra_forbidden":
        return f"{key}: unknown key (check the spelling against default.toml)"
    if error["type"] == "missing":
        return f"{key}: required key is missing"
    value = error.get("input")
    if isinstance(value, dict):
        return f"{key}: {message}"
    return f"{key} = {value!r}: {message}"


def parse_config(data: dict, source: str = "<dict>") -> NodeConfig:
    """Validate an already-parsed TOML document."""
    try:
        return NodeConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(source, [_describe(e) for e in exc.errors()]) from None


def load_config(path: str | os.PathLike[str] | None = None) -> NodeConfig:
    """Read a TOML configuration file and validate it.

    Parameters
    ----------
    path
        The file to read. ``None`` reads ``$CINESTRAIN_CONFIG`` when set, else the
        embedded defaults (which run out of the box for a local user).

    Raises
    ------
    ConfigError
        The file is missing, is not TOML, or a key has a value that is not allowed.
    """
    if path is None:
        path = os.environ.get(CONFIG_ENV) or default_config_path()
    path = Path(path)
    try:
        with path.open("rb") as fh:
            data = tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError(str(path), ["file not found"]) from None
    except PermissionError:
        raise ConfigError(str(path), ["permission denied"]) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(str(path), [f"not valid TOML: {exc}"]) from None
    return parse_config(data, str(path))
