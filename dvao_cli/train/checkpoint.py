"""Checkpoints: `torch.save` of plain tensors, dicts, lists and numbers only, so that they load
with `torch.load(weights_only=True)` (no pickled code runs when a checkpoint is opened).

A checkpoint holds everything a resumed run needs to continue bit for bit: the policy, the frozen
reference, the optimizer, the step, and every random state (the sampling generator, torch's global
CPU generator, Python's `random` used to draw prompts).
"""

from __future__ import annotations

import io
import random
from pathlib import Path
from typing import Any

import torch

from dvao_cli.errors import InputError
from dvao_cli.io import atomic_path
from dvao_cli.train.outputs import writing

CHECKPOINTS = "checkpoints"


def checkpoint_path(run_dir: Path, step: int) -> Path:
    return run_dir / CHECKPOINTS / f"step-{step:06d}.pt"


def save_torch(obj: Any, path: Path) -> None:
    """`torch.save` serialised in memory, then written atomically with plain file I/O: a full
    disk is an OSError with its errno (one line, exit 2), not a torch message."""
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    with writing(path), atomic_path(path) as tmp:
        tmp.write_bytes(buffer.getbuffer())


def save_checkpoint(run_dir: Path, step: int, state: dict[str, Any]) -> Path:
    path = checkpoint_path(run_dir, step)
    save_torch({"step": step, **state}, path)
    return path


def latest_checkpoint(run_dir: Path) -> Path | None:
    paths = sorted((run_dir / CHECKPOINTS).glob("step-*.pt"))
    return paths[-1] if paths else None


def remove_checkpoints(run_dir: Path) -> None:
    """A fresh run in an existing directory must never resume from the old run's checkpoints."""
    for path in (run_dir / CHECKPOINTS).glob("step-*.pt"):
        path.unlink()


def load_checkpoint(path: Path) -> dict[str, Any]:
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise InputError(
            f"cannot load checkpoint: {type(err).__name__}: {err}", path=path
        ) from None


def python_rng_state(rng: random.Random) -> list[Any]:
    version, internal, gauss = rng.getstate()
    return [version, list(internal), gauss]


def set_python_rng_state(rng: random.Random, state: list[Any]) -> None:
    version, internal, gauss = state
    rng.setstate((version, tuple(internal), gauss))
