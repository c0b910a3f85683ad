"""Turn ranking scores into numbers that mean something.

With enough of the vault's own links, a logistic fit (Platt scaling) maps a score to
"how likely the person would link this pair". With too few, the fallback is the
percentile of the score among all candidate pairs, and it says so.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

MIN_POSITIVES = 10


@dataclass(frozen=True)
class Calibrator:
    """score -> probability (kind "probability") or percentile (kind "percentile")."""
    kind: str
    a: float = 0.0
    b: float = 0.0
    reference: tuple[float, ...] = ()

    def __call__(self, scores: np.ndarray) -> np.ndarray:
        scores = np.asarray(scores, dtype=np.float64)
        if self.kind == "probability":
            return 1.0 / (1.0 + np.exp(-(self.a * scores + self.b)))
        if not self.reference:
            return np.zeros_like(scores)
        ref = np.asarray(self.reference)
        return np.searchsorted(ref, scores, side="right") / len(ref)

    def to_dict(self) -> dict:
        return {"kind": self.kind, "a": self.a, "b": self.b, "points": len(self.reference)}


def fit_platt(scores: np.ndarray, labels: np.ndarray, l2: float = 1e-3,
              iterations: int = 50) -> tuple[float, float]:
    """Logistic regression of labels on one score by Newton's method (tiny, exact)."""
    x = np.stack([np.asarray(scores, dtype=np.float64), np.ones(len(scores))], axis=1)
    y = np.asarray(labels, dtype=np.float64)
    w = np.zeros(2)
    for _ in range(iterations):
        p = 1.0 / (1.0 + np.exp(-x @ w))
        grad = x.T @ (p - y) + l2 * np.array([w[0], 0.0])
        hess = (x * (p * (1 - p))[:, None]).T @ x + l2 * np.diag([1.0, 1e-9])
        step = np.linalg.solve(hess, grad)
        w -= step
        if np.abs(step).max() < 1e-8:
            break
    return float(w[0]), float(w[1])


def fit(positive: np.ndarray, negative: np.ndarray, background: np.ndarray) -> Calibrator:
    """Platt scaling on linked (positive) vs unlinked (negative) pair scores, weighting
    negatives to their true share; percentile of `background` when links are too few."""
    if len(positive) < MIN_POSITIVES or len(negative) < MIN_POSITIVES:
        ref = np.sort(np.asarray(background, dtype=np.float64))
        if len(ref) > 2000:
            ref = ref[np.linspace(0, len(ref) - 1, 2000).astype(int)]
        return Calibrator("percentile", reference=tuple(float(v) for v in ref))
    scores = np.concatenate([positive, negative])
    labels = np.concatenate([np.ones(len(positive)), np.zeros(len(negative))])
    a, b = fit_platt(scores, labels)
    return Calibrator("probability", a=a, b=b)


def expected_calibration_error(probs: np.ndarray, labels: np.ndarray, bins: int = 10) -> float:
    """Mean |confidence - accuracy| over equal-width probability bins, weighted by size."""
    probs, labels = np.asarray(probs), np.asarray(labels)
    edges = np.linspace(0, 1, bins + 1)
    which = np.clip(np.digitize(probs, edges[1:-1]), 0, bins - 1)
    err = 0.0
    for b in range(bins):
        sel = which == b
        if sel.any():
            err += sel.mean() * abs(probs[sel].mean() - labels[sel].mean())
    return float(err)
