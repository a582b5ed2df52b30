"""The array namespace of the core's arithmetic: numpy itself for numpy arrays, the torch
wrapper of array-api-compat for torch tensors.

numpy 2 implements the array API standard in its main namespace. array-api-compat's numpy
wrapper does `from numpy import *`, which loads every numpy submodule (testing, f2py, ma,
polynomial: about 0.1 s at start-up), so numpy arrays never go through it.
"""

from __future__ import annotations

from typing import Any

import numpy as np

_NUMPY_IS_STANDARD = hasattr(np, "astype")  # numpy >= 2.0


def namespace(*arrays: Any) -> Any:
    """The array API namespace of `arrays` (all numpy, or all torch on one device)."""
    if _NUMPY_IS_STANDARD and all(isinstance(a, np.ndarray | np.generic) for a in arrays):
        return np
    from array_api_compat import array_namespace

    return array_namespace(*arrays)
