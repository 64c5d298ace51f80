"""Nonlinear functions (SN2.8's `nlf` objects) and their derivatives.

An Nlf is one of five kinds with parameters A, B, C, D:

    tanh       f = A tanh(B x) + C x + D
    lin        f = A x + D
    piecewise  f = A clip(B x, -1, 1) + C x + D
    bin        f = A sign(B x) + C x + D, back-propagated as the tanh of the same
               parameters (SN2.8's pseudo-gradient for threshold units)
    relu       f = max(0, x)

The kinds are numbered as in kernels.py. From Lisp, an nlf is called like a
function: (nlf 1) evaluates it at 1.
"""

import math

import numpy as np

from .errors import SNError

TANH, LIN, PIECE, BIN, RELU = 0, 1, 2, 3, 4
KIND_NAMES = {TANH: "tanh", LIN: "lin", PIECE: "piecewise", BIN: "bin", RELU: "relu"}


class Nlf:
    __slots__ = ("kind", "A", "B", "C", "D", "source")

    def __init__(self, kind, A=0.0, B=0.0, C=0.0, D=0.0, source=""):
        self.kind = kind
        self.A, self.B, self.C, self.D = float(A), float(B), float(C), float(D)
        self.source = source  # the SN call that made it, for `sn info`

    def row(self):
        """The parameters as the kernels read them: [kind, A, B, C, D]."""
        return [float(self.kind), self.A, self.B, self.C, self.D]

    def key(self):
        return (self.kind, self.A, self.B, self.C, self.D)

    def __repr__(self):
        return f"::nlf:{self.source or KIND_NAMES[self.kind]}"

    def lisp_call(self, *args):
        """(nlf x): the function's value at x."""
        if len(args) != 1 or not isinstance(args[0], (int, float)) or isinstance(args[0], bool):
            raise SNError(f"{self!r}: expects one number")
        return float(self.f(np.float64(args[0])))

    def f(self, x):
        x = np.asarray(x, dtype=float)
        if self.kind in (TANH,):
            return self.A * np.tanh(self.B * x) + self.C * x + self.D
        if self.kind == LIN:
            return self.A * x + self.D
        if self.kind == PIECE:
            return self.A * np.clip(self.B * x, -1.0, 1.0) + self.C * x + self.D
        if self.kind == BIN:
            return self.A * np.where(self.B * x >= 0, 1.0, -1.0) + self.C * x + self.D
        return np.maximum(x, 0.0)

    def df(self, x):
        x = np.asarray(x, dtype=float)
        if self.kind in (TANH, BIN):
            t = np.tanh(self.B * x)
            return self.A * self.B * (1.0 - t * t) + self.C
        if self.kind == LIN:
            return np.full_like(x, self.A)
        if self.kind == PIECE:
            return np.where(np.abs(self.B * x) < 1.0, self.A * self.B, 0.0) + self.C
        return (x > 0).astype(float)

    def ddf(self, x):
        x = np.asarray(x, dtype=float)
        if self.kind in (TANH, BIN):
            t = np.tanh(self.B * x)
            return -2.0 * self.A * self.B * self.B * t * (1.0 - t * t)
        return np.zeros_like(x)


def _number(x, fn):
    if not isinstance(x, (int, float)) or isinstance(x, bool):
        raise SNError(f"{fn}: not a number: {x!r}")
    return float(x)


def nlf_tanh(mx, dmin, scale=None, offset=0.0):
    """SN2.8's (nlf-tanh mx dmin [scale [offset]]): scale tanh(mx x) + dmin x + offset;
    without scale, scale = 1 / (tanh(mx) + dmin + offset), so that the unscaled
    curve's value at 1 becomes 1 (SN's default 1.7159 tanh(2x/3))."""
    mx, dmin, offset = _number(mx, "nlf-tanh"), _number(dmin, "nlf-tanh"), _number(offset, "nlf-tanh")
    if scale is None:
        at_one = math.tanh(mx) + dmin + offset
        if at_one == 0:
            raise SNError("nlf-tanh: cannot scale a function that is 0 at 1")
        scale = 1.0 / at_one
    source = f"(nlf-tanh {mx:g} {dmin:g})" if offset == 0 else f"(nlf-tanh {mx:g} {dmin:g} {scale:g} {offset:g})"
    return Nlf(TANH, _number(scale, "nlf-tanh"), mx, dmin, offset, source)


def nlf_bin(mx, dmin, scale=None, offset=0.0):
    """SN2.8's (nlf-bin ...): the threshold version of nlf-tanh, same parameters."""
    t = nlf_tanh(mx, dmin, scale, offset)
    return Nlf(BIN, t.A, t.B, t.C, t.D, "(nlf-bin " + t.source[len("(nlf-tanh "):])


def nlf_lin(dmin, dmax, th=None):
    """SN2.8's (nlf-lin dmin dmax [th]): slope dmin when dmin = dmax; otherwise
    piecewise linear, slope dmin outside [-th, th] and dmax inside."""
    dmin, dmax = _number(dmin, "nlf-lin"), _number(dmax, "nlf-lin")
    source = f"(nlf-lin {dmin:g} {dmax:g})"
    if dmin == dmax:
        return Nlf(LIN, dmin, 1.0, 0.0, 0.0, source)
    if th is not None and _number(th, "nlf-lin") > 0:
        th = float(th)
    elif dmax >= 1:
        th = (1.0 - dmin) / (dmax - dmin)
    elif dmax <= -1:
        th = (-1.0 - dmin) / (dmax - dmin)
    else:
        raise SNError(f"nlf-lin: illegal values {dmin:g} {dmax:g}")
    return Nlf(PIECE, (dmax - dmin) * th, 1.0 / th, dmin, 0.0, source)


def nlf_relu():
    return Nlf(RELU, source="(nlf-relu)")


SN_DEFAULT = nlf_tanh(0.66666666, 0)
