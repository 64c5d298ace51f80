"""Numba kernels for SN networks compiled into a flat ``Plan`` (by sn/compile.py).

Notation (SN2.8, on-line "iterative + Newton + per-connection epsilon" mode):
unit u has state x[u], weighted sum s[u], backsum b[u], gradient g[u], second-order
gradient ggrad[u] and second-order backsum sqb[u]; weight k has value w[k], delta[k],
accumulator acc[k], curvature hess[k] (a running average) and hq[k] (this pattern's
curvature). Connection c goes from unit i_c to unit j_c through weight k_c with
epsilon eps_c.

    forward     s[j] = sum_c w[k_c] x[i_c]            x[j] = f(s[j])
    LMS cost    b[o] = d_o - x_o                      E = 1/2 sum_o (d_o - x_o)^2
    backward    b[i] = sum_c w[k_c] g[j_c]            g[j] = b[j] f'(s[j])
                acc[k] += eps_c x[i_c] g[j_c]         (acc = -eps dE/dw)
    backward2   sqb[o] = 1,  sqb[i] = sum_c w[k_c]^2 ggrad[j_c]
                ggrad[j] = sqb[j] f'(s[j])^2 [- b[j] f''(s[j])  (Newton only)]
                hq[k] += ggrad[j_c] x[i_c]^2
    update      hess = (1-gamma) hess + gamma hq              (Newton / LM)
                step = acc  (SGD)  or  acc / (mu + |hess|)   (Newton / LM)
                delta = alpha delta + (1-alpha) step ;  w = (1-decay) w + delta

API (all numba-compiled, module level, cache=True; float32 or float64 buffers):

    forward(plan, x, s, w)
    backward(plan, x, s, w, b, g, acc)
    backward2(plan, x, s, w, b, ggrad, sqb, hq, lm)
    update(w, delta, acc, hess, hq, mode, alpha, decay, mu, gamma) -> all weights finite
    present_pattern(plan, x, row)
    lms_cost(plan, x, b, sqb, row) -> local error      (sets b and sqb of the outputs)
    train_patterns(plan, bufs, patterns, desired, order, mode, alpha, decay, mu, gamma,
                   extras)
        -> (sum of local errors, patterns done, position of the first bad pattern or -1)
    evaluate(plan, x, s, w, patterns, desired, lo, hi, out_err, out_class, out_sign,
             cost_kind) -> sum of local errors
    new_buffers(nunits, nweights, dtype) -> Buffers;  workspace_size(plan, dtype)
    plain_extras() -> Extras for SN's own training (LMS cost, no dropout, no shifts)

  and, for the modern variant (softmax cross-entropy, AdamW, dropout, input shifts):
    Extras, xent_cost, cost, forward_keep, backward_keep, update_adamw, present_shifted.

The plan: stages (runs of units with one nonlinearity, in order) and ops (the
connections into a stage: OP_SPARSE, a CSR list of any connections; OP_FULL, every
source to every target, weights source-major; OP_BIAS, from unit 0, own or shared
weights; OP_CONV, windows over planes through shared or own kernels, with taps that
read a constant background unit or nothing; see the Plan fields below). Blocks'
epsilons are per target unit (ueps), sparse connections carry their own.

Conventions:

* forward, backward, backward2 and evaluate take the weights `w` after `s` (no
  Plan field holds them).
* ``evaluate`` takes one more output array, ``out_sign``: 1 when every output has the
  sign of its desired value ((x > 0) == (d > 0)), for SN's quadrant classifier, and
  the kind of cost. Patterns are ``lo <= p < hi`` (hi exclusive) and the out arrays
  are indexed by p.
* The cost sets sqb of the output units (1 for LMS), not backward2.
* ``update`` returns True when every updated weight is finite. ``train_patterns``
  returns ``(error_sum, n_done, bad)``: ``bad`` is the position in ``order`` of the
  first pattern whose local error or updated weights are not finite (-1 if none);
  then ``n_done == bad`` and ``error_sum`` covers the patterns before it. A pattern
  whose error is not finite stops training before its update; one whose update makes
  weights non-finite leaves them so (the caller restores its copy).
* Output units get their backsum from the cost only: ops never add into b (or sqb) of
  an output unit, as in SN2.8 where ``init-grad-lms`` sets the output backsums and
  ``update-gradient`` runs over the hidden layers only. Units in no stage (inputs,
  bias, background) receive nothing either.
* The source units of an op must belong to earlier stages (or to no stage); the
  compiler orders stages topologically.

Every kernel derives a small workspace from the plan (``_workspace``: receive mask,
conv gather/scatter maps, runs of conv pairs) at each call; train_patterns and evaluate
do it once per call, so call them on many patterns at a time.

tanh is computed by ``_tanh``, a vectorisable expm1-based formula (range reduction by
ln 2, Taylor polynomial, power of two built by multiplications) accurate to ~2 ulp in
float64, or by ``_tanh32``, the same in float32 with a shorter polynomial, for float32
buffers; numba's math.tanh is a scalar library call that would dominate the run time.
The forward pass keeps tanh(B s) of each unit for the backward pass (``Work.th``).
"""

from collections import namedtuple

import numpy as np
from numba import njit, types, uint64
from numba.extending import overload

# ---------------------------------------------------------------------------
# Constants and containers
# ---------------------------------------------------------------------------

OP_SPARSE, OP_FULL, OP_BIAS, OP_CONV = 0, 1, 2, 3
(KIND, DST_LO, DST_N, SRC_LO, SRC_N, W_LO, AUX, AUX2, NTAPS, NPAIRS, BG,
 SHARED) = range(12)
OP_COLUMNS = 12
TAP_BG, TAP_NONE = -1, -2

NLF_TANH, NLF_LIN, NLF_PIECE, NLF_BIN, NLF_RELU = range(5)
# stage columns
ST_LO, ST_HI, ST_NLF, ST_OP_LO, ST_OP_HI = range(5)

MODE_SGD, MODE_NEWTON, MODE_LM, MODE_ADAMW = 0, 1, 2, 3
COST_LMS, COST_XENT = 0, 1
# the optimizer's numbers: lr, weight decay, beta1, beta2, epsilon, steps done
OPT_LR, OPT_WD, OPT_B1, OPT_B2, OPT_EPS, OPT_T = range(6)

_U1, _U2, _U3, _U4 = (np.uint64(i) for i in range(1, 5))   # unsigned index steps

Plan = namedtuple("Plan", [
    "stages",        # int64 [nstages, 5]  unit_lo, unit_hi, nlf_row, op_lo, op_hi
    "nlfs",          # float64 [nnlf, 5]   kind, A, B, C, D
    "ops",           # int64 [nops, 12]    see the OP column constants
    "csr_ptr",       # int64               row pointers of sparse ops
    "csr_src",       # int32               source unit of each sparse connection
    "csr_w",         # int32               weight of each sparse connection
    "csr_eps",       # ft                  epsilon of each sparse connection
    "taps",          # int32               tap maps of conv ops
    "pairs",         # int64 [npairs, 3]   (in_plane, out_plane, w_base) of conv ops
    "ueps",          # ft [nunits]         epsilon of block connections into each unit
    "input_units",   # int64 [n_in]
    "output_units",  # int64 [n_out]
])

Extras = namedtuple("Extras", [
    "cost",          # COST_LMS or COST_XENT
    "opt",           # float64 [6]  AdamW numbers (OPT_*); OPT_T counts the steps
    "keep",          # float64 [npat, nd]  dropout factor (0 or 1/(1-p)) of drop_units[j]
    "drop_units",    # int64 [nd]   units under dropout    for the i-th pattern of `order`
    "shifts",        # int64 [npat, 2]  (rows, cols) shift of pattern i of `order`
    "shape",         # int64 [3]    planes, rows, cols of the input (for shifts)
    "wrap",          # int64        1: shifts wrap around; 0: fill with `fill`
    "fill",          # float64      value of pixels shifted in
])

Buffers = namedtuple("Buffers", [
    "x", "s", "b", "g", "ggrad", "sqb",      # per unit
    "w", "delta", "acc", "hess", "hq",       # per weight
])


def plain_extras(cost=COST_LMS):
    """Extras for plain on-line training: no dropout, no shifts, no AdamW."""
    return Extras(cost, np.zeros(6), np.zeros((0, 0)), np.zeros(0, np.int64),
                  np.zeros((0, 2), np.int64), np.ones(3, np.int64), 0, 0.0)


def new_buffers(nunits, nweights, dtype=np.float64):
    """Zeroed per-unit and per-weight arrays; x[0] = 1 (the bias unit)."""
    dtype = np.dtype(dtype)
    if dtype not in (np.dtype(np.float32), np.dtype(np.float64)):
        raise TypeError("buffers must be float32 or float64, not %s" % dtype)
    u = [np.zeros(nunits, dtype) for _ in range(6)]
    k = [np.zeros(nweights, dtype) for _ in range(5)]
    u[0][0] = 1.0
    return Buffers(*u, *k)


# numba options. Kernels raise nothing (error_model='numpy': x/0 gives inf, which
# lets divisions vectorise). Summation loops may be reassociated ("reassoc") so that
# reductions vectorise; nothing assumes finite values, NaN/inf propagate.
_SAFE = dict(cache=True, nogil=True, error_model="numpy", fastmath={"contract"})
_FAST = dict(cache=True, nogil=True, error_model="numpy",
             fastmath={"contract", "reassoc", "nsz"})


