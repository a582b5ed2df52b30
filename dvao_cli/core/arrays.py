"""The array namespace of the core's arithmetic: numpy itself for numpy arrays, the torch
wrapper of array-api-compat for torch tensors.

numpy 2 implements the array API standard in its main namespace. array-api-compat's numpy
wrapper does `from numpy import *`, which loads every numpy submodule (testing, f2py, ma,
polynomial: about 0.1 s at start-up), so numpy arrays never go through it.
"""

from __future__ import annotations

from typing import Any


def namespace(*arrays: Any) -> Any:
    """The array API namespace of `arrays` (all numpy, or all torch on one device).

    numpy is imported here, not with the module: the scheme names (`schemes.SCHEMES`) reach
    the command line's option parsing, which must start before numpy loads (runtime sets its
    thread count first)."""
    import numpy as np

    if hasattr(np, "astype") and all(isinstance(a, np.ndarray | np.generic) for a in arrays):
        return np  # numpy >= 2: the standard in its main namespace
    from array_api_compat import array_namespace

    return array_namespace(*arrays)


def subtract_into(a: Any, b: Any, out: Any) -> Any:
    """out = a - b, written into `out` (numpy or torch; the standard has no `out=`): no (N,)
    temporary and no copy."""
    import numpy as np

    if isinstance(out, np.ndarray):
        return np.subtract(a, b, out=out)
    import torch

    return torch.sub(a, b, out=out)
