"""Character-level vocabulary of the toy policy: digits, a few operators, and special tokens."""

from __future__ import annotations

from collections.abc import Sequence

# printable characters the policy may emit; the specials come after them
CHARS = "0123456789+-*= "
PAD, BOS, EOS = len(CHARS), len(CHARS) + 1, len(CHARS) + 2
VOCAB_SIZE = len(CHARS) + 3
_INDEX = {ch: i for i, ch in enumerate(CHARS)}


def encode(text: str) -> list[int]:
    """`"37+48="` -> token ids (no BOS/EOS added). ValueError on a character outside CHARS."""
    try:
        return [_INDEX[ch] for ch in text]
    except KeyError as err:
        raise ValueError(f"character {err.args[0]!r} is not in the policy's vocabulary") from None


def decode(ids: Sequence[int]) -> str:
    """Token ids -> text, stopping at the first EOS and skipping PAD/BOS."""
    out: list[str] = []
    for i in ids:
        if i == EOS:
            break
        if i < len(CHARS):
            out.append(CHARS[i])
    return "".join(out)
