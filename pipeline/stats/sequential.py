"""Anytime-valid inference for a difference of two proportions. Pure: numbers in, numbers out.

The mixture sequential probability ratio test (mSPRT) with a normal mixing prior, as in Johari,
Koomen, Pekelis & Walsh, "Always valid inference: continuous monitoring of A/B tests" (Operations
Research 70(3), 2022; the method behind Optimizely's stats engine), and its confidence sequence
(Robbins 1970; Howard, Ramdas, McAuliffe & Sekhon, "Time-uniform, nonparametric, nonasymptotic
confidence sequences", Ann. Statist. 2021, the normal-mixture boundary).

With an estimate θ̂ of θ = p_b − p_a whose variance is V (Bernoulli plug-in: p̂(1 − p̂)/n per arm)
and a mixing prior θ ~ N(θ0, τ²) around the null θ0, the mixture likelihood ratio is

    Λ = sqrt(V / (V + τ²)) · exp(τ² (θ̂ − θ0)² / (2 V (V + τ²))).

Under H0: θ = θ0 it is (asymptotically) a non-negative martingale, so by Ville's inequality
P(ever Λ ≥ 1/α) ≤ α: the test may be looked at after every event. The always-valid p-value is the
running minimum of 1/Λ; inverting Λ < 1/α gives the confidence sequence

    θ̂ ± sqrt(V (V + τ²) / τ² · log((V + τ²) / (V α²))),

which covers θ at every look at once with probability ≥ 1 − α. ``tau`` is the scale of effects
the test is tuned for: it is most powerful near effects of size τ.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class Arm:
    """Cumulative feedback of one variant: ``n`` judged predictions, ``successes`` of them right."""

    n: int
    successes: int

    @property
    def rate(self) -> float:
        return self.successes / self.n if self.n else math.nan


def difference(a: Arm, b: Arm) -> tuple[float, float]:
    """(θ̂ = rate_b − rate_a, its variance V). Each arm's rate is shrunk by half a success and half a
    failure for the variance only (Agresti–Caffo), so that an arm at 0% or 100% has V > 0."""
    if a.n < 1 or b.n < 1:
        return math.nan, math.inf
    pa, pb = (a.successes + 0.5) / (a.n + 1), (b.successes + 0.5) / (b.n + 1)
    return b.rate - a.rate, pa * (1 - pa) / a.n + pb * (1 - pb) / b.n


def log_mixture_lr(theta_hat: float, variance: float, tau: float, theta0: float = 0.0) -> float:
    """log Λ of the normal-mixture SPRT (see the module docstring); 0 when nothing is known."""
    if not (math.isfinite(theta_hat) and math.isfinite(variance)) or variance <= 0 or tau <= 0:
        return 0.0
    t2 = tau * tau
    return 0.5 * math.log(variance / (variance + t2)) + t2 * (theta_hat - theta0) ** 2 / (
        2 * variance * (variance + t2)
    )


def half_width(variance: float, tau: float, alpha: float) -> float:
    """Half-width of the (1 − α) confidence sequence at variance V; inf when nothing is known."""
    if not math.isfinite(variance) or variance <= 0 or tau <= 0:
        return math.inf
    t2 = tau * tau
    return math.sqrt(variance * (variance + t2) / t2 * math.log((variance + t2) / (variance * alpha * alpha)))


def fixed_horizon_n(effect: float, rate: float, alpha: float, power: float, share: float) -> int:
    """Total sample size a one-sided fixed-horizon z-test needs for ``power`` at ``effect``, with a
    share ``share`` of traffic on the challenger (normal approximation, both arms at ``rate``)."""
    from scipy import stats as sps

    z = sps.norm.isf(alpha) + sps.norm.isf(1 - power)
    var_unit = rate * (1 - rate) * (1 / share + 1 / (1 - share))  # V · N
    return int(math.ceil(var_unit * (z / effect) ** 2))
