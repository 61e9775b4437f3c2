"""Reading a configuration: TOML on top of the embedded defaults, every mistake reported at once.

Every key has a type, a default (or is required), a range or a set of values, and a description.
Loading reports every problem at once, each naming its key (``boards[1].files[0]: ...``), so a
field engineer fixes a file in one pass. Relative paths are relative to the config file.
"""

from __future__ import annotations

import difflib
import math
import tomllib
import unicodedata
from collections.abc import Mapping
from dataclasses import MISSING, Field, fields, is_dataclass
from pathlib import Path
from typing import Any, get_args, get_origin, get_type_hints

from recorder.config.boards import BoardCommon
from recorder.config.checks import CrossChecks
from recorder.config.model import TERMINOLOGY_MAX_LEN, Config, embedded_config
from recorder.drivers.registry import DRIVERS, board_schema
from recorder.errors import ConfigError


def load_config(path: Path | None) -> Config:
    """Load and validate ``path``, or return the embedded defaults when it is None."""
    if path is None:
        return embedded_config()
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError([f"{path}: cannot read: {exc.strerror or exc}"]) from exc
    except UnicodeDecodeError as exc:
        raise ConfigError([f"{path}: not UTF-8 text: {exc.reason}"]) from exc
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([f"{path}: not valid TOML: {exc}"]) from exc
    return config_from_dict(raw, base_dir=path.parent)


def config_from_dict(raw: Mapping[str, Any], *, base_dir: Path | None = None) -> Config:
    """Validate a parsed TOML document; raises ConfigError listing every problem."""
    problems: list[str] = []
    config: Config | None = _Loader(problems, base_dir or Path.cwd()).table(Config, raw, "")
    if problems or config is None:
        raise ConfigError(problems)
    return config


# --- loading -------------------------------------------------------------------------------

_INVALID = object()


def _key(where: str, name: str) -> str:
    return f"{where}.{name}" if where else name


# TOML's types by the words an error message uses for them; bool before int, as bool is an int.
_TOML_TYPES: tuple[tuple[type, str], ...] = (
    (bool, "a boolean"), (int, "an integer"), (float, "a float"), (str, "a string"),
    (list, "an array"), (dict, "a table"),
)


def _describe(value: Any) -> str:
    return next((name for tp, name in _TOML_TYPES if isinstance(value, tp)),
                type(value).__name__)


