"""Special functions NumPy lacks, vectorised: ``erf``, ``erfc`` and the normal CDF ``ndtr``.

Accurate to float64 precision (relative error below 1e-15 over the whole real line,
checked against ``math.erf``/``math.erfc`` in tests/ops/test_activation.py) and fast
in float32 (shorter polynomials, float32 arithmetic).

Method: two polynomial approximations, each the Chebyshev expansion of a smooth
function truncated where its terms fall below the dtype's precision, rewritten in
the power basis for Horner's rule.

* small |x| ≤ 1:  erf(x) = x · P(x²), where P approximates erf(x)/x on x² ∈ [0, 1];
* any x ≥ 0:      erfc(x) = exp(-x²) · Q(t) / (1 + 2x) with t = (x - 3)/(x + 3) ∈ [-1, 1),
  where Q approximates the slowly varying (1 + 2x)·exp(x²)·erfc(x), which tends to 2/√π.

Negative arguments use erf(-x) = -erf(x) and erfc(-x) = 2 - erfc(x). In float64,
exp(-x²) is taken as exp(-h²)·exp(-(x - h)(x + h)) with h = x rounded down to 1/16, so
the rounding error of x² is not magnified in the far tail.

The coefficients come from ``_generate_coefficients()`` below (50-digit arithmetic with
mpmath, which only that function needs): Chebyshev interpolation at 40 / 64 nodes,
truncated at 1e-17 (float64) or 1.5e-8 (float32), converted exactly to powers of x²
(small) or t (tail).
"""
from __future__ import annotations

import numpy as np

# Powers of u = x² for erf(x)/x on |x| ≤ 1.
_SMALL64 = (
    1.1283791670955126, -0.37612638903183543, 0.1128379167094513, -0.026866170643256995,
    0.005223977607269946, -0.0008548325982543225, 0.00012055295112667001,
    -1.4924740785377576e-05, 1.6447471190594618e-06, -1.6208829856810202e-07,
    1.3721520406351094e-08, -7.798543850549947e-10,
)
_SMALL32 = (
    1.1283791658815026, -0.3761262690358044, 0.11283597463488053, -0.026854328796067244,
    0.005189311942686617, -0.0008018854992786387, 7.882497110086663e-05,
)
# Powers of t = (x - 3)/(x + 3) for (1 + 2x)·exp(x²)·erfc(x) on x ≥ 0.
_TAIL64 = (
    1.2530080582697296, -0.13562110612458117, -0.0475622943534492, 0.1296451587027594,
    -0.11927366341538638, 0.0683080273440099, -0.02377051491717134, 0.0025293918156939696,
    0.0018886903449991718, -0.0007798322696543306, -0.00010515971958448065,
    0.0001250993424583729, 4.949196649968345e-06, -2.0100542268525612e-05,
    -7.308281468783614e-07, 3.472370944977168e-06, 3.5576086684080595e-07,
    -6.166011460398726e-07, -1.4047654315428462e-07, 1.0183620603842736e-07,
    4.1064013667940355e-08, -1.3312919661038687e-08, -8.217595058711455e-09,
    9.862533510345587e-10, 8.393734858690877e-10,
)
_TAIL32 = (
    1.2530080563677553, -0.1356210694002736, -0.047562156927520076, 0.1296441143440814,
    -0.1192752752822409, 0.06831656777114085, -0.02376357643949504, 0.0024991168696069477,
    0.001875079123772353, -0.0007264536790340485, -9.254516686923966e-05,
    7.731024224076895e-05,
)

_F64 = np.dtype(np.float64)
_SQRT1_2 = 0.7071067811865476


def _working(x) -> np.ndarray:
    """float64 stays float64; every other dtype is computed in float32."""
    x = np.asarray(x)
    return x if x.dtype == _F64 else x.astype(np.float32)


def _horner(coeffs, t: np.ndarray) -> np.ndarray:
    """Σ coeffs[i]·tⁱ, in place on one buffer."""
    p = np.full_like(t, coeffs[-1])
    for c in coeffs[-2::-1]:
        p *= t
        p += c
    return p


def _erfcx_nonneg(az: np.ndarray) -> np.ndarray:
    """The scaled exp(z²)·erfc(z) for z ≥ 0 (or NaN); slowly varying, no under/overflow."""
    coeffs = _TAIL64 if az.dtype == _F64 else _TAIL32
    q = _horner(coeffs, (az - 3.0) / (az + 3.0))
    q /= 1.0 + 2.0 * az
    return q


def _exp_neg_square(ax: np.ndarray, scale: float) -> np.ndarray:
    """exp(-scale·x²) for x ≥ 0; in float64 as exp(-scale·h²)·exp(-scale·(x - h)(x + h)).

    With h = ⌊16x⌋/16, h² is exact and (x - h)(x + h) is small, so the rounding error
    of x² is not magnified by the exponential in the far tail (where it would cost
    ~x²·1e-16 of relative accuracy). float32 skips the split: its tail ends at x ≈ 10,
    where the plain form is still good to ~5e-6.
    """
    if ax.dtype != _F64:
        return np.exp(ax * ax * -scale)
    h = np.floor(ax * 16.0)
    h /= 16.0
    e = np.exp(h * h * -scale)
    e *= np.exp((ax - h) * (ax + h) * -scale)
    return e