# ---------------------------------------------------------------------------
# Nonlinearities
# ---------------------------------------------------------------------------

@njit(**_SAFE)
def _tanh(x):
    """tanh(x) = e/(e+2) with e = expm1(2|x|), odd extension.

    expm1(y) = 2^n (1 + q(r)) - 1 = 2^n q(r) + (2^n - 1) with y = n ln2 + r,
    |r| <= ln2/2, q(r) = expm1(r) by its Taylor series to r^13. |x| is clamped to 20
    (tanh(20) rounds to 1 in float64), so 2^n <= 2^58 is built from n's bits.
    NaN propagates. Branch-free: vectorises.
    """
    a = abs(x)
    if a > 20.0:
        a = 20.0
    y = a + a
    nf = np.floor(y * 1.4426950408889634 + 0.5)
    r = (y - nf * 0.6931471803691238) - nf * 1.9082149292705877e-10
    q = 1.6059043836821613e-10
    q = q * r + 2.08767569878681e-09
    q = q * r + 2.505210838544172e-08
    q = q * r + 2.755731922398589e-07
    q = q * r + 2.7557319223985893e-06
    q = q * r + 2.48015873015873e-05
    q = q * r + 0.0001984126984126984
    q = q * r + 0.001388888888888889
    q = q * r + 0.008333333333333333
    q = q * r + 0.041666666666666664
    q = q * r + 0.16666666666666666
    q = q * r + 0.5
    q = q * (r * r) + r
    n = np.int64(nf)
    p = 1.0
    if n & 1:
        p *= 2.0
    if n & 2:
        p *= 4.0
    if n & 4:
        p *= 16.0
    if n & 8:
        p *= 256.0
    if n & 16:
        p *= 65536.0
    if n & 32:
        p *= 4294967296.0
    e = p * q + (p - 1.0)
    t = e / (e + 2.0)
    return t if x >= 0 else -t


# float32 constants of _tanh32 (Cody-Waite split of ln 2: n * _LN2HI is exact)
_F0, _F1, _F2, _F9 = (np.float32(v) for v in (0.0, 1.0, 2.0, 9.0))
_LOG2E32 = np.float32(1.4426950408889634)
_LN2HI32 = np.float32(0.693145751953125)
_LN2LO32 = np.float32(1.428606765330187e-06)
_EXPM1_32 = tuple(np.float32(1.0 / f) for f in (5040.0, 720.0, 120.0, 24.0, 6.0, 2.0))


@njit(**_SAFE)
def _tanh32(x):
    """_tanh in float32: |x| clamped to 9 (tanh(9) rounds to 1), expm1's Taylor
    series to r^7, 2^n (n <= 26) from n's bits."""
    a = abs(x)
    if a > _F9:
        a = _F9
    y = a + a
    nf = np.floor(y * _LOG2E32 + np.float32(0.5))
    r = (y - nf * _LN2HI32) - nf * _LN2LO32
    c0, c1, c2, c3, c4, c5 = _EXPM1_32
    q = c0 * r + c1
    q = q * r + c2
    q = q * r + c3
    q = q * r + c4
    q = q * r + c5
    q = q * (r * r) + r
    n = np.int32(nf)
    p = _F1
    if n & 1:
        p *= np.float32(2.0)
    if n & 2:
        p *= np.float32(4.0)
    if n & 4:
        p *= np.float32(16.0)
    if n & 8:
        p *= np.float32(256.0)
    if n & 16:
        p *= np.float32(65536.0)
    e = p * q + (p - _F1)
    t = e / (e + _F2)
    return t if x >= _F0 else -t


def _tanh_ft(x):
    """tanh in the precision of x (compiled code only: _tanh32 or _tanh)."""
    raise NotImplementedError


@overload(_tanh_ft)
def _tanh_ft_impl(x):
    if x == types.float32:
        return lambda x: _tanh32(x)
    return lambda x: _tanh(x)


@njit(**_SAFE)
def _tanh_stage(B, sv, tv):
    """tv[j] = tanh(B sv[j]), in the precision of sv. The forward pass keeps these
    for the backward pass; the backward entry points recompute them here."""
    b = sv.dtype.type(B)
    for j in range(sv.shape[0]):
        tv[j] = _tanh_ft(b * sv[j])


@njit(**_SAFE)
def _nlf_forward(nlf, s, x, th, lo, hi):
    """x[j] = f(s[j]) for lo <= j < hi; nlf = [kind, A, B, C, D]; th[j] = tanh(B s[j])
    for TANH and BIN (their derivative's t).

    TANH  A tanh(B s) + C s + D      LIN   A s + D
    PIECE A clip(B s, -1, 1) + C s + D
    BIN   A sign(B s) + C s + D  (sign(0) = +1)      RELU  max(0, s)
    """
    ft = s.dtype.type
    kind = int(nlf[0])
    A = ft(nlf[1])
    B = ft(nlf[2])
    C = ft(nlf[3])
    D = ft(nlf[4])
    one = ft(1.0)
    zero = ft(0.0)
    sv = s[lo:hi]
    xv = x[lo:hi]
    tv = th[lo:hi]
    n = hi - lo
    if kind == NLF_TANH or kind == NLF_BIN:
        _tanh_stage(nlf[2], sv, tv)
    if kind == NLF_TANH:
        for j in range(n):
            xv[j] = A * tv[j] + C * sv[j] + D
    elif kind == NLF_LIN:
        for j in range(n):
            xv[j] = A * sv[j] + D
    elif kind == NLF_PIECE:
        for j in range(n):
            v = sv[j]
            c = B * v
            if c > one:
                c = one
            elif c < -one:
                c = -one
            xv[j] = A * c + C * v + D
    elif kind == NLF_BIN:
        for j in range(n):
            v = sv[j]
            sg = one if B * v >= zero else -one
            if v != v:
                sg = v
            xv[j] = A * sg + C * v + D
    else:  # NLF_RELU
        for j in range(n):
            v = sv[j]
            xv[j] = zero if v <= zero else v


@njit(**_SAFE)
def _nlf_backward(nlf, s, th, b, sqb, g, ggrad, lo, hi, first, second, lm, keep,
                  dropping):
    """For lo <= j < hi:
        g[j] = b[j] f'(s[j])                                  (first)
        ggrad[j] = sqb[j] f'(s[j])^2 - b[j] f''(s[j])         (second; lm: no f'' term)

    TANH, BIN  f' = A B (1 - t^2) + C,  f'' = -2 A B^2 t (1 - t^2),  t = th[j]
               = tanh(B s) (BIN: SN's pseudo-gradient)
    LIN   f' = A                        PIECE  f' = A B [|B s| < 1] + C
    RELU  f' = [s > 0];                 f'' = 0 for these three
    With dropout (`dropping`), x = keep f(s): g and ggrad are multiplied by keep
    and keep^2.
    """
    ft = s.dtype.type
    kind = int(nlf[0])
    A = nlf[1]
    B = nlf[2]
    AB = ft(A * B)
    ABB2 = ft(-2.0 * A * B * B)
    C = ft(nlf[3])
    one = ft(1.0)
    zero = ft(0.0)
    n = hi - lo
    sv = s[lo:hi]
    tv = th[lo:hi]
    bv = b[lo:hi]
    qv = sqb[lo:hi]
    gv = g[lo:hi]
    hv = ggrad[lo:hi]
    if kind == NLF_TANH or kind == NLF_BIN:
        for j in range(n):
            t = tv[j]
            u = one - t * t
            d = AB * u + C
            if first:
                gv[j] = bv[j] * d
            if second:
                v = qv[j] * (d * d)
                if not lm:
                    v -= bv[j] * (ABB2 * t * u)
                hv[j] = v
    else:
        Bf = ft(B)
        for j in range(n):
            v = sv[j]
            if kind == NLF_LIN:
                d = ft(A)
            elif kind == NLF_PIECE:
                c = Bf * v
                d = (AB if (c < one and c > -one) else zero) + C
            else:
                d = one if v > zero else zero
            if first:
                gv[j] = bv[j] * d
            if second:
                hv[j] = qv[j] * (d * d)
    if dropping:
        kv = keep[lo:hi]
        for j in range(n):
            if first:
                gv[j] *= kv[j]
            if second:
                hv[j] *= kv[j] * kv[j]


# ---------------------------------------------------------------------------
# Small vector primitives: contiguous loops over unsigned offsets (no wraparound
# checks), inlined into the op kernels so that LLVM vectorises them.
# ---------------------------------------------------------------------------

@njit(inline="always", **_FAST)
def _axpy1(y, yo, n, x, xo, c):
    """y[yo:yo+n] += c x[xo:xo+n]"""
    yo = uint64(yo)
    xo = uint64(xo)
    for i in range(uint64(n)):
        y[yo + i] += c * x[xo + i]


@njit(inline="always", **_FAST)
def _axpy1sq(y, yo, n, x, xo, c):
    """y[yo:yo+n] += c x[xo:xo+n]^2"""
    yo = uint64(yo)
    xo = uint64(xo)
    for i in range(uint64(n)):
        xi = x[xo + i]
        y[yo + i] += c * (xi * xi)


