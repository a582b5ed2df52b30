"""Group reductions over rows: how a backend sums, squares and takes extremes per group.

Rows map to n groups in one of three layouts, each with a numpy and a torch implementation of
one interface:
  * blocks: n groups of G rows, group b in rows [b*G, (b+1)*G) (a reshape to (n, G));
  * sorted: groups of any size one after another (numpy: reduceat; torch: index_add_);
  * interleaved: any row order (numpy: sorted once by group; torch: scatter reductions).

`layout(x)` puts an (N,) column in the layout's order, `flat` puts it back; the reductions
give (n,) per group in layout order, `expand` broadcasts (n,) back over the rows and
`to_codes` reorders (n, ...) statistics by group code. An empty group has sum 0, min +inf and
max -inf.
"""

from __future__ import annotations

from typing import Any

import numpy as np

Array = Any


# numpy reduces each short row of an (n, G) array with one inner-loop call per row: along
# axis 1, x.min(1) takes 6.2 ms on (62500, 16) where torch's amin takes 0.3 ms (measured).
# Sums go through einsum (9x x.sum(1); not a matrix-vector product, whose OpenBLAS threads a
# busy machine starves); extremes through blocks of rows transposed into a small buffer, each
# then reduced along its long axis (3x x.min(1) on (500000, 16), measured).
_BLOCK_ROWS = 1024  # a (G, 1024) float64 buffer stays in the L2 cache for G up to 64


def row_sum(x: np.ndarray) -> np.ndarray:
    """(n, G) float -> (n,) sums of each row."""
    return np.einsum("ij->i", x)


_BYTES_TO_TOP = np.uint64(0x0101010101010101)  # x * this: x's 8 bytes summed in its top byte


