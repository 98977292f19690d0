"""Does the uncertainty map predict the error? Correlation and sparsification (AUSE), against chance.

Sparsification (Ilg et al., ECCV 2018): remove the pixels the map is least sure of first and follow the
mean error of the pixels that remain. An uncertainty that ranks errors perfectly gives the *oracle*
curve (pixels removed by their true error); the area between the map's curve and the oracle's is the
AUSE (lower is better). The same area for a random order is the chance level: a useful map has an AUSE
well below it. Curves are normalised by the mean error of all pixels, so AUSE is unit-free.
"""

from __future__ import annotations

import numpy as np
from scipy.integrate import trapezoid

#: fractions of pixels removed, 0 .. 0.98
FRACTIONS = np.linspace(0.0, 0.98, 50)


def _curve(error: np.ndarray, order: np.ndarray) -> np.ndarray:
    """Mean error of the pixels left after removing ``order``'s first pixels, for each fraction."""
    ranked = error[order]
    kept_sums = np.cumsum(ranked[::-1])[::-1]  # kept_sums[i] = sum of ranked[i:]
    n = error.size
    starts = np.minimum((FRACTIONS * n).astype(int), n - 1)
    return kept_sums[starts] / (n - starts)


def sparsification(uncertainty: np.ndarray, error: np.ndarray, seed: int = 0) -> dict[str, float]:
    """AUSE of ``uncertainty`` for ``error`` (same shape), the random-order AUSE, and their Pearson correlation."""
    u = np.asarray(uncertainty, dtype=np.float64).ravel()
    e = np.asarray(error, dtype=np.float64).ravel()
    if u.shape != e.shape or u.size < 2:
        raise ValueError(f"uncertainty and error must have the same size >= 2, got {u.size} and {e.size}")
    scale = e.mean()
    if scale <= 0:
        return {"ause": 0.0, "ause_random": 0.0, "pearson": float("nan")}
    rng = np.random.default_rng(seed)
    tie_break = rng.random(u.size)  # equal uncertainties (e.g. the observed zeros) in random order
    oracle = _curve(e, np.lexsort((tie_break, -e))) / scale
    by_map = _curve(e, np.lexsort((tie_break, -u))) / scale
    random = _curve(e, rng.permutation(u.size)) / scale
    pearson = float(np.corrcoef(u, e)[0, 1]) if u.std() > 0 and e.std() > 0 else float("nan")
    return {"ause": float(trapezoid(by_map - oracle, FRACTIONS)),
            "ause_random": float(trapezoid(random - oracle, FRACTIONS)),
            "pearson": pearson}