@njit(inline="always", **_FAST)
def _axpy4(y, yo, n, x, o0, o1, o2, o3, c0, c1, c2, c3):
    """y[yo:yo+n] += sum_k c_k x[o_k:o_k+n]"""
    yo = uint64(yo)
    o0 = uint64(o0)
    o1 = uint64(o1)
    o2 = uint64(o2)
    o3 = uint64(o3)
    for i in range(uint64(n)):
        y[yo + i] += c0 * x[o0 + i] + c1 * x[o1 + i] + c2 * x[o2 + i] + c3 * x[o3 + i]


@njit(inline="always", **_FAST)
def _rows8(o, rs):
    """The unsigned offsets o + k*rs, k = 0..7, of eight rows rs apart."""
    o0 = uint64(o)
    r = uint64(rs)
    o1 = o0 + r
    o2 = o1 + r
    o3 = o2 + r
    o4 = o3 + r
    o5 = o4 + r
    o6 = o5 + r
    return o0, o1, o2, o3, o4, o5, o6, o6 + r


@njit(inline="always", **_FAST)
def _axpy8(y, yo, n, x, o, rs, c0, c1, c2, c3, c4, c5, c6, c7):
    """y[yo:yo+n] += sum_k c_k x[o+k*rs:o+k*rs+n]   (k = 0..7)"""
    yo = uint64(yo)
    o0, o1, o2, o3, o4, o5, o6, o7 = _rows8(o, rs)
    for i in range(uint64(n)):
        y[yo + i] += (c0 * x[o0 + i] + c1 * x[o1 + i] + c2 * x[o2 + i] + c3 * x[o3 + i]
                      + c4 * x[o4 + i] + c5 * x[o5 + i] + c6 * x[o6 + i]
                      + c7 * x[o7 + i])


@njit(inline="always", **_FAST)
def _axpy4sq(y, yo, n, x, o0, o1, o2, o3, c0, c1, c2, c3):
    """y[yo:yo+n] += sum_k c_k x[o_k:o_k+n]^2"""
    yo = uint64(yo)
    o0 = uint64(o0)
    o1 = uint64(o1)
    o2 = uint64(o2)
    o3 = uint64(o3)
    for i in range(uint64(n)):
        x0 = x[o0 + i]
        x1 = x[o1 + i]
        x2 = x[o2 + i]
        x3 = x[o3 + i]
        y[yo + i] += c0 * (x0 * x0) + c1 * (x1 * x1) + c2 * (x2 * x2) + c3 * (x3 * x3)


@njit(inline="always", **_FAST)
def _outer4(y, o0, o1, o2, o3, n, x, xo, c0, c1, c2, c3):
    """y[o_k:o_k+n] += c_k x[xo:xo+n]   for k = 0..3"""
    o0 = uint64(o0)
    o1 = uint64(o1)
    o2 = uint64(o2)
    o3 = uint64(o3)
    xo = uint64(xo)
    for i in range(uint64(n)):
        xi = x[xo + i]
        y[o0 + i] += c0 * xi
        y[o1 + i] += c1 * xi
        y[o2 + i] += c2 * xi
        y[o3 + i] += c3 * xi


@njit(inline="always", **_FAST)
def _dot1(v, vo, n, x, xo):
    """sum_i v[vo+i] x[xo+i]"""
    vo = uint64(vo)
    xo = uint64(xo)
    a = v.dtype.type(0)
    for i in range(uint64(n)):
        a += v[vo + i] * x[xo + i]
    return a


@njit(inline="always", **_FAST)
def _dot1sq(v, vo, n, x, xo):
    """sum_i v[vo+i] x[xo+i]^2"""
    vo = uint64(vo)
    xo = uint64(xo)
    a = v.dtype.type(0)
    for i in range(uint64(n)):
        xi = x[xo + i]
        a += v[vo + i] * (xi * xi)
    return a


@njit(inline="always", **_FAST)
def _dot4(v, vo, n, x, o0, o1, o2, o3):
    """(sum_i v[vo+i] x[o_k+i])   for k = 0..3"""
    vo = uint64(vo)
    o0 = uint64(o0)
    o1 = uint64(o1)
    o2 = uint64(o2)
    o3 = uint64(o3)
    a0 = v.dtype.type(0)
    a1 = a0
    a2 = a0
    a3 = a0
    for i in range(uint64(n)):
        vi = v[vo + i]
        a0 += vi * x[o0 + i]
        a1 += vi * x[o1 + i]
        a2 += vi * x[o2 + i]
        a3 += vi * x[o3 + i]
    return a0, a1, a2, a3


@njit(inline="always", **_FAST)
def _dot8(v, vo, n, x, o, rs):
    """(sum_i v[vo+i] x[o+k*rs+i])   for k = 0..7"""
    vo = uint64(vo)
    o0, o1, o2, o3, o4, o5, o6, o7 = _rows8(o, rs)
    a0 = v.dtype.type(0)
    a1 = a0
    a2 = a0
    a3 = a0
    a4 = a0
    a5 = a0
    a6 = a0
    a7 = a0
    for i in range(uint64(n)):
        vi = v[vo + i]
        a0 += vi * x[o0 + i]
        a1 += vi * x[o1 + i]
        a2 += vi * x[o2 + i]
        a3 += vi * x[o3 + i]
        a4 += vi * x[o4 + i]
        a5 += vi * x[o5 + i]
        a6 += vi * x[o6 + i]
        a7 += vi * x[o7 + i]
    return a0, a1, a2, a3, a4, a5, a6, a7


@njit(inline="always", **_FAST)
def _dot4sq(v, vo, n, x, o0, o1, o2, o3):
    """(sum_i v[vo+i] x[o_k+i]^2)   for k = 0..3"""
    vo = uint64(vo)
    o0 = uint64(o0)
    o1 = uint64(o1)
    o2 = uint64(o2)
    o3 = uint64(o3)
    a0 = v.dtype.type(0)
    a1 = a0
    a2 = a0
    a3 = a0
    for i in range(uint64(n)):
        vi = v[vo + i]
        x0 = x[o0 + i]
        x1 = x[o1 + i]
        x2 = x[o2 + i]
        x3 = x[o3 + i]
        a0 += vi * (x0 * x0)
        a1 += vi * (x1 * x1)
        a2 += vi * (x2 * x2)
        a3 += vi * (x3 * x3)
    return a0, a1, a2, a3


# ---------------------------------------------------------------------------
# Workspace: index arrays derived from the plan, and scratch buffers
# ---------------------------------------------------------------------------
#
# A conv op's windows are gathered into a patch buffer, in one of two layouts:
#   tap-major  patch[p, t, pos]   when positions are many and kernels short (loops
#                                 over positions), e.g. 5x5 kernels over 8x8 planes;
#   pos-major  patch[pos, p, t]   when consecutive pairs of one output plane use
#                                 consecutive input planes and consecutive weights
#                                 ("runs", e.g. 8 pairs x 25 taps = 200), so that the
#                                 loops run along a whole run.
# The backward pass accumulates the patch gradient pg (and psq) tap-major in either case
# and scatters it through a list of (pg element, receiving unit), grouped by unit.

Work = namedtuple("Work", [
    "recv",    # uint8 [nunits]  1 if the unit accumulates a backsum (in a stage, not output)
    "prop",    # uint8 [nops]    1 if some source unit of the op receives
    "posmaj",  # uint8 [nops]    conv op uses the pos-major layout
    "poff",    # int64 [nops+1]  offset of each conv op's patch in `patch`
    "nsp",     # int64 [nops]    number of source planes of each conv op
    "gidx",    # int32 [npatch]  unit read by each patch element (BG, or 0 if absent)
    "zoff",    # int64 [nops+1]  range of each op in `zlist`
    "zlist",   # int64           patch elements of absent taps (kept at 0)
    "soff",    # int64 [nops+1]  range of each op in the scatter list
    "sidx",    # int32           pg element (tap-major, relative to the op's patch) ...
    "sdst",    # int32           ... and the receiving unit it adds into
    "goff",    # int64 [nops]    tap-major: start of the op's in-plane groups in `gptr`
    "gptr",    # int64           pairs of in-plane p: pord[gptr[goff+p]:gptr[goff+p+1]]
    "pord",    # int64           pair rows sorted by in-plane, per op
    "roff",    # int64 [nops+1]  pos-major: range of the op's runs
    "runs",    # int64 [nruns,4] (out_plane, first in_plane, number of pairs, w_base)
    "patch",   # ft [npatch]     gathered windows
    "pg",      # ft              patch gradient of one op (first order)
    "psq",     # ft              patch gradient of one op (second order)
    "v1",      # ft              ueps * g of one destination block
    "th",      # ft [nunits]     tanh(B s) of TANH and BIN units, kept by the forward pass
])


