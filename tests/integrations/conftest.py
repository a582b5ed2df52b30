"""Integration tests run in their trainer's own environment (`./scripts/test trl|verl|swift`).

In the main environment the trainer is not installed and these tests skip. Under
`./scripts/test NAME [VERSION]`, DVAO_INTEGRATION=NAME makes a missing or broken trainer a
failure, so CI cannot pass by skipping, and DVAO_TRAINER_VERSION=VERSION one of another version.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import os
from types import ModuleType

import pytest

from dvao_cli.integrations.versions import DISTRIBUTION


def require(suite: str, module: str) -> ModuleType:
    """Import `module` for the `suite` integration: a failure there, a skip elsewhere."""
    if os.environ.get("DVAO_INTEGRATION") == suite:
        imported = importlib.import_module(module)
        want = os.environ.get("DVAO_TRAINER_VERSION")
        got = importlib.metadata.version(DISTRIBUTION[suite])
        if want and got != want:
            raise RuntimeError(f"DVAO_TRAINER_VERSION={want}, but {suite} {got} is installed")
        return imported
    return pytest.importorskip(module)
