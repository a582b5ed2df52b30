"""The trainer versions each integration supports, and the two CI tests: one place for both.

    SUPPORTED[name]  the pip specifier of the `dvao[name]` extra (pyproject.toml repeats it; a
                     test checks that they agree): installing the extra keeps a supported
                     trainer the user already has
    TESTED[name]     (oldest, newest) supported release: `./scripts/test NAME` tests both, each
                     in an environment of its own, end to end

Imports nothing, so that `python3 dvao_cli/integrations/versions.py NAME` (what scripts/test
runs, before any environment exists) prints the distribution pip installs and the tested pair:
`ms-swift 4.5.0 4.6.0`.
"""

from __future__ import annotations

import sys

SUPPORTED = {
    "trl": ">=1.12,<1.17",
    "verl": ">=0.9.0,<0.9.2",
    "swift": ">=4.5,<4.7",
}
TESTED = {
    "trl": ("1.12.0", "1.16.0"),
    "verl": ("0.9.0", "0.9.1"),
    "swift": ("4.5.0", "4.6.0"),
}
DISTRIBUTION = {"trl": "trl", "verl": "verl", "swift": "ms-swift"}  # the name pip installs


def supported(name: str, version: str) -> bool:
    """Whether `version` of trainer `name` is in SUPPORTED[name] (a pre-release of a supported
    release counts)."""
    from packaging.specifiers import SpecifierSet  # matplotlib's dependency, so always here

    return SpecifierSet(SUPPORTED[name]).contains(version, prereleases=True)


if __name__ == "__main__":
    print(DISTRIBUTION[sys.argv[1]], *TESTED[sys.argv[1]])