@njit(**_SAFE)
def _workspace(plan, x):
    """Derived index arrays and scratch buffers for `plan` (dtype of x)."""
    ops = plan.ops
    pairs = plan.pairs
    taps = plan.taps
    nops = ops.shape[0]
    nunits = x.shape[0]
    recv = np.zeros(nunits, np.uint8)
    for st in range(plan.stages.shape[0]):
        for j in range(plan.stages[st, ST_LO], plan.stages[st, ST_HI]):
            recv[j] = 1
    for o in plan.output_units:
        recv[o] = 0
    prop = np.zeros(nops, np.uint8)
    posmaj = np.zeros(nops, np.uint8)
    poff = np.zeros(nops + 1, np.int64)
    zoff = np.zeros(nops + 1, np.int64)
    soff = np.zeros(nops + 1, np.int64)
    roff = np.zeros(nops + 1, np.int64)
    nsp = np.zeros(nops, np.int64)
    goff = np.zeros(nops, np.int64)
    ngrp = 0
    vec = 1
    big = 1
    # pass 1: sizes
    for k in range(nops):
        n = ops[k, DST_N]
        nt = ops[k, NTAPS]
        poff[k + 1] = poff[k]
        zoff[k + 1] = zoff[k]
        soff[k + 1] = soff[k]
        roff[k + 1] = roff[k]
        vec = max(vec, n)
        kind = ops[k, KIND]
        lo = 0
        hi = 0
        if kind == OP_CONV:
            a2 = ops[k, AUX2]
            npairs = ops[k, NPAIRS]
            m = 0
            for q in range(npairs):
                m = max(m, pairs[a2 + q, 0] + 1)
            nsp[k] = m
            size = m * nt * n
            poff[k + 1] += size
            big = max(big, size)
            nz = 0
            for i in range(nt * n):
                o = taps[ops[k, AUX] + i]
                if o < 0 and (o != TAP_BG or ops[k, BG] < 0):
                    nz += 1
            zoff[k + 1] += nz * m
            goff[k] = ngrp
            ngrp += m + 1
            lo = ops[k, SRC_LO]
            hi = lo + m * ops[k, SRC_N]
            roff[k + 1] += npairs
            for p in range(m):
                for i in range(nt * n):
                    o = taps[ops[k, AUX] + i]
                    if o >= 0 and recv[lo + p * ops[k, SRC_N] + o]:
                        soff[k + 1] += 1
        elif kind == OP_FULL:
            lo = ops[k, SRC_LO]
            hi = lo + ops[k, SRC_N]
        for u in range(lo, hi):
            if recv[u]:
                prop[k] = 1
                break
    gidx = np.zeros(poff[nops], np.int32)
    zlist = np.zeros(zoff[nops], np.int64)
    sidx = np.zeros(soff[nops], np.int32)
    sdst = np.zeros(soff[nops], np.int32)
    gptr = np.zeros(ngrp + 1, np.int64)
    pord = np.zeros(pairs.shape[0], np.int64)
    runs = np.zeros((roff[nops], 4), np.int64)
    # pass 2: fill
    for k in range(nops):
        if ops[k, KIND] != OP_CONV:
            roff[k + 1] = roff[k]
            continue
        n = ops[k, DST_N]
        nt = ops[k, NTAPS]
        slo = ops[k, SRC_LO]
        sn = ops[k, SRC_N]
        bg = ops[k, BG]
        a2 = ops[k, AUX2]
        npairs = ops[k, NPAIRS]
        m = nsp[k]
        # runs of pairs: same out plane, consecutive in planes and weights
        key = np.empty(npairs, np.int64)
        srt = np.empty(npairs, np.int64)
        for q in range(npairs):         # stable insertion sort by (out plane, in plane)
            kq = pairs[a2 + q, 1] * (m + 1) + pairs[a2 + q, 0]
            i = q
            while i > 0 and key[i - 1] > kq:
                key[i] = key[i - 1]
                srt[i] = srt[i - 1]
                i -= 1
            key[i] = kq
            srt[i] = q
        nr = 0
        r0 = roff[k]
        for i in range(npairs):
            pq = a2 + srt[i]
            if (nr > 0 and runs[r0 + nr - 1, 0] == pairs[pq, 1]
                    and runs[r0 + nr - 1, 1] + runs[r0 + nr - 1, 2] == pairs[pq, 0]
                    and runs[r0 + nr - 1, 3] + runs[r0 + nr - 1, 2] * nt == pairs[pq, 2]):
                runs[r0 + nr - 1, 2] += 1
            else:
                runs[r0 + nr, 0] = pairs[pq, 1]
                runs[r0 + nr, 1] = pairs[pq, 0]
                runs[r0 + nr, 2] = 1
                runs[r0 + nr, 3] = pairs[pq, 2]
                nr += 1
        roff[k + 1] = r0 + nr
        pm = ops[k, SHARED] != 0 and npairs * nt >= 2 * n * nr
        posmaj[k] = 1 if pm else 0
        # gather and scatter maps
        z = zoff[k]
        sc = soff[k]
        for p in range(m):
            for t in range(nt):
                for pos in range(n):
                    o = taps[ops[k, AUX] + t * n + pos]
                    if pm:
                        e = (pos * m + p) * nt + t
                    else:
                        e = (p * nt + t) * n + pos
                    if o >= 0:
                        u = slo + p * sn + o
                        gidx[poff[k] + e] = u
                        if recv[u]:
                            sidx[sc] = (p * nt + t) * n + pos       # pg is tap-major
                            sdst[sc] = u
                            sc += 1
                    elif o == TAP_BG and bg >= 0:
                        gidx[poff[k] + e] = bg
                    else:
                        zlist[z] = poff[k] + e
                        z += 1
        # scatter list by receiving unit, so that each unit's terms add up in a register
        srt = np.argsort(sdst[soff[k]:sc], kind="mergesort")
        sidx[soff[k]:sc] = sidx[soff[k]:sc][srt]
        sdst[soff[k]:sc] = sdst[soff[k]:sc][srt]
        # tap-major: pairs grouped by in-plane (counting sort)
        g0 = goff[k]
        for q in range(npairs):
            gptr[g0 + pairs[a2 + q, 0] + 1] += 1
        gptr[g0] = a2
        for p in range(m):
            gptr[g0 + p + 1] += gptr[g0 + p]
        fill = gptr[g0:g0 + m].copy()
        for q in range(npairs):
            p = pairs[a2 + q, 0]
            pord[fill[p]] = a2 + q
            fill[p] += 1
    return Work(recv, prop, posmaj, poff, nsp, gidx, zoff, zlist, soff, sidx, sdst,
                goff, gptr, pord, roff, runs[:roff[nops]],
                np.zeros(poff[nops], x.dtype), np.zeros(big, x.dtype),
                np.zeros(big, x.dtype), np.zeros(vec, x.dtype), np.zeros(nunits, x.dtype))


def workspace_size(plan, dtype=np.float64):
    """Bytes of scratch the kernels derive from `plan` at each call (for information)."""
    wk = _workspace(plan, np.zeros(1 + int(plan.ueps.shape[0]), dtype))
    return int(sum(a.nbytes for a in wk))


# ---------------------------------------------------------------------------
# OP_SPARSE: generic CSR connections
# (indirect loops: scalar with four partial sums beats vector gathers)
# ---------------------------------------------------------------------------

@njit(**_SAFE)
def _sparse_forward(plan, k, x, s, w):
    """s[j] += sum_c w[csr_w[c]] x[csr_src[c]]   over the row of j"""
    ops = plan.ops
    lo = ops[k, DST_LO]
    base = ops[k, AUX]
    ptr = plan.csr_ptr
    src = plan.csr_src.view(np.uint32)
    wi = plan.csr_w.view(np.uint32)
    zero = s.dtype.type(0)
    for r in range(ops[k, DST_N]):
        c = uint64(ptr[base + r])
        c1 = uint64(ptr[base + r + 1])
        t0 = zero
        t1 = zero
        t2 = zero
        t3 = zero
        while c + _U4 <= c1:
            t0 += w[wi[c]] * x[src[c]]
            t1 += w[wi[c + _U1]] * x[src[c + _U1]]
            t2 += w[wi[c + _U2]] * x[src[c + _U2]]
            t3 += w[wi[c + _U3]] * x[src[c + _U3]]
            c += _U4
        while c < c1:
            t0 += w[wi[c]] * x[src[c]]
            c += _U1
        s[lo + r] += (t0 + t1) + (t2 + t3)


@njit(**_SAFE)
def _sparse_backward(plan, k, x, w, b, g, acc, ggrad, sqb, hq, recv, first, second):
    """For each connection c = (i, j, weight kc, epsilon eps_c) of the op:
    first:  acc[kc] += eps_c x[i] g[j];      b[i] += w[kc] g[j]
    second: hq[kc] += ggrad[j] x[i]^2;       sqb[i] += w[kc]^2 ggrad[j]
    (b and sqb only for receiving units i)"""
    ops = plan.ops
    lo = ops[k, DST_LO]
    base = ops[k, AUX]
    ptr = plan.csr_ptr
    src = plan.csr_src.view(np.uint32)
    wi = plan.csr_w.view(np.uint32)
    eps = plan.csr_eps
    for r in range(ops[k, DST_N]):
        j = lo + r
        c0 = uint64(ptr[base + r])
        c1 = uint64(ptr[base + r + 1])
        if first:
            gj = g[j]
            for c in range(c0, c1):
                i = src[c]
                kc = wi[c]
                acc[kc] += eps[c] * x[i] * gj
                if recv[i]:
                    b[i] += w[kc] * gj
        if second:
            hj = ggrad[j]
            for c in range(c0, c1):
                i = src[c]
                kc = wi[c]
                xi = x[i]
                hq[kc] += hj * (xi * xi)
                if recv[i]:
                    wc = w[kc]
                    sqb[i] += (wc * wc) * hj


# ---------------------------------------------------------------------------
# OP_FULL: every source unit to every destination unit, weights src-major
# ---------------------------------------------------------------------------

