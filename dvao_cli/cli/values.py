"""Command-line values into Python values without importing pydantic, where that is exact.

typer (0.2x and later) coerces every option value through a pydantic `TypeAdapter`: importing
pydantic and building one adapter per option costs about 60 ms of a 0.3 s `dvao analyze LOG
--json`. For the plain values dvao's options take (a string, an integer or a float written
plainly, a choice, a path, lists of those, None) the adapter's answer is known without it, so
`install()` gives typer's parameters a coercer that computes exactly that answer and hands
anything else (an error to report, an unusual spelling such as "1_000" or "inf", a type it
does not know) to typer's own pydantic coercion, unchanged. `tests/test_cli_values.py` checks
both give the same value, option by option, on every command.

Nothing here changes what typer accepts or how it words an error: the fallback is typer's.
If typer's internals are not the ones this was written for, `install()` does nothing.

Why typer's private classes and not its public API: typer 0.29 has no public way past pydantic.
A `parser=` callable is itself wrapped in a `TypeAdapter` (so pydantic is imported), and
`click_type=` (a custom `click.ParamType`) went when typer took click in as `typer._click`.
Without this patch the paper-scale `dvao analyze LOG --json` takes about 0.1 s more CPU
(docs/performance.md); `tests/test_cli_values.py` fails once `parser=` stops needing pydantic.
"""

from __future__ import annotations

import re
from enum import Enum
from pathlib import Path
from typing import Any, Literal, get_args, get_origin

_INT = re.compile(r"-?(0|[1-9][0-9]{0,17})")  # no sign, spaces, underscores or leading zeros
_FLOAT = re.compile(r"-?([0-9]{1,30}(\.[0-9]{0,30})?|\.[0-9]{1,30})([eE][-+]?[0-9]{1,3})?")


class _Fallback(Exception):
    """This value is for typer's own coercion."""


def _leaf(annotation: Any, info: Any, value: Any, param: Any, ctx: Any) -> Any:
    """The value typer's adapter gives for one item, or _Fallback."""
    if info.parser is not None:
        raise _Fallback
    if annotation is str:
        if isinstance(value, str):
            return value
        raise _Fallback
    if annotation is int or annotation is float:
        if isinstance(value, bool):
            raise _Fallback
        if isinstance(value, str):
            pattern = _INT if annotation is int else _FLOAT
            if not pattern.fullmatch(value):
                raise _Fallback
            number: Any = annotation(value)
        elif type(value) is annotation:
            number = value
        else:
            raise _Fallback
        if info.clamp or (info.min is not None and not number >= info.min):
            raise _Fallback
        if info.max is not None and not number <= info.max:
            raise _Fallback
        return number
    if (isinstance(annotation, type) and issubclass(annotation, Enum)) or (
        get_origin(annotation) is Literal
    ):
        from typer._param_types import coerce_cli_choice

        choices = list(annotation) if isinstance(annotation, type) else get_args(annotation)
        try:
            return coerce_cli_choice(
                value, choices=choices, case_sensitive=info.case_sensitive, ctx=ctx
            )
        except Exception:
            raise _Fallback from None
    if isinstance(annotation, type) and issubclass(annotation, Path):
        if info.path_type is not None:
            raise _Fallback
        if isinstance(value, str):
            if not value or "\0" in value:
                raise _Fallback
            value = annotation(value)  # what pydantic makes of a plain string
        elif not isinstance(value, annotation):
            raise _Fallback
        from typer._param_types import coerce_cli_path

        try:
            return coerce_cli_path(value, info, path_type=annotation, param=param, ctx=ctx)
        except Exception:
            raise _Fallback from None
    raise _Fallback


class _PlainValues:
    """typer's `RuntimeParam` for one parameter: exact plain values here, the rest to typer's
    own (built, with pydantic, only when first needed)."""

    def __init__(self, descriptor: Any, build: Any) -> None:
        self.descriptor = descriptor
        self._build = build
        self._typer: Any = None

    def _original(self) -> Any:
        if self._typer is None:
            self._typer = self._build(self.descriptor)
        return self._typer

    def coerce(self, value: Any, param: Any, ctx: Any) -> Any:
        descriptor = self.descriptor
        multi = param.multiple or param.nargs == -1
        if value is None:  # typer's RuntimeParam.coerce, before any adapter
            return () if multi else None
        try:
            if descriptor.file_annotation is not None:
                raise _Fallback
            annotation, info = descriptor.annotation, descriptor.parameter_info
            if get_origin(annotation) is list:
                if isinstance(value, str):
                    raise _Fallback
                (item,) = get_args(annotation)
                items = value if isinstance(value, (list, tuple)) else [value]
                return [_leaf(item, info, v, param, ctx) for v in items]
            if get_origin(annotation) is not None and get_origin(annotation) is not Literal:
                raise _Fallback
            if multi and isinstance(value, str):
                raise _Fallback
            return _leaf(annotation, info, value, param, ctx)
        except (_Fallback, ImportError):  # ImportError: a typer without these helpers
            return self._original().coerce(value, param=param, ctx=ctx)

    def __getattr__(self, name: str) -> Any:  # anything else typer asks of its RuntimeParam
        return getattr(self._original(), name)


def install() -> bool:
    """Give typer's parameters the plain-value coercer. False (nothing done) where typer is not
    the version this was written for (one without pydantic coercion needs none of it)."""
    try:
        from typer import core
    except ImportError:  # pragma: no cover
        return False
    cls = getattr(core, "_TyperParameter", None)
    build = getattr(core, "build_runtime_param", None)
    if cls is None or build is None or not hasattr(cls, "get_runtime_param"):
        return False
    if getattr(cls.get_runtime_param, "_dvao_plain", False):
        return True

    def get_runtime_param(self: Any) -> Any:
        if getattr(self, "_runtime_param", None) is None:
            self._runtime_param = _PlainValues(self.type_descriptor, build)
        return self._runtime_param

    get_runtime_param._dvao_plain = True  # type: ignore[attr-defined]
    cls.get_runtime_param = get_runtime_param
    return True
