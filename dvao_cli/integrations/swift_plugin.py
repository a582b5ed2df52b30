"""The file to hand ms-swift's `--external_plugins` (`python -m dvao_cli.integrations.swift`
prints its path): it loads `dvao_cli.integrations.swift`, which installs the DVAO trainer.

A file of its own because ms-swift 4.5 imports a plugin file by its bare name, with the file's
folder first on sys.path (`importlib.import_module("swift")` for a file named swift.py: the
real swift package, already imported, and the plugin never runs); 4.6 loads it from its path
under a name of its own. This name collides with nothing, in either.
"""

import os
import sys

# ms-swift put this folder first on sys.path; its trl.py, verl.py and swift.py (the
# integrations) would shadow the real `trl`, `verl` and `swift`
_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [entry for entry in sys.path if not entry or os.path.abspath(entry) != _HERE]

from dvao_cli.integrations.swift import install  # noqa: E402

install()  # idempotent (the module installs itself when first imported)