@njit(**_FAST)
def _full_forward(plan, k, x, s, w):
    """s[dlo+d] += sum_i w[wlo + i*n + d] x[slo+i]"""
    ops = plan.ops
    dlo = ops[k, DST_LO]
    n = ops[k, DST_N]
    slo = ops[k, SRC_LO]
    wlo = ops[k, W_LO]
    m = ops[k, SRC_N]
    i = 0
    while i + 8 <= m:
        _axpy8(s, dlo, n, w, wlo + i * n, n, x[slo + i], x[slo + i + 1], x[slo + i + 2],
               x[slo + i + 3], x[slo + i + 4], x[slo + i + 5], x[slo + i + 6],
               x[slo + i + 7])
        i += 8
    while i + 4 <= m:
        r = wlo + i * n
        _axpy4(s, dlo, n, w, r, r + n, r + 2 * n, r + 3 * n,
               x[slo + i], x[slo + i + 1], x[slo + i + 2], x[slo + i + 3])
        i += 4
    while i < m:
        _axpy1(s, dlo, n, w, wlo + i * n, x[slo + i])
        i += 1


@njit(**_FAST)
def _full_backward(plan, k, x, w, b, g, acc, ggrad, sqb, hq, wk, first, second):
    """With j = dlo + d and weight w[wlo + i*n + d]:
    first:  acc[..] += ueps[j] x[slo+i] g[j];      b[slo+i] += sum_d w[..] g[j]
    second: hq[..] += ggrad[j] x[slo+i]^2;         sqb[slo+i] += sum_d w[..]^2 ggrad[j]"""
    ops = plan.ops
    dlo = ops[k, DST_LO]
    n = ops[k, DST_N]
    slo = ops[k, SRC_LO]
    wlo = ops[k, W_LO]
    m = ops[k, SRC_N]
    recv = wk.recv
    v1 = wk.v1
    ueps = plan.ueps
    if first:
        for d in range(n):
            v1[d] = ueps[dlo + d] * g[dlo + d]
    i = 0
    while i + 4 <= m:
        r = wlo + i * n
        x0 = x[slo + i]
        x1 = x[slo + i + 1]
        x2 = x[slo + i + 2]
        x3 = x[slo + i + 3]
        if first:
            _outer4(acc, r, r + n, r + 2 * n, r + 3 * n, n, v1, 0, x0, x1, x2, x3)
        if second:
            _outer4(hq, r, r + n, r + 2 * n, r + 3 * n, n, ggrad, dlo,
                    x0 * x0, x1 * x1, x2 * x2, x3 * x3)
        if wk.prop[k]:
            if first:
                a0, a1, a2, a3 = _dot4(g, dlo, n, w, r, r + n, r + 2 * n, r + 3 * n)
                if recv[slo + i]:
                    b[slo + i] += a0
                if recv[slo + i + 1]:
                    b[slo + i + 1] += a1
                if recv[slo + i + 2]:
                    b[slo + i + 2] += a2
                if recv[slo + i + 3]:
                    b[slo + i + 3] += a3
            if second:
                a0, a1, a2, a3 = _dot4sq(ggrad, dlo, n, w, r, r + n, r + 2 * n, r + 3 * n)
                if recv[slo + i]:
                    sqb[slo + i] += a0
                if recv[slo + i + 1]:
                    sqb[slo + i + 1] += a1
                if recv[slo + i + 2]:
                    sqb[slo + i + 2] += a2
                if recv[slo + i + 3]:
                    sqb[slo + i + 3] += a3
        i += 4
    while i < m:
        r = wlo + i * n
        xi = x[slo + i]
        if first:
            _axpy1(acc, r, n, v1, 0, xi)
            if recv[slo + i]:
                b[slo + i] += _dot1(g, dlo, n, w, r)
        if second:
            _axpy1(hq, r, n, ggrad, dlo, xi * xi)
            if recv[slo + i]:
                sqb[slo + i] += _dot1sq(ggrad, dlo, n, w, r)
        i += 1


# ---------------------------------------------------------------------------
# OP_BIAS: unit 0 (state 1) to every destination unit
# ---------------------------------------------------------------------------

@njit(**_FAST)
def _bias_forward(plan, k, x, s, w):
    """s[dlo+d] += w[wlo+d] x[0]     (SHARED: w[wlo] for all d)"""
    ops = plan.ops
    dlo = ops[k, DST_LO]
    wlo = ops[k, W_LO]
    n = ops[k, DST_N]
    if ops[k, SHARED]:
        v = w[wlo] * x[0]
        sv = s[dlo:dlo + n]
        for d in range(n):
            sv[d] += v
    else:
        _axpy1(s, dlo, n, w, wlo, x[0])


@njit(**_FAST)
def _bias_backward(plan, k, x, g, acc, ggrad, hq, first, second):
    """acc[wlo+d] += ueps[j] x[0] g[j];   hq[wlo+d] += ggrad[j] x[0]^2   (j = dlo+d;
    SHARED: both summed into wlo). Unit 0 is in no stage: nothing propagates."""
    ops = plan.ops
    dlo = ops[k, DST_LO]
    wlo = ops[k, W_LO]
    n = ops[k, DST_N]
    ev = plan.ueps[dlo:dlo + n]
    gv = g[dlo:dlo + n]
    hv = ggrad[dlo:dlo + n]
    x0 = x[0]
    x2 = x0 * x0
    if ops[k, SHARED]:
        if first:
            t = acc[wlo]
            for d in range(n):
                t += ev[d] * x0 * gv[d]
            acc[wlo] = t
        if second:
            t = hq[wlo]
            for d in range(n):
                t += hv[d] * x2
            hq[wlo] = t
    else:
        if first:
            av = acc[wlo:wlo + n]
            for d in range(n):
                av[d] += ev[d] * x0 * gv[d]
        if second:
            _axpy1(hq, wlo, n, ggrad, dlo, x2)


# ---------------------------------------------------------------------------
# OP_CONV: windows over planes, through shared kernels or local weights
# ---------------------------------------------------------------------------

@njit(**_FAST)
def _conv_gather(k, x, wk):
    """patch[e] = x[gidx[e]]: the unit under each tap (the background unit for
    background taps); 0 for absent taps, so that they add nothing anywhere."""
    patch = wk.patch
    gidx = wk.gidx.view(np.uint32)
    for e in range(uint64(wk.poff[k]), uint64(wk.poff[k + 1])):
        patch[e] = x[gidx[e]]
    for z in range(wk.zoff[k], wk.zoff[k + 1]):
        patch[wk.zlist[z]] = 0.0


@njit(**_FAST)
def _conv_forward(plan, k, x, s, w, wk):
    """For each pair (p, q, wb):  s[q, pos] += sum_t w[wb + t] patch[p, t, pos]
    (local weights: w[wb + pos*ntaps + t])."""
    _conv_gather(k, x, wk)
    ops = plan.ops
    n = ops[k, DST_N]
    nt = ops[k, NTAPS]
    dlo = ops[k, DST_LO]
    off = wk.poff[k]
    patch = wk.patch
    if wk.posmaj[k]:
        rs = wk.nsp[k] * nt          # patch elements per position
        for r in range(wk.roff[k], wk.roff[k + 1]):
            so = dlo + wk.runs[r, 0] * n
            pb = off + wk.runs[r, 1] * nt
            ln = wk.runs[r, 2] * nt
            wb = wk.runs[r, 3]
            pos = 0
            while pos + 8 <= n:
                a0, a1, a2, a3, a4, a5, a6, a7 = _dot8(w, wb, ln, patch, pb + pos * rs, rs)
                s[so + pos] += a0
                s[so + pos + 1] += a1
                s[so + pos + 2] += a2
                s[so + pos + 3] += a3
                s[so + pos + 4] += a4
                s[so + pos + 5] += a5
                s[so + pos + 6] += a6
                s[so + pos + 7] += a7
                pos += 8
            while pos + 4 <= n:
                o = pb + pos * rs
                a0, a1, a2, a3 = _dot4(w, wb, ln, patch, o, o + rs, o + 2 * rs, o + 3 * rs)
                s[so + pos] += a0
                s[so + pos + 1] += a1
                s[so + pos + 2] += a2
                s[so + pos + 3] += a3
                pos += 4
            while pos < n:
                s[so + pos] += _dot1(w, wb, ln, patch, pb + pos * rs)
                pos += 1
        return
    pairs = plan.pairs
    a2 = ops[k, AUX2]
    shared = ops[k, SHARED] != 0
    for q in range(ops[k, NPAIRS]):
        so = dlo + pairs[a2 + q, 1] * n
        pb = off + pairs[a2 + q, 0] * nt * n
        wb = pairs[a2 + q, 2]
        if shared:
            t = 0
            while t + 8 <= nt:
                _axpy8(s, so, n, patch, pb + t * n, n, w[wb + t], w[wb + t + 1],
                       w[wb + t + 2], w[wb + t + 3], w[wb + t + 4], w[wb + t + 5],
                       w[wb + t + 6], w[wb + t + 7])
                t += 8
            while t + 4 <= nt:
                o = pb + t * n
                _axpy4(s, so, n, patch, o, o + n, o + 2 * n, o + 3 * n,
                       w[wb + t], w[wb + t + 1], w[wb + t + 2], w[wb + t + 3])
                t += 4
            while t < nt:
                _axpy1(s, so, n, patch, pb + t * n, w[wb + t])
                t += 1
        else:
            sv = s[so:so + n]
            for t in range(nt):
                pv = patch[pb + t * n:pb + t * n + n]
                wv = w[wb + t:wb + t + n * nt:nt]
                for pos in range(n):
                    sv[pos] += wv[pos] * pv[pos]