def _erfc_nonneg(ax: np.ndarray) -> np.ndarray:
    """erfc(x) for x ≥ 0 (or NaN), relative error ~1e-16 in float64."""
    # NOTE: erfc underflows to 0 beyond x ≈ 27 (float64); capping there keeps inf out of
    # t and h (inf - inf would be NaN) without changing any result.
    ax = np.minimum(ax, 30.0)
    r = _erfcx_nonneg(ax)
    r *= _exp_neg_square(ax, 1.0)
    return r


def _erf_small(x: np.ndarray) -> np.ndarray:
    coeffs = _SMALL64 if x.dtype == _F64 else _SMALL32
    return x * _horner(coeffs, x * x)


def _reflect(r: np.ndarray, mask: np.ndarray, c: float) -> np.ndarray:
    """c - r where mask, r elsewhere, as r·(1 - 2m) + c·m: exact (one rounding, as c - r),
    and faster than np.where, which is slow on unpredictable masks."""
    m = mask.astype(r.dtype)
    out = m * -2.0
    out += 1.0
    out *= r
    m *= c
    out += m
    return out


def erf(x) -> np.ndarray:
    """The error function 2/√π ∫₀ˣ e^(-t²) dt, element-wise."""
    x = _working(x)
    ax = np.abs(x)
    small = ax <= 1.0
    if small.all():
        return _erf_small(x)
    out = np.copysign(1.0 - _erfc_nonneg(ax), x).astype(x.dtype, copy=False)
    if small.any():
        out[small] = _erf_small(x[small])
    return out


def erfc(x) -> np.ndarray:
    """The complementary error function 1 - erf(x), accurate in both tails."""
    x = _working(x)
    r = _erfc_nonneg(np.abs(x))
    return _reflect(r, x < 0, 2.0)


def ndtr(x) -> np.ndarray:
    """The standard normal CDF Φ(x) = ½·erfc(-x/√2), accurate in both tails."""
    x = _working(x)
    ax = np.minimum(np.abs(x), 42.0)  # Φ(-42) underflows to 0 (see _erfc_nonneg)
    r = _erfcx_nonneg(ax * _SQRT1_2)
    r *= _exp_neg_square(ax, 0.5)
    r *= 0.5
    return _reflect(r, x > 0, 1.0)


def _generate_coefficients() -> str:  # pragma: no cover - a maintainer's tool, needs mpmath
    """Recompute the tables above; returns them as Python source."""
    import mpmath as mp

    mp.mp.dps = 50

    def chebyshev(f, n):  # coefficients of f on [-1, 1] by interpolation at Chebyshev nodes
        nodes = [(k + mp.mpf(1) / 2) * mp.pi / n for k in range(n)]
        vals = [f(mp.cos(a)) for a in nodes]
        cs = [2 * mp.fsum(v * mp.cos(j * a) for v, a in zip(vals, nodes, strict=True)) / n
              for j in range(n)]
        cs[0] /= 2
        return cs

    def to_power(cs, scale, shift):  # Σ c_k T_k(scale·u + shift) as Σ a_i uⁱ, exactly
        basis = [[mp.mpf(1)], [mp.mpf(shift), mp.mpf(scale)]]
        for k in range(2, len(cs)):
            prev, prev2 = basis[k - 1], basis[k - 2] + [0, 0]
            nxt = [0] + [2 * scale * v for v in prev]
            nxt = [a + 2 * shift * b - c for a, b, c in zip(nxt, prev + [0], prev2, strict=True)]
            basis.append(nxt)
        return [mp.fsum(c * t[i] for c, t in zip(cs, basis, strict=True) if i < len(t))
                for i in range(len(cs))]

    def small(t):  # erf(x)/x with x² = (t + 1)/2 ∈ [0, 1]
        x = mp.sqrt((t + 1) / 2)
        return mp.erf(x) / x if x else 2 / mp.sqrt(mp.pi)

    def tail(t):  # (1 + 2x)·exp(x²)·erfc(x) with x = 3(1 + t)/(1 - t) ∈ [0, ∞)
        if t >= 1:
            return 2 / mp.sqrt(mp.pi)
        x = 3 * (1 + t) / (1 - t)
        return (1 + 2 * x) * mp.erfc(x) * mp.exp(x * x)

    lines = []
    for name, cs, scale, shift in [("SMALL", chebyshev(small, 40), 2, -1),
                                   ("TAIL", chebyshev(tail, 64), 1, 0)]:
        for bits, tol in (("64", 1e-17), ("32", 1.5e-8)):
            n = len(cs)
            while abs(cs[n - 1]) < tol:
                n -= 1
            power = to_power(cs[:n], scale, shift)
            lines.append(f"_{name}{bits} = ({', '.join(repr(float(a)) for a in power)},)")
    return "\n".join(lines)
