"""dvao: per-objective variance, DVAO weights and multi-reward advantage diagnostics for GRPO.

The Python API (torch is imported on first use, not at `import dvao_cli`; the command line's
typer, rich and click never are):

    from dvao_cli import dvao_advantages, compute_advantages

The computational core is `dvao_cli.core`: the table of schemes (`core.schemes`), its
numerical conventions and tolerances, and the row engine (`core.engine`, numpy or torch).
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

_LAZY = {
    "compute_advantages": "dvao_cli.advantages",
    "dvao_advantages": "dvao_cli.advantages",
    "rc_advantages": "dvao_cli.advantages",
    "ac_advantages": "dvao_cli.advantages",
    "gdpo_advantages": "dvao_cli.advantages",
    "grpo_advantages": "dvao_cli.advantages",
    "group_stats": "dvao_cli.advantages",
    "AdvantageResult": "dvao_cli.advantages",
    "GroupStats": "dvao_cli.advantages",
    "read_log": "dvao_cli.reader.memory",
    "DvaoError": "dvao_cli.errors",
}

__all__ = ["__version__", *_LAZY]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'dvao_cli' has no attribute '{name}'")
    import importlib

    return getattr(importlib.import_module(module), name)