@njit(**_FAST)
def _conv_backward(plan, k, w, b, g, acc, ggrad, sqb, hq, wk, first, second):
    """For each pair (p, q, wb), tap t, position pos, with j = unit (q, pos) and
    u = the unit under (p, t, pos):
    first:  acc[wb+t] += ueps[j] g[j] patch[p,t,pos];    b[u] += w[wb+t] g[j]
    second: hq[wb+t]  += ggrad[j] patch[p,t,pos]^2;      sqb[u] += w[wb+t]^2 ggrad[j]
    (local weights: w[wb + pos*ntaps + t], likewise acc and hq). Background and
    absent taps, and units that do not receive, get no backsum."""
    ops = plan.ops
    n = ops[k, DST_N]
    nt = ops[k, NTAPS]
    dlo = ops[k, DST_LO]
    off = wk.poff[k]
    size = wk.poff[k + 1] - off
    patch = wk.patch
    ueps = plan.ueps
    v1 = wk.v1
    pg = wk.pg
    psq = wk.psq
    prop = wk.prop[k] != 0
    if prop:
        if first:
            pg[:size] = 0.0
        if second:
            psq[:size] = 0.0
    if wk.posmaj[k]:
        rs = wk.nsp[k] * nt
        for r in range(wk.roff[k], wk.roff[k + 1]):
            so = dlo + wk.runs[r, 0] * n
            pr = wk.runs[r, 1] * nt          # run's place within a position's row
            ln = wk.runs[r, 2] * nt
            wb = wk.runs[r, 3]
            if first:
                for pos in range(n):
                    v1[pos] = ueps[so + pos] * g[so + pos]
            pos = 0
            if first and not second:
                while pos + 8 <= n:
                    _axpy8(acc, wb, ln, patch, off + pr + pos * rs, rs, v1[pos],
                           v1[pos + 1], v1[pos + 2], v1[pos + 3], v1[pos + 4],
                           v1[pos + 5], v1[pos + 6], v1[pos + 7])
                    pos += 8
            while pos + 4 <= n:
                o = pr + pos * rs
                if first:
                    _axpy4(acc, wb, ln, patch, off + o, off + o + rs, off + o + 2 * rs,
                           off + o + 3 * rs, v1[pos], v1[pos + 1], v1[pos + 2], v1[pos + 3])
                if second:
                    _axpy4sq(hq, wb, ln, patch, off + o, off + o + rs, off + o + 2 * rs,
                             off + o + 3 * rs, ggrad[so + pos], ggrad[so + pos + 1],
                             ggrad[so + pos + 2], ggrad[so + pos + 3])
                pos += 4
            while pos < n:
                o = pr + pos * rs
                if first:
                    _axpy1(acc, wb, ln, patch, off + o, v1[pos])
                if second:
                    _axpy1sq(hq, wb, ln, patch, off + o, ggrad[so + pos])
                pos += 1
    else:
        _conv_backward_tapmajor(plan, k, w, g, acc, ggrad, hq, wk, first, second)
    if prop:
        _conv_pgrad(plan, k, w, g, ggrad, wk, first, second)
        _conv_scatter(k, b, sqb, wk, first, second)


@njit(**_FAST)
def _conv_scatter(k, b, sqb, wk, first, second):
    """b[u] += pg[e] (second: sqb[u] += psq[e]) over the scatter list of op k, whose
    entries come grouped by receiving unit u."""
    sidx = wk.sidx.view(np.uint32)
    sdst = wk.sdst.view(np.uint32)
    pg = wk.pg
    psq = wk.psq
    zero = pg.dtype.type(0)
    i = uint64(wk.soff[k])
    end = uint64(wk.soff[k + 1])
    while i < end:
        u = uint64(sdst[i])
        a1 = zero
        a2 = zero
        while i < end and uint64(sdst[i]) == u:
            e = uint64(sidx[i])
            if first:
                a1 += pg[e]
            if second:
                a2 += psq[e]
            i += _U1
        if first:
            b[u] += a1
        if second:
            sqb[u] += a2


@njit(**_FAST)
def _conv_backward_tapmajor(plan, k, w, g, acc, ggrad, hq, wk, first, second):
    """The weight side of _conv_backward (acc, hq) in the tap-major layout."""
    ops = plan.ops
    n = ops[k, DST_N]
    nt = ops[k, NTAPS]
    dlo = ops[k, DST_LO]
    off = wk.poff[k]
    patch = wk.patch
    pairs = plan.pairs
    ueps = plan.ueps
    v1 = wk.v1
    pg = wk.pg
    psq = wk.psq
    a2 = ops[k, AUX2]
    shared = ops[k, SHARED] != 0
    for q in range(ops[k, NPAIRS]):
        so = dlo + pairs[a2 + q, 1] * n
        pb = off + pairs[a2 + q, 0] * nt * n
        wb = pairs[a2 + q, 2]
        if first:
            for pos in range(n):
                v1[pos] = ueps[so + pos] * g[so + pos]
            if shared:
                t = 0
                while t + 8 <= nt:
                    a0, a1, a2_, a3, a4, a5, a6, a7 = _dot8(v1, 0, n, patch, pb + t * n, n)
                    acc[wb + t] += a0
                    acc[wb + t + 1] += a1
                    acc[wb + t + 2] += a2_
                    acc[wb + t + 3] += a3
                    acc[wb + t + 4] += a4
                    acc[wb + t + 5] += a5
                    acc[wb + t + 6] += a6
                    acc[wb + t + 7] += a7
                    t += 8
                while t + 4 <= nt:
                    o = pb + t * n
                    a0, a1, a2_, a3 = _dot4(v1, 0, n, patch, o, o + n, o + 2 * n,
                                            o + 3 * n)
                    acc[wb + t] += a0
                    acc[wb + t + 1] += a1
                    acc[wb + t + 2] += a2_
                    acc[wb + t + 3] += a3
                    t += 4
                while t < nt:
                    acc[wb + t] += _dot1(v1, 0, n, patch, pb + t * n)
                    t += 1
            else:
                for t in range(nt):
                    pv = patch[pb + t * n:pb + t * n + n]
                    av = acc[wb + t:wb + t + n * nt:nt]
                    for pos in range(n):
                        av[pos] += v1[pos] * pv[pos]
        if second:
            if shared:
                t = 0
                while t + 4 <= nt:
                    o = pb + t * n
                    a0, a1, a2_, a3 = _dot4sq(ggrad, so, n, patch, o, o + n, o + 2 * n,
                                              o + 3 * n)
                    hq[wb + t] += a0
                    hq[wb + t + 1] += a1
                    hq[wb + t + 2] += a2_
                    hq[wb + t + 3] += a3
                    t += 4
                while t < nt:
                    hq[wb + t] += _dot1sq(ggrad, so, n, patch, pb + t * n)
                    t += 1
            else:
                hv = ggrad[so:so + n]
                for t in range(nt):
                    pv = patch[pb + t * n:pb + t * n + n]
                    qv = hq[wb + t:wb + t + n * nt:nt]
                    for pos in range(n):
                        qv[pos] += hv[pos] * (pv[pos] * pv[pos])


@njit(**_FAST)
def _conv_pgrad(plan, k, w, g, ggrad, wk, first, second):
    """The patch gradient, tap-major whatever the patch's layout:
    pg[p, t, pos] += w[wb+t] g[q, pos] over the pairs (p, q, wb) of plane p (psq
    likewise with w^2 ggrad); shared kernels four pairs at a time over all taps."""
    ops = plan.ops
    n = ops[k, DST_N]
    nt = ops[k, NTAPS]
    dlo = ops[k, DST_LO]
    pairs = plan.pairs
    pg = wk.pg
    psq = wk.psq
    pord = wk.pord
    gptr = wk.gptr
    g0 = wk.goff[k]
    for p in range(wk.nsp[k]):
        i0 = gptr[g0 + p]
        i1 = gptr[g0 + p + 1]
        e0 = p * nt * n
        if ops[k, SHARED] == 0:
            for i in range(i0, i1):
                _conv_pgrad_local(w, g, ggrad, pg, psq, e0, n, nt,
                                  dlo + pairs[pord[i], 1] * n, pairs[pord[i], 2],
                                  first, second)
            continue
        i = i0
        while i + 8 <= i1:
            if first:
                _conv_pgrad8(w, g, pg, pairs, pord, i, e0, n, nt, dlo, False)
            if second:
                _conv_pgrad8(w, ggrad, psq, pairs, pord, i, e0, n, nt, dlo, True)
            i += 8
        while i + 4 <= i1:
            s0 = dlo + pairs[pord[i], 1] * n
            s1 = dlo + pairs[pord[i + 1], 1] * n
            s2 = dlo + pairs[pord[i + 2], 1] * n
            s3 = dlo + pairs[pord[i + 3], 1] * n
            b0 = pairs[pord[i], 2]
            b1 = pairs[pord[i + 1], 2]
            b2 = pairs[pord[i + 2], 2]
            b3 = pairs[pord[i + 3], 2]
            for t in range(nt):
                w0 = w[b0 + t]
                w1 = w[b1 + t]
                w2 = w[b2 + t]
                w3 = w[b3 + t]
                if first:
                    _axpy4(pg, e0 + t * n, n, g, s0, s1, s2, s3, w0, w1, w2, w3)
                if second:
                    _axpy4(psq, e0 + t * n, n, ggrad, s0, s1, s2, s3,
                           w0 * w0, w1 * w1, w2 * w2, w3 * w3)
            i += 4
        while i < i1:
            s0 = dlo + pairs[pord[i], 1] * n
            b0 = pairs[pord[i], 2]
            for t in range(nt):
                w0 = w[b0 + t]
                if first:
                    _axpy1(pg, e0 + t * n, n, g, s0, w0)
                if second:
                    _axpy1(psq, e0 + t * n, n, ggrad, s0, w0 * w0)
            i += 1