class _Loader(CrossChecks):
    def __init__(self, problems: list[str], base_dir: Path) -> None:
        super().__init__(problems, base_dir)
        self.table_checks = self.checks()

    def table(self, cls: type[Any], raw: Any, where: str) -> Any:
        if not isinstance(raw, dict):
            self.problems.append(f"{where or 'config'}: expected a table, got {_describe(raw)}")
            return None
        hints = get_type_hints(cls)
        known = [f.name for f in fields(cls)]
        for name in raw:
            if name not in known:
                hint = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
                suffix = f" (did you mean '{hint[0]}'?)" if hint else ""
                self.problems.append(f"{_key(where, name)}: unknown key{suffix}")
        values: dict[str, Any] = {}
        complete = True
        for f in fields(cls):
            key = _key(where, f.name)
            if f.name in raw:
                value = self.value(hints[f.name], raw[f.name], key, f)
                if value is _INVALID:
                    complete = False
                else:
                    values[f.name] = value
            elif f.default is MISSING and f.default_factory is MISSING:
                self.problems.append(f"{key}: required")
                complete = False
        if not complete:
            return None
        value = cls(**values)
        check = self.table_checks.get(BoardCommon if issubclass(cls, BoardCommon) else cls)
        return check(value, where) if check is not None else value

    def value(self, tp: Any, raw: Any, key: str, f: Field[Any] | None) -> Any:
        meta = f.metadata if f is not None else {}
        origin = get_origin(tp)
        if origin is tuple:
            return self.array(get_args(tp)[0], raw, key)
        if origin is dict:
            default = f.default_factory() if f is not None and callable(f.default_factory) else {}
            return self.names(raw, key, default)
        if tp is BoardCommon:
            return self.board(raw, key)
        if is_dataclass(tp):
            value = self.table(tp, raw, key)  # type: ignore[arg-type]
            return _INVALID if value is None else value
        return self.scalar(tp, raw, key, meta)

    def array(self, item_tp: Any, raw: Any, key: str) -> Any:
        if not isinstance(raw, list):
            self.problems.append(f"{key}: expected an array, got {_describe(raw)}")
            return _INVALID
        items = [self.value(item_tp, item, f"{key}[{i}]", None) for i, item in enumerate(raw)]
        return _INVALID if any(item is _INVALID for item in items) else tuple(items)

    def names(self, raw: Any, key: str, default: dict[str, str]) -> Any:
        """A free-form table of names to strings, on top of ``default``; names are lower case."""
        if not isinstance(raw, dict):
            self.problems.append(f"{key}: expected a table, got {_describe(raw)}")
            return _INVALID
        merged = dict(default)
        ok = True
        for name, value in raw.items():
            where = f"{key}.{name}"
            problem = None
            if not isinstance(value, str):
                problem = f"expected a string, got {_describe(value)} {value!r}"
            elif not name.strip():
                problem = "a name must not be blank"
            elif any(unicodedata.category(c) == "Cc" for c in name + value):
                problem = "contains control characters"
            elif max(len(name), len(value)) > TERMINOLOGY_MAX_LEN:
                problem = f"names and values are at most {TERMINOLOGY_MAX_LEN} characters"
            if problem is not None:
                self.problems.append(f"{where}: {problem}")
                ok = False
            else:
                merged[name.lower()] = value
        return merged if ok else _INVALID

    def board(self, raw: Any, key: str) -> Any:
        if not isinstance(raw, dict):
            self.problems.append(f"{key}: expected a table, got {_describe(raw)}")
            return _INVALID
        names = ", ".join(sorted(DRIVERS))
        driver = raw.get("driver")
        if driver is None:
            self.problems.append(f"{key}.driver: required (one of: {names})")
            return _INVALID
        cls = board_schema(driver) if isinstance(driver, str) else None
        if cls is None:
            self.problems.append(f"{key}.driver: unknown driver {driver!r} (one of: {names})")
            return _INVALID
        value = self.table(cls, raw, key)
        return _INVALID if value is None else value

    def scalar(self, tp: Any, raw: Any, key: str, meta: Mapping[str, Any]) -> Any:
        expected = {bool: "true or false", int: "an integer", float: "a number",
                    str: "a string", Path: "a path string"}[tp]
        ok = (
            (tp is bool and isinstance(raw, bool))
            or (tp is int and isinstance(raw, int) and not isinstance(raw, bool))
            or (tp is float and isinstance(raw, int | float) and not isinstance(raw, bool))
            or (tp in (str, Path) and isinstance(raw, str))
        )
        if not ok:
            self.problems.append(f"{key}: expected {expected}, got {_describe(raw)} {raw!r}")
            return _INVALID
        if tp is float:
            raw = float(raw)
            if not math.isfinite(raw):  # TOML has nan and inf; no setting means either
                self.problems.append(f"{key}: {raw!r} is not a finite number")
                return _INVALID
        if isinstance(raw, str) and any(unicodedata.category(c) == "Cc" for c in raw):
            # Settings end up in file names, logs and API answers, none of which can take them.
            self.problems.append(f"{key}: contains control characters: {raw!r}")
            return _INVALID
        low, high, choices = meta.get("min"), meta.get("max"), meta.get("choices")
        if (low is not None and raw < low) or (high is not None and raw > high):
            self.problems.append(f"{key}: {raw!r} is out of range [{low}, {high}]")
            return _INVALID
        if choices is not None:
            match = next((c for c in choices if c.upper() == raw.upper()), None)
            if match is None:
                self.problems.append(f"{key}: {raw!r} is not one of {', '.join(choices)}")
                return _INVALID
            raw = match
        if tp is Path:
            if not raw:
                self.problems.append(f"{key}: must not be empty")
                return _INVALID
            path = Path(raw).expanduser()
            return path if path.is_absolute() else self.base_dir / path
        return raw


