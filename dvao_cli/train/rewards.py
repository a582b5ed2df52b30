"""User reward functions, `--reward module:function`, called with TRL's convention.

`function(prompts=[...], completions=[...], **kwargs) -> list[float | None]`: one value per
completion; None (or NaN) means the reward does not apply and becomes a NaN reward, which the
advantage engine skips (nan="ignore", as TRL does). Extra keyword arguments passed: `answer`
(the correct answers), `finished` (whether each completion ended with the end token) and `step`.
The module is imported by name (on sys.path, the current directory included) or, when the part
before the colon is a `.py` file, loaded from that file.
"""

from __future__ import annotations

import importlib
import importlib.machinery
import importlib.util
import math
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dvao_cli.errors import UsageError


@dataclass(frozen=True)
class UserReward:
    spec: str
    name: str
    function: Callable[..., Any]

    def __call__(
        self, prompts: Sequence[str], completions: Sequence[str], **kwargs: Any
    ) -> list[float]:
        try:
            values = self.function(prompts=list(prompts), completions=list(completions), **kwargs)
        except KeyboardInterrupt:
            raise
        except BaseException as err:  # SystemExit too: a reward function never ends the run
            raise UsageError(f"--reward '{self.spec}' raised {type(err).__name__}: {err}") from err
        return self._check(values, len(completions))

    def _check(self, values: Any, n: int) -> list[float]:
        try:
            values = list(values)
        except TypeError:
            raise UsageError(
                f"--reward '{self.spec}' returned {type(values).__name__}, "
                f"expected a list of {n} floats (or None)"
            ) from None
        if len(values) != n:
            raise UsageError(
                f"--reward '{self.spec}' returned {len(values)} values for {n} completions"
            )
        out: list[float] = []
        for i, value in enumerate(values):
            if value is None:
                out.append(math.nan)
                continue
            try:  # numbers only: a string such as "1.0" is a bug in the reward, not a reward
                if isinstance(value, (str, bytes, bytearray)):
                    raise TypeError
                number = float(value)
            except (TypeError, ValueError):
                raise UsageError(
                    f"--reward '{self.spec}' returned a non-number at index {i}: {value!r}"
                ) from None
            if math.isinf(number):
                raise UsageError(f"--reward '{self.spec}' returned {number} at index {i}")
            out.append(number)
        return out


def _import(module: str, spec: str) -> Any:
    if module.endswith(".py"):
        path = Path(module)
        if not path.is_file():
            raise UsageError(f"--reward '{spec}': no such file '{module}'")
        name = f"dvao_user_reward_{path.stem}"
        loader_spec = importlib.util.spec_from_file_location(name, path)
        if loader_spec is None or loader_spec.loader is None:
            raise UsageError(f"--reward '{spec}': cannot load '{module}'")
        mod = importlib.util.module_from_spec(loader_spec)
        try:
            loader_spec.loader.exec_module(mod)
        except (Exception, SystemExit) as err:
            raise UsageError(
                f"--reward '{spec}': importing '{module}' failed: {type(err).__name__}: {err}"
            ) from err
        return mod
    if "" not in sys.path and "." not in sys.path:
        sys.path.insert(0, "")  # the console script does not put the current directory first
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as err:
        if err.name and module.startswith(err.name):
            raise UsageError(f"--reward '{spec}': no module named '{module}'") from None
        raise UsageError(f"--reward '{spec}': importing '{module}' failed: {err}") from err
    except (Exception, SystemExit) as err:
        raise UsageError(
            f"--reward '{spec}': importing '{module}' failed: {type(err).__name__}: {err}"
        ) from err


def reward_file(spec: str) -> Path | None:
    """The file a `--reward` spec names or would import (found without importing anything)."""
    module = spec.partition(":")[0].strip()
    if module.endswith(".py"):
        return Path(module)
    if not module:
        return None
    found = importlib.machinery.PathFinder.find_spec(module.split(".")[0], ["", *sys.path])
    origin = None if found is None else found.origin
    return None if origin in (None, "built-in", "frozen") else Path(origin)


def load_reward(spec: str) -> UserReward:
    """`"my_rewards:brevity"` -> a checked callable named `brevity`."""
    module, sep, function = spec.partition(":")
    if not sep or not module.strip() or not function.strip() or ":" in function:
        raise UsageError(f"--reward '{spec}' is not of the form module:function")
    mod = _import(module.strip(), spec)
    fn = getattr(mod, function.strip(), None)
    if fn is None:
        raise UsageError(f"--reward '{spec}': module '{module}' has no '{function}'")
    if not callable(fn):
        raise UsageError(f"--reward '{spec}': '{function}' is not callable")
    return UserReward(spec, function.strip(), fn)