@njit(inline="always", **_FAST)
def _conv_pgrad8(w, g, pg, pairs, pord, i, e0, n, nt, dlo, sq):
    """_conv_pgrad's rows for the eight pairs pord[i:i+8] of one plane:
    pg[e0 + t*n + pos] += sum_k c_k g[s_k + pos], c_k = w[b_k + t] (sq: its square)."""
    s0 = dlo + pairs[pord[i], 1] * n
    s1 = dlo + pairs[pord[i + 1], 1] * n
    s2 = dlo + pairs[pord[i + 2], 1] * n
    s3 = dlo + pairs[pord[i + 3], 1] * n
    s4 = dlo + pairs[pord[i + 4], 1] * n
    s5 = dlo + pairs[pord[i + 5], 1] * n
    s6 = dlo + pairs[pord[i + 6], 1] * n
    s7 = dlo + pairs[pord[i + 7], 1] * n
    b0 = pairs[pord[i], 2]
    b1 = pairs[pord[i + 1], 2]
    b2 = pairs[pord[i + 2], 2]
    b3 = pairs[pord[i + 3], 2]
    b4 = pairs[pord[i + 4], 2]
    b5 = pairs[pord[i + 5], 2]
    b6 = pairs[pord[i + 6], 2]
    b7 = pairs[pord[i + 7], 2]
    for t in range(nt):
        c0 = w[b0 + t]
        c1 = w[b1 + t]
        c2 = w[b2 + t]
        c3 = w[b3 + t]
        c4 = w[b4 + t]
        c5 = w[b5 + t]
        c6 = w[b6 + t]
        c7 = w[b7 + t]
        if sq:
            c0 *= c0
            c1 *= c1
            c2 *= c2
            c3 *= c3
            c4 *= c4
            c5 *= c5
            c6 *= c6
            c7 *= c7
        yo = uint64(e0 + t * n)
        for j in range(uint64(n)):
            pg[yo + j] += (c0 * g[uint64(s0) + j] + c1 * g[uint64(s1) + j]
                           + c2 * g[uint64(s2) + j] + c3 * g[uint64(s3) + j]
                           + c4 * g[uint64(s4) + j] + c5 * g[uint64(s5) + j]
                           + c6 * g[uint64(s6) + j] + c7 * g[uint64(s7) + j])


@njit(inline="always", **_FAST)
def _conv_pgrad_local(w, g, ggrad, pg, psq, e0, n, nt, so, wb, first, second):
    """_conv_pgrad for one pair of own (unshared) weights w[wb + pos*nt + t]."""
    for t in range(nt):
        wv = w[wb + t:wb + t + n * nt:nt]
        gv = g[so:so + n]
        hv = ggrad[so:so + n]
        for pos in range(n):
            if first:
                pg[e0 + t * n + pos] += wv[pos] * gv[pos]
            if second:
                psq[e0 + t * n + pos] += (wv[pos] * wv[pos]) * hv[pos]


# ---------------------------------------------------------------------------
# Whole-network passes
# ---------------------------------------------------------------------------

@njit(**_FAST)
def _forward(plan, x, s, w, wk, keep, dropping):
    """All stages in order; with dropout, x = keep * f(s) (keep: 0 or 1/(1-p))."""
    ops = plan.ops
    stages = plan.stages
    for st in range(stages.shape[0]):
        lo = stages[st, ST_LO]
        hi = stages[st, ST_HI]
        for j in range(lo, hi):
            s[j] = 0.0
        for k in range(stages[st, ST_OP_LO], stages[st, ST_OP_HI]):
            kind = ops[k, KIND]
            if kind == OP_CONV:
                _conv_forward(plan, k, x, s, w, wk)
            elif kind == OP_FULL:
                _full_forward(plan, k, x, s, w)
            elif kind == OP_BIAS:
                _bias_forward(plan, k, x, s, w)
            else:
                _sparse_forward(plan, k, x, s, w)
        _nlf_forward(plan.nlfs[stages[st, ST_NLF]], s, x, wk.th, lo, hi)
        if dropping:
            for j in range(lo, hi):
                x[j] *= keep[j]


@njit(**_FAST)
def _backprop(plan, x, s, w, b, g, acc, ggrad, sqb, hq, first, second, lm, wk, keep,
              dropping):
    """One reverse pass over the stages: first-order (g, b, acc) when `first`,
    second-order (ggrad, sqb, hq) when `second`."""
    ops = plan.ops
    stages = plan.stages
    recv = wk.recv
    zero = x.dtype.type(0)
    for j in range(x.shape[0]):
        r = recv[j] != 0
        if first:
            b[j] = zero if r else b[j]
        if second:
            sqb[j] = zero if r else sqb[j]
    for st in range(stages.shape[0] - 1, -1, -1):
        lo = stages[st, ST_LO]
        hi = stages[st, ST_HI]
        nlf = plan.nlfs[stages[st, ST_NLF]]
        _nlf_backward(nlf, s, wk.th, b, sqb, g, ggrad, lo, hi, first, second, lm, keep,
                      dropping)
        for k in range(stages[st, ST_OP_LO], stages[st, ST_OP_HI]):
            kind = ops[k, KIND]
            if kind == OP_CONV:
                _conv_backward(plan, k, w, b, g, acc, ggrad, sqb, hq, wk, first, second)
            elif kind == OP_FULL:
                _full_backward(plan, k, x, w, b, g, acc, ggrad, sqb, hq, wk, first,
                               second)
            elif kind == OP_BIAS:
                _bias_backward(plan, k, x, g, acc, ggrad, hq, first, second)
            else:
                _sparse_backward(plan, k, x, w, b, g, acc, ggrad, sqb, hq, recv,
                                 first, second)


@njit(**_FAST)
def _gather_all(plan, x, s, wk):
    """What a backward pass needs from the forward pass: the conv patches and th."""
    ops = plan.ops
    for k in range(ops.shape[0]):
        if ops[k, KIND] == OP_CONV:
            _conv_gather(k, x, wk)
    stages = plan.stages
    for st in range(stages.shape[0]):
        nlf = plan.nlfs[stages[st, ST_NLF]]
        kind = int(nlf[0])
        if kind == NLF_TANH or kind == NLF_BIN:
            lo = stages[st, ST_LO]
            hi = stages[st, ST_HI]
            _tanh_stage(nlf[2], s[lo:hi], wk.th[lo:hi])


@njit(**_SAFE)
def forward(plan, x, s, w):
    """Forward pass, stages in order (x of input and constant units already set):
        s[j] = sum_c w[k_c] x[i_c]  over the connections into j;   x[j] = f(s[j])"""
    wk = _workspace(plan, x)
    _forward(plan, x, s, w, wk, x, x.shape[0] < 0)


@njit(**_SAFE)
def forward_keep(plan, x, s, w, keep):
    """forward with dropout: x[j] = keep[j] f(s[j]) (keep: 1, or 0 / (1-p)-scaled)."""
    wk = _workspace(plan, x)
    _forward(plan, x, s, w, wk, keep, x.shape[0] >= 0)


@njit(**_SAFE)
def backward(plan, x, s, w, b, g, acc):
    """First-order backward pass, stages in reverse (b of output units set by the cost):
        g[j] = b[j] f'(s[j]);   b[i] = sum_c w[k_c] g[j_c]  (hidden units)
        acc[k_c] += eps_c x[i_c] g[j_c]"""
    backward_keep(plan, x, s, w, b, g, acc, x, x.shape[0] < 0)


@njit(**_SAFE)
def backward_keep(plan, x, s, w, b, g, acc, keep, dropping):
    """backward, with g[j] multiplied by keep[j] when `dropping`."""
    wk = _workspace(plan, x)
    _gather_all(plan, x, s, wk)
    yes = x.shape[0] >= 0           # run-time flags: one compiled _backprop for all
    _backprop(plan, x, s, w, b, g, acc, g, g, acc, yes, not yes, not yes, wk, keep,
              dropping and yes)


@njit(**_SAFE)
def backward2(plan, x, s, w, b, ggrad, sqb, hq, lm):
    """Second-order backward pass ("backward-2-prop"), stages in reverse (sqb of
    the output units set by the cost: 1 for LMS):
        sqb[i] = sum_c w[k_c]^2 ggrad[j_c]  (hidden units)
        ggrad[j] = sqb[j] f'(s[j])^2 - b[j] f''(s[j])    (lm: without the f'' term)
        hq[k_c] += ggrad[j_c] x[i_c]^2"""
    wk = _workspace(plan, x)
    _gather_all(plan, x, s, wk)
    yes = x.shape[0] >= 0
    _backprop(plan, x, s, w, b, ggrad, hq, ggrad, sqb, hq, not yes, yes, lm != 0, wk, x,
              not yes)