def row_count(mask: np.ndarray) -> np.ndarray:
    """(n, G) bool -> (n,) int64 how many of each row's values are True.

    Eight bools are one uint64 whose bytes are 0 or 1: a row's words added up keep each byte
    below G / 8, and one multiply sums a word's bytes into its top byte (G <= 255), a pass over
    N / 8 words (4x the bytes' einsum on (16384, 16), measured); other shapes: bytes summed."""
    n, g = mask.shape
    if g % 8 or g > 255 or not mask.flags.c_contiguous:
        if g > 255:
            return row_sum(mask.astype(np.float64)).astype(np.int64)
        return np.einsum("ij->i", mask.view(np.uint8)).astype(np.int64)
    words = mask.view(np.uint64)  # (n, G / 8)
    total = words[:, 0].copy()
    for j in range(1, g // 8):
        total += words[:, j]
    total *= _BYTES_TO_TOP
    total >>= np.uint64(56)
    return total.astype(np.int64)


def _row_reduce(x: np.ndarray, *ufuncs: np.ufunc) -> list[np.ndarray]:
    """Each ufunc's reduction of every row, the rows transposed into the buffer once for all."""
    n, g = x.shape
    outs = [np.empty(n, dtype=x.dtype) for _ in ufuncs]
    buffer = np.empty((g, min(n, _BLOCK_ROWS)), dtype=x.dtype)
    for start in range(0, n, _BLOCK_ROWS):
        block = x[start : start + _BLOCK_ROWS]  # (b, G)
        transposed = buffer[:, : block.shape[0]]
        np.copyto(transposed, block.T)
        for ufunc, out in zip(ufuncs, outs, strict=True):
            ufunc.reduce(transposed, axis=0, out=out[start : start + _BLOCK_ROWS])
    return outs


def row_min(x: np.ndarray) -> np.ndarray:
    """(n, G) -> (n,) smallest of each row."""
    return _row_reduce(x, np.minimum)[0]


def row_max(x: np.ndarray) -> np.ndarray:
    """(n, G) -> (n,) largest of each row."""
    return _row_reduce(x, np.maximum)[0]


def row_extremes(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(n, G) -> (smallest, largest) of each row, from one transposed copy (0.7x the time of
    row_min and row_max on (62000, 16), measured)."""
    lo, hi = _row_reduce(x, np.minimum, np.maximum)
    return lo, hi


class Blocks:
    """n groups of `size` rows stored one after another; `order` (n,) maps block -> group code
    when the blocks are not in code order. Works on numpy arrays and torch tensors alike."""

    def __init__(self, n: int, size: int, order: Any = None) -> None:
        self.n = n
        self.size = size
        self.order = order

    def sizes(self, like: Array) -> Array:
        if isinstance(like, np.ndarray):
            return np.full(self.n, self.size, dtype=np.int64)
        import torch

        return torch.full((self.n,), self.size, dtype=torch.int64, device=like.device)

    def layout(self, x: Array) -> Array:  # (N,) -> (n, G)
        return x.reshape(self.n, self.size)

    def flat(self, xl: Array) -> Array:  # (n, G) -> (N,)
        return xl.reshape(-1)

    def sum(self, xl: Array) -> Array:
        return row_sum(xl) if isinstance(xl, np.ndarray) else xl.sum(1)

    def sumsq(self, xl: Array) -> Array:  # no (n, G) temporary
        if isinstance(xl, np.ndarray):
            return np.einsum("ij,ij->i", xl, xl)
        import torch

        # einsum, not linalg.vecdot: 2.5x faster on CPU for short rows (G = 16, measured)
        return torch.einsum("ij,ij->i", xl, xl)

    def min(self, xl: Array) -> Array:
        return row_min(xl) if isinstance(xl, np.ndarray) else xl.amin(1)

    def max(self, xl: Array) -> Array:
        return row_max(xl) if isinstance(xl, np.ndarray) else xl.amax(1)

    def extremes(self, xl: Array) -> tuple[Array, Array]:  # (min, max) in one pass
        if isinstance(xl, np.ndarray):
            return row_extremes(xl)
        return xl.amin(1), xl.amax(1)

    def expand(self, stat: Array) -> Array:  # (n,) -> (n, 1)
        return stat[:, None]

    def combine(self, coefficients: Array, values: Array) -> Array:
        """(K, n) per-group coefficients, (K, n, G) values -> (n, G) sum_k c_k x_k, in one
        pass (0.75x K products and K - 1 sums over (16384, 16), measured); coefficients alike
        in every group as one weight vector (half that again)."""
        if coefficients.shape[1] and bool((coefficients == coefficients[:, :1]).all()):
            weights = coefficients[:, 0]  # (K,)
            if isinstance(values, np.ndarray):
                return np.einsum("k,kgj->gj", weights, values)
            import torch

            return torch.einsum("k,kgj->gj", weights, values)
        if isinstance(values, np.ndarray):
            return np.einsum("kg,kgj->gj", coefficients, values)
        import torch

        return torch.einsum("kg,kgj->gj", coefficients, values)

    def gather(self, table: np.ndarray, code: np.ndarray) -> np.ndarray:
        """(P, n) a value per pattern and group, code (N,) each row's pattern -> (n, G) each
        row's value."""
        index = np.multiply(self.layout(code), self.n, dtype=np.intp)  # (n, G): p * n + g
        index += np.arange(self.n, dtype=np.intp)[:, None]
        return table.reshape(-1).take(index)

    def to_codes(self, stat: Array) -> Array:
        if self.order is None:
            return stat
        if isinstance(stat, np.ndarray):
            out = np.empty_like(stat)
        else:
            import torch

            out = torch.empty_like(stat)
        out[self.order] = stat
        return out


class NumpyRagged:
    """Any group sizes; rows sorted by group code (`order` None) or put in that order once."""

    def __init__(self, codes: np.ndarray, n: int, is_sorted: bool | None = None) -> None:
        self.n = n
        if is_sorted is None:
            is_sorted = codes.shape[0] < 2 or bool(np.all(codes[1:] >= codes[:-1]))
        self.order = None if is_sorted else np.argsort(codes, kind="stable")
        self._sizes = np.bincount(codes, minlength=n).astype(np.int64)
        self.present = self._sizes > 0  # (n,)
        starts = np.cumsum(self._sizes) - self._sizes
        self.starts = starts[self.present]  # reduceat indices of the non-empty groups

    def sizes(self, like: Array = None) -> np.ndarray:
        return self._sizes

    def layout(self, x: np.ndarray) -> np.ndarray:
        return x if self.order is None else x[self.order]

    def flat(self, xl: np.ndarray) -> np.ndarray:
        if self.order is None:
            return xl
        out = np.empty_like(xl)
        out[self.order] = xl
        return out

    def _reduce(self, ufunc: np.ufunc, xl: np.ndarray, empty: float) -> np.ndarray:
        out = np.full(self.n, empty, dtype=xl.dtype)
        if self.starts.shape[0]:
            out[self.present] = ufunc.reduceat(xl, self.starts)
        return out

    def sum(self, xl: np.ndarray) -> np.ndarray:
        return self._reduce(np.add, xl, 0)

    def sumsq(self, xl: np.ndarray) -> np.ndarray:
        return self.sum(xl * xl)

    def min(self, xl: np.ndarray) -> np.ndarray:
        return self._reduce(np.minimum, xl, _top(xl.dtype))

    def max(self, xl: np.ndarray) -> np.ndarray:
        return self._reduce(np.maximum, xl, _bottom(xl.dtype))

    def extremes(self, xl: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return self.min(xl), self.max(xl)

    def expand(self, stat: np.ndarray) -> np.ndarray:  # (n,) -> (N,) in layout order
        return np.repeat(stat, self._sizes)

    def gather(self, table: np.ndarray, code: np.ndarray) -> np.ndarray:
        """(P, n) a value per pattern and group, code (N,) each row's pattern -> (N,) each
        row's value, in layout order."""
        group = np.repeat(np.arange(self.n), self._sizes)  # (N,) layout order: by group
        return table[self.layout(code), group]

    def combine(self, coefficients: Array, values: Array) -> Array:
        """(K, n) per-group coefficients, (K, N) values -> (N,) sum_k c_k x_k."""
        out = values[0] * self.expand(coefficients[0])
        for k in range(1, values.shape[0]):
            out += values[k] * self.expand(coefficients[k])
        return out

    def to_codes(self, stat: np.ndarray) -> np.ndarray:
        return stat


class TorchRagged:
    """Any group sizes, any row order: segment reductions over `index` (N,) on its device."""

    def __init__(self, index: Any, n: int) -> None:
        import torch

        self.index = index
        self.n = n
        self._sizes = torch.bincount(index, minlength=n) if index.numel() else None

    def sizes(self, like: Array) -> Array:
        import torch

        if self._sizes is None:
            return torch.zeros(self.n, dtype=torch.int64, device=like.device)
        return self._sizes

    def layout(self, x: Array) -> Array:
        return x

    def flat(self, xl: Array) -> Array:
        return xl

    def sum(self, xl: Array) -> Array:
        import torch

        return torch.zeros(self.n, dtype=xl.dtype, device=xl.device).index_add_(0, self.index, xl)

    def sumsq(self, xl: Array) -> Array:
        return self.sum(xl * xl)

    def _scatter(self, xl: Array, how: str, fill: Any) -> Array:
        import torch

        out = torch.full((self.n,), fill, dtype=xl.dtype, device=xl.device)
        return out.scatter_reduce_(0, self.index, xl, how, include_self=True)

    def min(self, xl: Array) -> Array:
        return self._scatter(xl, "amin", _top(xl.dtype))

    def max(self, xl: Array) -> Array:
        return self._scatter(xl, "amax", _bottom(xl.dtype))

    def extremes(self, xl: Array) -> tuple[Array, Array]:
        return self.min(xl), self.max(xl)

    def expand(self, stat: Array) -> Array:
        return stat.index_select(0, self.index)

    def combine(self, coefficients: Array, values: Array) -> Array:
        """(K, n) per-group coefficients, (K, N) values -> (N,) sum_k c_k x_k."""
        out = values[0] * self.expand(coefficients[0])
        for k in range(1, values.shape[0]):
            out += values[k] * self.expand(coefficients[k])
        return out

    def to_codes(self, stat: Array) -> Array:
        return stat


Segments = Blocks | NumpyRagged | TorchRagged


def _top(dtype: Any) -> Any:
    """The identity of a min: +inf for floats, the largest integer for integers."""
    if getattr(dtype, "is_floating_point", None) is not None:  # a torch dtype
        import torch

        return np.inf if dtype.is_floating_point else torch.iinfo(dtype).max
    return np.inf if np.issubdtype(dtype, np.floating) else np.iinfo(dtype).max


def _bottom(dtype: Any) -> Any:
    if getattr(dtype, "is_floating_point", None) is not None:
        import torch

        return -np.inf if dtype.is_floating_point else torch.iinfo(dtype).min
    return -np.inf if np.issubdtype(dtype, np.floating) else np.iinfo(dtype).min


def segments(codes: Array, n: int) -> Segments:
    """The layout of rows with group codes `codes` (N,) in 0..n-1: blocks when all n groups
    have the same size and contiguous rows, else ragged."""
    rows = codes.shape[0]
    if n > 0 and rows % n == 0:
        size = rows // n
        view = codes.reshape(n, size)
        first = view[:, 0]  # (n,) the code of each block
        if bool((view == first[:, None]).all()):
            if isinstance(codes, np.ndarray):
                in_order = bool((first == np.arange(n)).all())
                unique = bool((np.bincount(first, minlength=n) == 1).all())
            else:
                import torch

                in_order = bool((first == torch.arange(n, device=codes.device)).all())
                unique = bool((torch.bincount(first, minlength=n) == 1).all())
            if in_order:
                return Blocks(n, size)
            if unique:
                return Blocks(n, size, order=first)
    return ragged(codes, n)


def ragged(codes: Array, n: int) -> NumpyRagged | TorchRagged:
    """Segment reductions over `codes` (M,) in 0..n-1 in any order (e.g. groups to steps)."""
    if isinstance(codes, np.ndarray):
        return NumpyRagged(codes, n)
    return TorchRagged(codes, n)
