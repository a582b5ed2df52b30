"""Integration tests run in their trainer's own environment (`./scripts/test trl|verl|swift`).

In the main environment the trainer is not installed and these tests skip. Under
`./scripts/test NAME`, DVAO_INTEGRATION=NAME makes a missing or broken trainer a failure, so CI
cannot pass by skipping.
"""

from __future__ import annotations

import importlib
import os
from types import ModuleType

import pytest


def require(suite: str, module: str) -> ModuleType:
    """Import `module` for the `suite` integration: a failure there, a skip elsewhere."""
    if os.environ.get("DVAO_INTEGRATION") == suite:
        return importlib.import_module(module)
    return pytest.importorskip(module)