@njit(**_FAST)
def update(w, delta, acc, hess, hq, mode, alpha, decay, mu, gamma):
    """Weight update after one pattern; clears acc and hq. Returns True when every
    updated weight is finite.
        Newton / LM (mode 1, 2):  hess = (1 - gamma) hess + gamma hq
        step = acc  (SGD, mode 0)   or   acc / (mu + |hess|)
        delta = alpha delta + (1 - alpha) step      (delta = step when alpha = 0)
        w = (1 - decay) w + delta"""
    ft = w.dtype.type
    al = ft(alpha)
    oma = ft(1.0 - alpha)
    omd = ft(1.0 - decay)
    m = ft(mu)
    ga = ft(gamma)
    omg = ft(1.0 - gamma)
    zero = ft(0.0)
    second = mode != MODE_SGD
    momentum = alpha != 0.0
    decays = decay != 0.0
    chk = zero
    for k in range(w.shape[0]):
        st = acc[k]
        acc[k] = zero
        if second:
            h = omg * hess[k] + ga * hq[k]
            hess[k] = h
            hq[k] = zero
            st = st / (m + abs(h))
        if momentum:
            st = al * delta[k] + oma * st
        delta[k] = st
        v = omd * w[k] + st if decays else w[k] + st
        w[k] = v
        chk += v * zero
    return chk == zero


@njit(**_FAST)
def update_adamw(w, m, v, acc, opt):
    """AdamW step after one pattern (decoupled weight decay, as PyTorch's AdamW);
    the gradient is -acc (acc = sum_c x g with unit epsilons); clears acc;
    opt[OPT_T] counts the steps:
        m = b1 m + (1 - b1) grad;   v = b2 v + (1 - b2) grad^2
        w = w (1 - lr wd) - lr (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps)
    Returns True when every weight is finite."""
    ft = w.dtype.type
    opt[OPT_T] += 1.0
    t = opt[OPT_T]
    lr = opt[OPT_LR]
    b1 = opt[OPT_B1]
    b2 = opt[OPT_B2]
    c1 = ft(lr / (1.0 - b1 ** t))
    c2 = ft(1.0 / np.sqrt(1.0 - b2 ** t))
    shrink = ft(1.0 - lr * opt[OPT_WD])
    fb1, fb2 = ft(b1), ft(b2)
    ob1, ob2 = ft(1.0 - b1), ft(1.0 - b2)
    eps = ft(opt[OPT_EPS])
    zero = ft(0.0)
    chk = zero
    for k in range(w.shape[0]):
        gr = -acc[k]
        acc[k] = zero
        mk = fb1 * m[k] + ob1 * gr
        vk = fb2 * v[k] + ob2 * gr * gr
        m[k] = mk
        v[k] = vk
        val = w[k] * shrink - c1 * mk / (np.sqrt(vk) * c2 + eps)
        w[k] = val
        chk += val * zero
    return chk == zero


@njit(**_SAFE)
def present_pattern(plan, x, row):
    """x[input_units[i]] = row[i]"""
    inp = plan.input_units
    for i in range(inp.shape[0]):
        x[inp[i]] = row[i]


@njit(**_SAFE)
def present_shifted(plan, x, row, dy, dx, shape, wrap, fill):
    """x[input_units] = the pattern shifted by dy rows and dx columns, plane by
    plane (shape = planes, rows, cols): pixel (r, c) takes the value of
    (r - dy, c - dx), wrapped around or `fill` when outside."""
    inp = plan.input_units
    rows = shape[1]
    cols = shape[2]
    size = rows * cols
    for p in range(shape[0]):
        base = p * size
        for r in range(rows):
            sr = r - dy
            if wrap:
                sr %= rows
            for c in range(cols):
                sc = c - dx
                if wrap:
                    sc %= cols
                if 0 <= sr < rows and 0 <= sc < cols:
                    x[inp[base + r * cols + c]] = row[base + sr * cols + sc]
                else:
                    x[inp[base + r * cols + c]] = fill


@njit(**_SAFE)
def lms_cost(plan, x, b, sqb, row):
    """b[o] = d_o - x_o, sqb[o] = 1 for the output units (row = desired values);
    returns the local error E / n_out, E = 1/2 sum_o (d_o - x_o)^2."""
    out = plan.output_units
    e = 0.0
    for i in range(out.shape[0]):
        d = row[i] - x[out[i]]
        b[out[i]] = d
        sqb[out[i]] = 1.0
        e += 0.5 * float(d) * float(d)
    return e / out.shape[0] if out.shape[0] > 0 else 0.0


@njit(**_SAFE)
def xent_cost(plan, x, s, b, sqb, row):
    """Softmax cross-entropy on the output sums: p = softmax(s_o), t_o = the
    desired values > 0 normalised to sum 1 (the others count as 0), so that
    a +1/-1 row is a class and a row of graded values a target distribution;
        b[o] = t_o - p_o (so that a linear output unit gets g = -dE/ds),
        sqb[o] = p_o (1 - p_o) (the Gauss-Newton curvature);
    returns E / n_out, E = -sum_o t_o log p_o."""
    out = plan.output_units
    n = out.shape[0]
    if n == 0:
        return 0.0
    top = float(s[out[0]])
    for i in range(n):
        top = max(top, float(s[out[i]]))
    z = 0.0
    tsum = 0.0
    for i in range(n):
        z += np.exp(float(s[out[i]]) - top)
        if row[i] > 0:
            tsum += float(row[i])
    logz = np.log(z) + top
    e = 0.0
    for i in range(n):
        o = out[i]
        p = np.exp(float(s[o]) - logz)
        t = (float(row[i]) / tsum) if row[i] > 0 else 0.0
        b[o] = t - p
        sqb[o] = p * (1.0 - p)
        if t > 0:
            e -= t * (float(s[o]) - logz)
    return e / n


@njit(**_SAFE)
def cost(plan, kind, x, s, b, sqb, row):
    """The cost of kind COST_LMS or COST_XENT (see lms_cost and xent_cost)."""
    if kind == COST_XENT:
        return xent_cost(plan, x, s, b, sqb, row)
    return lms_cost(plan, x, b, sqb, row)


@njit(**_SAFE)
def train_patterns(plan, bufs, patterns, desired, order, mode, alpha, decay, mu,
                   gamma, extras):
    """On-line training over the pattern numbers in `order`. For each p (the
    i-th of `order`): x[inputs] = patterns[p] (shifted by extras.shifts[i] when
    there are shifts); forward (dropout: the units of extras.drop_units times
    extras.keep[i]); the cost (extras.cost) against desired[p]; backward;
    backward2 (mode 1 Newton, 2 LM); update (mode 3: AdamW with extras.opt).
    Returns (sum of local errors, number of patterns done, position in `order`
    of the first pattern whose local error or updated weights are not finite,
    or -1); stops there."""
    x = bufs.x
    wk = _workspace(plan, x)
    second = mode == MODE_NEWTON or mode == MODE_LM
    lm = mode == MODE_LM
    yes = x.shape[0] >= 0
    dropping = extras.drop_units.shape[0] > 0
    shifting = extras.shifts.shape[0] > 0
    keep = np.ones_like(x)
    tot = 0.0
    for i in range(order.shape[0]):
        p = order[i]
        if shifting:
            present_shifted(plan, x, patterns[p], extras.shifts[i, 0], extras.shifts[i, 1],
                            extras.shape, extras.wrap != 0, extras.fill)
        else:
            present_pattern(plan, x, patterns[p])
        if dropping:
            for j in range(extras.drop_units.shape[0]):
                keep[extras.drop_units[j]] = extras.keep[i, j]
        _forward(plan, x, bufs.s, bufs.w, wk, keep, dropping)
        e = cost(plan, extras.cost, x, bufs.s, bufs.b, bufs.sqb, desired[p])
        if not np.isfinite(e):
            return tot, i, i
        _backprop(plan, x, bufs.s, bufs.w, bufs.b, bufs.g, bufs.acc, bufs.ggrad,
                  bufs.sqb, bufs.hq, yes, second, lm, wk, keep, dropping)
        if mode == MODE_ADAMW:
            ok = update_adamw(bufs.w, bufs.delta, bufs.hess, bufs.acc, extras.opt)
        else:
            ok = update(bufs.w, bufs.delta, bufs.acc, bufs.hess, bufs.hq, mode, alpha,
                        decay, mu, gamma)
        if not ok:
            return tot, i, i
        tot += e
    return tot, order.shape[0], -1


@njit(**_SAFE)
def evaluate(plan, x, s, w, patterns, desired, lo, hi, out_err, out_class, out_sign,
             kind):
    """Forward only, for the patterns lo <= p < hi:
        out_err[p] = the local error of the cost `kind` (lms_cost, xent_cost)
        out_class[p] = argmax_o x_o                          (first maximum)
        out_sign[p] = 1 if (x_o > 0) == (d_o > 0) for every output o, else 0
    Returns the sum of the local errors."""
    wk = _workspace(plan, x)
    out = plan.output_units
    nout = out.shape[0]
    b = np.zeros_like(x)
    sqb = np.zeros_like(x)
    tot = 0.0
    for p in range(lo, hi):
        present_pattern(plan, x, patterns[p])
        _forward(plan, x, s, w, wk, x, x.shape[0] < 0)
        e = cost(plan, kind, x, s, b, sqb, desired[p])
        best = 0
        ok = 1
        for i in range(nout):
            xo = x[out[i]]
            if xo > x[out[best]]:
                best = i
            if (xo > 0) != (desired[p, i] > 0):
                ok = 0
        out_err[p] = e
        out_class[p] = best
        out_sign[p] = ok
        tot += e
    return tot
