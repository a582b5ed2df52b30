"""The numerical constants every path shares (docs/schemes.md, "Numerical conventions")."""

from __future__ import annotations

# A combined std (RC's std of s, GDPO's step std) at or below this many ulps of the magnitude
# of the terms it came from is rounding noise (anti-correlated objectives whose weighted sum is
# constant) and counts as 0.
NOISE_ULPS = 64.0
# Sorted advantages less than this apart count as one value when counting distinct values (the
# same advantage reached by different arithmetic differs in the last bits; a gap, not a grid).
DISTINCT_TOL = 1e-8
# An advantage with |A| <= ZERO_TOL counts as zero.
ZERO_TOL = 1e-12
# A reward within BINARY_TOL of 0 or of 1 is that value for "binary", all-pass and all-fail:
# 1 - 1e-13 (a 1 that went through float arithmetic) is a pass, 0.999 is not.
BINARY_TOL = 1e-9
# Rewards larger than this in magnitude are refused: their squares, summed over a group, would
# overflow float64 (1e150 squared is 1e300; the largest double is 1.8e308).
MAX_REWARD = 1e150
