"""Scaling laws: a power-law fit, Chinchilla's parametric law and its optimum, an IsoFLOP parabola."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping

from llmcourse.scaling._common import (
    CHINCHILLA_LAW,
    _check_real,
)


# ----------------------------------------------------------------------------- scaling laws
def fit_power_law(x, y) -> dict[str, float]:
    """Least-squares fit of ``y = a · x^(-alpha)`` as a line in log-log space.

    The form of Kaplan et al. (2020), ``L(N) = (N_c / N)^alpha_N``, without an irreducible
    term. Returns ``{"a", "alpha", "r2"}``; ``r2`` is the coefficient of determination of
    the fit of ``log y`` on ``log x`` (1 = every point on the line).

    >>> f = fit_power_law([1, 10, 100], [4.0, 2.0, 1.0])
    >>> round(f["alpha"], 3), round(f["r2"], 3)
    (0.301, 1.0)
    """
    for name, v in (("x", x), ("y", y)):
        if isinstance(v, (str, bytes)) or not isinstance(v, Iterable):
            raise TypeError(f"{name} must be a sequence of numbers, got {type(v).__name__}")
    xs, ys = list(x), list(y)
    if len(xs) != len(ys) or len(xs) < 3:
        raise ValueError(f"x and y must have the same length >= 3, got {len(xs)} and {len(ys)}")
    for name, vals in (("x", xs), ("y", ys)):
        for v in vals:
            if _check_real(name, v, positive=False) <= 0:
                raise ValueError(f"{name} must hold positive numbers (log-log fit), got {v!r}")
    lx = [math.log(v) for v in xs]
    ly = [math.log(v) for v in ys]
    mx, my = sum(lx) / len(lx), sum(ly) / len(ly)
    sxx = sum((u - mx) ** 2 for u in lx)
    if sxx == 0:
        raise ValueError("x must not be all equal")
    slope = sum((u - mx) * (v - my) for u, v in zip(lx, ly)) / sxx
    intercept = my - slope * mx
    ss_res = sum((v - (intercept + slope * u)) ** 2 for u, v in zip(lx, ly))
    ss_tot = sum((v - my) ** 2 for v in ly)
    r2 = 1.0 - ss_res / ss_tot if ss_tot > 0 else 1.0
    return {"a": math.exp(intercept), "alpha": -slope, "r2": r2}


def _law(law: Mapping[str, float] | None) -> dict[str, float]:
    if law is None:
        return dict(CHINCHILLA_LAW)
    if not isinstance(law, Mapping):
        raise TypeError(f"law must be a dict with keys {', '.join(CHINCHILLA_LAW)}, got "
                        f"{type(law).__name__}")
    if set(law) != set(CHINCHILLA_LAW):
        raise ValueError(f"law must have exactly the keys {', '.join(CHINCHILLA_LAW)}, got "
                         f"{', '.join(sorted(law))}")
    return {k: _check_real(f"law[{k!r}]", law[k], allow_zero=k == "E") for k in CHINCHILLA_LAW}


def chinchilla_loss(n_params: float, n_tokens: float, *,
                    law: Mapping[str, float] | None = None) -> float:
    """Predicted loss ``L(N, D) = E + A/N^α + B/D^β`` (Hoffmann et al. 2022, equation 2).

    ``law`` defaults to :data:`CHINCHILLA_LAW`, the fit printed in the paper (§3.3, appendix
    D.2: E = 1.69, A = 406.4, B = 410.7, α = 0.34, β = 0.28; nats per token of MassiveText,
    their tokenizer — not comparable with other data or tokenizers). ``E`` is the entropy of
    text that no model removes; the two power laws are what a finite model and finite data
    leave on top. Besiroglu et al. (2024, "Chinchilla Scaling: A replication attempt") show
    that these rounded values bias the compute-optimal allocation: use the law for its shape.

    >>> round(chinchilla_loss(70e9, 1.4e12), 3)  # Chinchilla itself
    1.937
    """
    c = _law(law)
    N = _check_real("n_params", n_params)
    D = _check_real("n_tokens", n_tokens)
    return c["E"] + c["A"] / N ** c["alpha"] + c["B"] / D ** c["beta"]


def chinchilla_optimal(flops: float, *, law: Mapping[str, float] | None = None
                       ) -> dict[str, float]:
    """The ``N`` and ``D`` that minimise :func:`chinchilla_loss` at ``6·N·D = flops``.

    Hoffmann et al. 2022, equation 4: ``N_opt = G·(C/6)^a``, ``D_opt = (C/6)^b / G`` with
    ``G = (α·A / (β·B))^(1/(α+β))``, ``a = β/(α+β)``, ``b = α/(α+β)``. Returns ``n_params``,
    ``n_tokens``, ``tokens_per_param`` and the predicted ``loss``.
    """
    c = _law(law)
    C = _check_real("flops", flops)
    al, be = c["alpha"], c["beta"]
    G = (al * c["A"] / (be * c["B"])) ** (1.0 / (al + be))
    n = G * (C / 6.0) ** (be / (al + be))
    d = (C / 6.0) ** (al / (al + be)) / G
    return {"n_params": n, "n_tokens": d, "tokens_per_param": d / n,
            "loss": chinchilla_loss(n, d, law=c)}


def isoflop_optimum(n_params, losses) -> dict[str, float]:
    """Fit a parabola to an IsoFLOP profile, loss against ``log N`` at one compute budget.

    Hoffmann et al. 2022, approach 2 (§3.2): train models of several sizes with the same FLOPs,
    fit ``loss = c₀ + c₁·ln N + c₂·(ln N)²``, and read the compute-optimal size at the vertex,
    ``N_opt = exp(−c₁ / 2c₂)``. Returns ``n_opt``, ``loss_opt`` (the parabola's minimum) and
    ``curvature`` (``c₂``: positive for a valley). Raises ``ValueError`` when the points do not
    make a valley (``c₂ <= 0``), or when the vertex lies outside the sizes tried (an optimum
    extrapolated beyond the data is not measured).

    >>> f = isoflop_optimum([1e6, 1e7, 1e8], [3.0, 2.5, 3.0])
    >>> f"{f['n_opt']:.0e}"
    '1e+07'
    """
    for name, v in (("n_params", n_params), ("losses", losses)):
        if isinstance(v, (str, bytes)) or not isinstance(v, Iterable):
            raise TypeError(f"{name} must be a sequence of numbers, got {type(v).__name__}")
    ns, ls = list(n_params), list(losses)
    if len(ns) != len(ls) or len(ns) < 3:
        raise ValueError(f"n_params and losses must have the same length >= 3, got {len(ns)} "
                         f"and {len(ls)}")
    ns = [_check_real("n_params", v) for v in ns]
    ls = [_check_real("losses", v, positive=False) for v in ls]
    if len(set(ns)) < 3:
        raise ValueError("n_params must hold at least 3 different sizes")
    x = [math.log(v) for v in ns]
    # least squares for c0 + c1 x + c2 x², centred for conditioning: normal equations, 3 × 3
    mx = sum(x) / len(x)
    u = [v - mx for v in x]
    S = [sum(t ** k for t in u) for k in range(5)]
    T = [sum(y * t ** k for t, y in zip(u, ls)) for k in range(3)]
    M = [[S[0], S[1], S[2]], [S[1], S[2], S[3]], [S[2], S[3], S[4]]]

    def det(m):
        return (m[0][0] * (m[1][1] * m[2][2] - m[1][2] * m[2][1])
                - m[0][1] * (m[1][0] * m[2][2] - m[1][2] * m[2][0])
                + m[0][2] * (m[1][0] * m[2][1] - m[1][1] * m[2][0]))

    d = det(M)
    coef = []
    for k in range(3):  # Cramer's rule
        Mk = [row[:] for row in M]
        for i in range(3):
            Mk[i][k] = T[i]
        coef.append(det(Mk) / d)
    c0, c1, c2 = coef
    if c2 <= 0:
        raise ValueError(f"the losses do not make a valley in log N (curvature {c2:.3g} <= 0): "
                         f"try sizes on both sides of the optimum")
    vertex = -c1 / (2 * c2)
    if not min(u) <= vertex <= max(u):
        raise ValueError(f"the parabola's minimum lies outside the sizes tried (N ≈ "
                         f"{math.exp(vertex + mx):.3g}, tried {min(ns):.3g}–{max(ns):.3g}): "
                         f"add sizes beyond it")
    return {"n_opt": math.exp(vertex + mx), "loss_opt": c0 - c1 * c1 / (4 * c2),
            "curvature": c2}
