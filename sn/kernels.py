"""Numba kernels for SN networks compiled into a flat ``Plan`` (see PLAN_SPEC).

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

Choices made where PLAN_SPEC is silent (they do not change its semantics):

* Output units get their backsum from the cost only: ops never add into b (or sqb) of
  an output unit, as in SN2.8 where ``init-grad-lms`` sets the output backsums and
  ``update-gradient`` runs over the hidden layers only. Units in no stage (inputs,
  bias, background) receive nothing either.
* The source units of an op must belong to earlier stages (or to no stage); the
  compiler orders stages topologically.
* ``evaluate`` takes one more output array than PLAN_SPEC lists, ``out_sign``:
  1 when every output has the sign of its desired value ((x > 0) == (d > 0)), for
  SN's quadrant classifier. Patterns are ``lo <= p < hi`` and the out arrays are
  indexed by the pattern number p.
* ``update`` returns True when all updated weights are finite. ``train_patterns``
  returns ``(error_sum, n_done, bad)``: ``bad`` is the position in ``order`` of the
  first pattern whose local error or updated weights were not finite (-1 if none);
  ``n_done == bad`` then, and ``error_sum`` covers the patterns before it.
* Extra public helpers: ``present_pattern`` and ``lms_cost`` (the two steps of
  an iteration between the kernels), ``workspace_size``.

tanh is computed by ``_tanh``, a vectorisable expm1-based formula (range reduction by
ln 2, Taylor polynomial, power of two built by multiplications) accurate to ~2 ulp in
float64; numba's math.tanh is a scalar library call that would dominate the run time.
"""

from collections import namedtuple

import numpy as np
from numba import njit

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

MODE_SGD, MODE_NEWTON, MODE_LM = 0, 1, 2

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

Buffers = namedtuple("Buffers", [
    "x", "s", "b", "g", "ggrad", "sqb",      # per unit
    "w", "delta", "acc", "hess", "hq",       # per weight
])


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


@njit(**_SAFE)
def _nlf_forward(nlf, s, x, lo, hi):
    """x[j] = f(s[j]) for lo <= j < hi; nlf = [kind, A, B, C, D].

    TANH  A tanh(B s) + C s + D      LIN   A s + D
    PIECE A clip(B s, -1, 1) + C s + D
    BIN   A sign(B s) + C s + D  (sign(0) = +1)      RELU  max(0, s)
    """
    kind = int(nlf[0])
    A = nlf[1]
    B = nlf[2]
    C = nlf[3]
    D = nlf[4]
    if kind == NLF_TANH:
        for j in range(lo, hi):
            v = s[j]
            x[j] = A * _tanh(B * v) + C * v + D
    elif kind == NLF_LIN:
        for j in range(lo, hi):
            x[j] = A * s[j] + D
    elif kind == NLF_PIECE:
        for j in range(lo, hi):
            v = s[j]
            c = B * v
            if c > 1.0:
                c = 1.0
            elif c < -1.0:
                c = -1.0
            x[j] = A * c + C * v + D
    elif kind == NLF_BIN:
        for j in range(lo, hi):
            v = s[j]
            sg = 1.0 if B * v >= 0.0 else -1.0
            if v != v:
                sg = v
            x[j] = A * sg + C * v + D
    else:  # NLF_RELU
        for j in range(lo, hi):
            v = s[j]
            x[j] = 0.0 if v <= 0.0 else v


@njit(**_SAFE)
def _nlf_backward(nlf, s, b, g, lo, hi):
    """g[j] = b[j] f'(s[j]).

    TANH, BIN  f' = A B (1 - tanh(B s)^2) + C     (BIN: SN's pseudo-gradient)
    LIN f' = A     PIECE f' = A B [|B s| < 1] + C     RELU f' = [s > 0]
    """
    kind = int(nlf[0])
    A = nlf[1]
    B = nlf[2]
    C = nlf[3]
    if kind == NLF_TANH or kind == NLF_BIN:
        AB = A * B
        for j in range(lo, hi):
            t = _tanh(B * s[j])
            g[j] = b[j] * (AB * (1.0 - t * t) + C)
    elif kind == NLF_LIN:
        for j in range(lo, hi):
            g[j] = b[j] * A
    elif kind == NLF_PIECE:
        AB = A * B
        for j in range(lo, hi):
            c = B * s[j]
            d = AB if (c < 1.0 and c > -1.0) else 0.0
            g[j] = b[j] * (d + C)
    else:
        for j in range(lo, hi):
            g[j] = b[j] * (1.0 if s[j] > 0.0 else 0.0)


@njit(**_SAFE)
def _nlf_backward2(nlf, s, b, sqb, ggrad, lo, hi, lm):
    """ggrad[j] = sqb[j] f'(s[j])^2 - b[j] f''(s[j])   (LM: without the f'' term).

    TANH, BIN  f'' = -2 A B^2 t (1 - t^2),  t = tanh(B s);  other kinds f'' = 0.
    """
    kind = int(nlf[0])
    A = nlf[1]
    B = nlf[2]
    C = nlf[3]
    if kind == NLF_TANH or kind == NLF_BIN:
        AB = A * B
        ABB2 = -2.0 * A * B * B
        for j in range(lo, hi):
            t = _tanh(B * s[j])
            u = 1.0 - t * t
            d = AB * u + C
            v = sqb[j] * (d * d)
            if not lm:
                v -= b[j] * (ABB2 * t * u)
            ggrad[j] = v
    elif kind == NLF_LIN:
        for j in range(lo, hi):
            ggrad[j] = sqb[j] * (A * A)
    elif kind == NLF_PIECE:
        AB = A * B
        for j in range(lo, hi):
            c = B * s[j]
            d = (AB if (c < 1.0 and c > -1.0) else 0.0) + C
            ggrad[j] = sqb[j] * (d * d)
    else:
        for j in range(lo, hi):
            ggrad[j] = sqb[j] * (1.0 if s[j] > 0.0 else 0.0)


# ---------------------------------------------------------------------------
# Workspace
# ---------------------------------------------------------------------------

@njit(**_SAFE)
def _layout(plan, nunits):
    """Per-op offsets into the patch buffer, patch sizes, scratch sizes, and the
    receive mask (1 for units whose backsum is accumulated: in a stage, not output)."""
    ops = plan.ops
    nops = ops.shape[0]
    poff = np.zeros(nops + 1, np.int64)
    nsp = np.zeros(nops, np.int64)
    big = 0
    vec = 1
    for k in range(nops):
        poff[k + 1] = poff[k]
        if ops[k, DST_N] > vec:
            vec = ops[k, DST_N]
        if ops[k, KIND] == OP_CONV:
            m = 0
            a2 = ops[k, AUX2]
            for q in range(ops[k, NPAIRS]):
                if plan.pairs[a2 + q, 0] + 1 > m:
                    m = plan.pairs[a2 + q, 0] + 1
            nsp[k] = m
            sz = m * ops[k, NTAPS] * ops[k, DST_N]
            poff[k + 1] += sz
            if sz > big:
                big = sz
    recv = np.zeros(nunits, np.uint8)
    for st in range(plan.stages.shape[0]):
        for j in range(plan.stages[st, ST_LO], plan.stages[st, ST_HI]):
            recv[j] = 1
    for o in plan.output_units:
        recv[o] = 0
    return poff, nsp, big, vec, recv


@njit(**_SAFE)
def _new_work(plan, x):
    poff, nsp, big, vec, recv = _layout(plan, x.shape[0])
    patch = np.zeros(poff[-1] + 1, x.dtype)
    pg = np.zeros(big + 1, x.dtype)
    psq = np.zeros(big + 1, x.dtype)
    v1 = np.zeros(vec, x.dtype)
    v2 = np.zeros(vec, x.dtype)
    return poff, nsp, recv, patch, pg, psq, v1, v2


def workspace_size(plan):
    """Number of scratch elements the kernels allocate per call (for information)."""
    poff, nsp, big, vec, recv = _layout(plan, 1 + int(plan.ueps.shape[0]))
    return int(poff[-1] + 2 * big + 2 * vec)


# ---------------------------------------------------------------------------
# OP_SPARSE: generic CSR connections
# ---------------------------------------------------------------------------

@njit(**_FAST)
def _sparse_forward(plan, k, x, s, w):
    """s[j] += sum_c w[csr_w[c]] x[csr_src[c]],  c in the row of j."""
    ops = plan.ops
    lo = ops[k, DST_LO]
    base = ops[k, AUX]
    ptr = plan.csr_ptr
    src = plan.csr_src
    wi = plan.csr_w
    for r in range(ops[k, DST_N]):
        t = s[lo + r]
        for c in range(ptr[base + r], ptr[base + r + 1]):
            t += w[wi[c]] * x[src[c]]
        s[lo + r] = t


@njit(**_FAST)
def _sparse_backward(plan, k, x, w, b, g, acc, ggrad, sqb, hq, recv, first, second):
    """acc[k_c] += eps_c x[i_c] g[j];  b[i_c] += w[k_c] g[j]        (first)
    hq[k_c] += ggrad[j] x[i_c]^2;   sqb[i_c] += w[k_c]^2 ggrad[j]   (second)"""
    ops = plan.ops
    lo = ops[k, DST_LO]
    base = ops[k, AUX]
    ptr = plan.csr_ptr
    src = plan.csr_src
    wi = plan.csr_w
    eps = plan.csr_eps
    for r in range(ops[k, DST_N]):
        j = lo + r
        c0 = ptr[base + r]
        c1 = ptr[base + r + 1]
        if first:
            gj = g[j]
            for c in range(c0, c1):
                i = src[c]
                acc[wi[c]] += eps[c] * x[i] * gj
                if recv[i]:
                    b[i] += w[wi[c]] * gj
        if second:
            hj = ggrad[j]
            for c in range(c0, c1):
                i = src[c]
                xi = x[i]
                hq[wi[c]] += hj * (xi * xi)
                if recv[i]:
                    wk = w[wi[c]]
                    sqb[i] += (wk * wk) * hj


# ---------------------------------------------------------------------------
# OP_FULL: every source unit to every destination unit, weights src-major
# ---------------------------------------------------------------------------

@njit(**_FAST)
def _full_forward(plan, k, x, s, w):
    """s[dlo+d] += sum_i w[wlo + i*n + d] x[slo+i]."""
    ops = plan.ops
    dlo = ops[k, DST_LO]
    n = ops[k, DST_N]
    slo = ops[k, SRC_LO]
    wlo = ops[k, W_LO]
    for i in range(ops[k, SRC_N]):
        xi = x[slo + i]
        row = wlo + i * n
        for d in range(n):
            s[dlo + d] += w[row + d] * xi


@njit(**_FAST)
def _full_backward(plan, k, x, w, b, g, acc, ggrad, sqb, hq, recv, first, second,
                   v1, v2):
    """acc[wlo+i*n+d] += ueps[j] x[i] g[j];   b[i] += sum_d w[..] g[j]      (first)
    hq[wlo+i*n+d] += ggrad[j] x[i]^2;  sqb[i] += sum_d w[..]^2 ggrad[j]      (second)
    with j = dlo + d."""
    ops = plan.ops
    dlo = ops[k, DST_LO]
    n = ops[k, DST_N]
    slo = ops[k, SRC_LO]
    wlo = ops[k, W_LO]
    ueps = plan.ueps
    if first:
        for d in range(n):
            v1[d] = ueps[dlo + d] * g[dlo + d]
    if second:
        for d in range(n):
            v2[d] = ggrad[dlo + d]
    for i in range(ops[k, SRC_N]):
        xi = x[slo + i]
        row = wlo + i * n
        prop = recv[slo + i] != 0
        if first:
            for d in range(n):
                acc[row + d] += xi * v1[d]
            if prop:
                t = b[slo + i]
                for d in range(n):
                    t += w[row + d] * g[dlo + d]
                b[slo + i] = t
        if second:
            x2 = xi * xi
            for d in range(n):
                hq[row + d] += x2 * v2[d]
            if prop:
                t = sqb[slo + i]
                for d in range(n):
                    wk = w[row + d]
                    t += (wk * wk) * v2[d]
                sqb[slo + i] = t


# ---------------------------------------------------------------------------
# OP_BIAS: unit 0 (state 1) to every destination unit
# ---------------------------------------------------------------------------

@njit(**_FAST)
def _bias_forward(plan, k, x, s, w):
    """s[dlo+d] += w[wlo+d] x[0]   (SHARED: w[wlo])."""
    ops = plan.ops
    dlo = ops[k, DST_LO]
    wlo = ops[k, W_LO]
    x0 = x[0]
    if ops[k, SHARED]:
        v = w[wlo] * x0
        for d in range(ops[k, DST_N]):
            s[dlo + d] += v
    else:
        for d in range(ops[k, DST_N]):
            s[dlo + d] += w[wlo + d] * x0


@njit(**_FAST)
def _bias_backward(plan, k, x, acc, ggrad, hq, g, first, second):
    """acc[wlo+d] += ueps[j] x[0] g[j];  hq[wlo+d] += ggrad[j] x[0]^2  (SHARED: summed
    into wlo). Unit 0 is in no stage: nothing is propagated."""
    ops = plan.ops
    dlo = ops[k, DST_LO]
    wlo = ops[k, W_LO]
    n = ops[k, DST_N]
    ueps = plan.ueps
    x0 = x[0]
    x2 = x0 * x0
    if ops[k, SHARED]:
        if first:
            t = acc[wlo]
            for d in range(n):
                t += ueps[dlo + d] * x0 * g[dlo + d]
            acc[wlo] = t
        if second:
            t = hq[wlo]
            for d in range(n):
                t += ggrad[dlo + d] * x2
            hq[wlo] = t
    else:
        if first:
            for d in range(n):
                acc[wlo + d] += ueps[dlo + d] * x0 * g[dlo + d]
        if second:
            for d in range(n):
                hq[wlo + d] += ggrad[dlo + d] * x2


# ---------------------------------------------------------------------------
# OP_CONV: windows over planes, shared kernels or local weights
# ---------------------------------------------------------------------------

@njit(**_FAST)
def _conv_gather(plan, k, x, patch, poff, nsp):
    """patch[p, t, pos] = x[src plane p + taps[t, pos]]; x[BG] for background taps;
    0 for absent taps (so they add nothing anywhere)."""
    ops = plan.ops
    n = ops[k, DST_N]
    nt = ops[k, NTAPS]
    slo = ops[k, SRC_LO]
    sn = ops[k, SRC_N]
    aux = ops[k, AUX]
    xbg = x[ops[k, BG]] if ops[k, BG] >= 0 else x[0] * 0.0
    zero = x[0] * 0.0
    taps = plan.taps
    off = poff[k]
    for p in range(nsp[k]):
        base = slo + p * sn
        for t in range(nt):
            tb = aux + t * n
            pb = off + (p * nt + t) * n
            for pos in range(n):
                o = taps[tb + pos]
                if o >= 0:
                    patch[pb + pos] = x[base + o]
                elif o == TAP_BG:
                    patch[pb + pos] = xbg
                else:
                    patch[pb + pos] = zero


@njit(**_FAST)
def _conv_forward(plan, k, x, s, w, patch, poff, nsp):
    """s[q, pos] += sum_t w[wb + t] patch[p, t, pos] for each pair (p, q, wb)
    (local weights: w[wb + pos*ntaps + t])."""
    _conv_gather(plan, k, x, patch, poff, nsp)
    ops = plan.ops
    n = ops[k, DST_N]
    nt = ops[k, NTAPS]
    dlo = ops[k, DST_LO]
    a2 = ops[k, AUX2]
    off = poff[k]
    shared = ops[k, SHARED] != 0
    pairs = plan.pairs
    for q in range(ops[k, NPAIRS]):
        ip = pairs[a2 + q, 0]
        so = dlo + pairs[a2 + q, 1] * n
        wb = pairs[a2 + q, 2]
        for t in range(nt):
            pb = off + (ip * nt + t) * n
            if shared:
                wt = w[wb + t]
                for pos in range(n):
                    s[so + pos] += wt * patch[pb + pos]
            else:
                for pos in range(n):
                    s[so + pos] += w[wb + pos * nt + t] * patch[pb + pos]


@njit(**_FAST)
def _conv_backward(plan, k, w, b, g, acc, ggrad, sqb, hq, recv, first, second,
                   patch, poff, nsp, pg, psq, v1, v2):
    """For each pair (p, q, wb) and tap t, position pos, with j = unit (q, pos):
        acc[wb+t] += sum_pos ueps[j] g[j] patch[p,t,pos];  pg[p,t,pos] += w[wb+t] g[j]
        hq[wb+t]  += sum_pos ggrad[j] patch[p,t,pos]^2;   psq[p,t,pos] += w^2 ggrad[j]
    then scatter: b[src(p,t,pos)] += pg[p,t,pos], sqb[..] += psq[..] for real taps
    (background and absent taps, and units that do not receive, get nothing)."""
    ops = plan.ops
    n = ops[k, DST_N]
    nt = ops[k, NTAPS]
    dlo = ops[k, DST_LO]
    slo = ops[k, SRC_LO]
    sn = ops[k, SRC_N]
    a2 = ops[k, AUX2]
    aux = ops[k, AUX]
    off = poff[k]
    np_ = nsp[k]
    shared = ops[k, SHARED] != 0
    pairs = plan.pairs
    ueps = plan.ueps
    taps = plan.taps
    # does any source unit receive a backsum?
    prop = False
    for u in range(slo, slo + np_ * sn):
        if recv[u]:
            prop = True
            break
    size = np_ * nt * n
    if prop:
        if first:
            pg[:size] = 0.0
        if second:
            psq[:size] = 0.0
    for q in range(ops[k, NPAIRS]):
        ip = pairs[a2 + q, 0]
        so = dlo + pairs[a2 + q, 1] * n
        wb = pairs[a2 + q, 2]
        if first:
            for pos in range(n):
                v1[pos] = ueps[so + pos] * g[so + pos]
        for t in range(nt):
            pb = off + (ip * nt + t) * n
            gb = (ip * nt + t) * n
            if shared:
                wt = w[wb + t]
                if first:
                    a = acc[wb + t]
                    for pos in range(n):
                        a += v1[pos] * patch[pb + pos]
                    acc[wb + t] = a
                    if prop:
                        for pos in range(n):
                            pg[gb + pos] += wt * g[so + pos]
                if second:
                    h = hq[wb + t]
                    for pos in range(n):
                        pv = patch[pb + pos]
                        h += ggrad[so + pos] * (pv * pv)
                    hq[wb + t] = h
                    if prop:
                        w2 = wt * wt
                        for pos in range(n):
                            psq[gb + pos] += w2 * ggrad[so + pos]
            else:
                if first:
                    for pos in range(n):
                        acc[wb + pos * nt + t] += v1[pos] * patch[pb + pos]
                    if prop:
                        for pos in range(n):
                            pg[gb + pos] += w[wb + pos * nt + t] * g[so + pos]
                if second:
                    for pos in range(n):
                        pv = patch[pb + pos]
                        hq[wb + pos * nt + t] += ggrad[so + pos] * (pv * pv)
                    if prop:
                        for pos in range(n):
                            wk = w[wb + pos * nt + t]
                            psq[gb + pos] += (wk * wk) * ggrad[so + pos]
    if prop:
        for p in range(np_):
            base = slo + p * sn
            for t in range(nt):
                tb = aux + t * n
                gb = (p * nt + t) * n
                for pos in range(n):
                    o = taps[tb + pos]
                    if o >= 0 and recv[base + o]:
                        if first:
                            b[base + o] += pg[gb + pos]
                        if second:
                            sqb[base + o] += psq[gb + pos]


# ---------------------------------------------------------------------------
# Whole-network passes
# ---------------------------------------------------------------------------

@njit(**_FAST)
def _forward(plan, x, s, w, patch, poff, nsp):
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
                _conv_forward(plan, k, x, s, w, patch, poff, nsp)
            elif kind == OP_FULL:
                _full_forward(plan, k, x, s, w)
            elif kind == OP_BIAS:
                _bias_forward(plan, k, x, s, w)
            else:
                _sparse_forward(plan, k, x, s, w)
        _nlf_forward(plan.nlfs[stages[st, ST_NLF]], s, x, lo, hi)


@njit(**_FAST)
def _backprop(plan, x, s, w, b, g, acc, ggrad, sqb, hq, first, second, lm,
              poff, nsp, recv, patch, pg, psq, v1, v2):
    """One reverse pass over the stages: the first-order pass (g, b, acc) when
    `first`, the second-order pass (ggrad, sqb, hq) when `second`."""
    ops = plan.ops
    stages = plan.stages
    for j in range(x.shape[0]):
        if recv[j]:
            if first:
                b[j] = 0.0
            if second:
                sqb[j] = 0.0
    if second:
        for o in plan.output_units:
            sqb[o] = 1.0
    for st in range(stages.shape[0] - 1, -1, -1):
        lo = stages[st, ST_LO]
        hi = stages[st, ST_HI]
        nlf = plan.nlfs[stages[st, ST_NLF]]
        if first:
            _nlf_backward(nlf, s, b, g, lo, hi)
        if second:
            _nlf_backward2(nlf, s, b, sqb, ggrad, lo, hi, lm)
        for k in range(stages[st, ST_OP_LO], stages[st, ST_OP_HI]):
            kind = ops[k, KIND]
            if kind == OP_CONV:
                _conv_backward(plan, k, w, b, g, acc, ggrad, sqb, hq, recv, first,
                               second, patch, poff, nsp, pg, psq, v1, v2)
            elif kind == OP_FULL:
                _full_backward(plan, k, x, w, b, g, acc, ggrad, sqb, hq, recv,
                               first, second, v1, v2)
            elif kind == OP_BIAS:
                _bias_backward(plan, k, x, acc, ggrad, hq, g, first, second)
            else:
                _sparse_backward(plan, k, x, w, b, g, acc, ggrad, sqb, hq, recv,
                                 first, second)


@njit(**_FAST)
def _regather(plan, x, patch, poff, nsp):
    ops = plan.ops
    for k in range(ops.shape[0]):
        if ops[k, KIND] == OP_CONV:
            _conv_gather(plan, k, x, patch, poff, nsp)


@njit(**_SAFE)
def forward(plan, x, s, w):
    """Forward pass over all stages in order (x of input/constant units already set):
        s[j] = sum_c w[k_c] x[i_c]  over the connections into j;   x[j] = f(s[j])."""
    poff, nsp, recv, patch, pg, psq, v1, v2 = _new_work(plan, x)
    _forward(plan, x, s, w, patch, poff, nsp)


@njit(**_SAFE)
def backward(plan, x, s, w, b, g, acc):
    """First-order backward pass, stages in reverse (b of output units set by the cost):
        g[j] = b[j] f'(s[j]);   b[i] = sum_c w[k_c] g[j_c]  (hidden units)
        acc[k_c] += eps_c x[i_c] g[j_c]."""
    poff, nsp, recv, patch, pg, psq, v1, v2 = _new_work(plan, x)
    _regather(plan, x, patch, poff, nsp)
    _backprop(plan, x, s, w, b, g, acc, g, g, acc, True, False, False,
              poff, nsp, recv, patch, pg, psq, v1, v2)


@njit(**_SAFE)
def backward2(plan, x, s, w, b, ggrad, sqb, hq, lm):
    """Second-order backward pass ("backward-2-prop"), stages in reverse:
        sqb[o] = 1 (outputs);  sqb[i] = sum_c w[k_c]^2 ggrad[j_c]  (hidden units)
        ggrad[j] = sqb[j] f'(s[j])^2 - b[j] f''(s[j])   (lm: without the f'' term)
        hq[k_c] += ggrad[j_c] x[i_c]^2."""
    poff, nsp, recv, patch, pg, psq, v1, v2 = _new_work(plan, x)
    _regather(plan, x, patch, poff, nsp)
    _backprop(plan, x, s, w, b, ggrad, hq, ggrad, sqb, hq, False, True, lm,
              poff, nsp, recv, patch, pg, psq, v1, v2)


@njit(**_FAST)
def update(w, delta, acc, hess, hq, mode, alpha, decay, mu, gamma):
    """Weight update after one pattern; clears acc and hq. Returns True when every
    updated weight is finite.
        Newton/LM (mode 1, 2): hess = (1 - gamma) hess + gamma hq
        step = acc (SGD, mode 0)  or  acc / (mu + |hess|)
        delta = alpha delta + (1 - alpha) step       (delta = step when alpha = 0)
        w = (1 - decay) w + delta"""
    chk = w[0] * 0.0 if w.shape[0] > 0 else 0.0
    second = mode != MODE_SGD
    for k in range(w.shape[0]):
        st = acc[k]
        if second:
            h = (1.0 - gamma) * hess[k] + gamma * hq[k]
            hess[k] = h
            st = st / (mu + abs(h))
            hq[k] = 0.0
        if alpha != 0.0:
            st = alpha * delta[k] + (1.0 - alpha) * st
        delta[k] = st
        if decay != 0.0:
            v = (1.0 - decay) * w[k] + st
        else:
            v = w[k] + st
        w[k] = v
        acc[k] = 0.0
        chk += v * 0.0
    return chk == 0.0


@njit(**_SAFE)
def present_pattern(plan, x, row):
    """x[input_units[i]] = row[i]."""
    inp = plan.input_units
    for i in range(inp.shape[0]):
        x[inp[i]] = row[i]


@njit(**_SAFE)
def lms_cost(plan, x, b, row):
    """b[o] = d_o - x_o for the output units; returns the local error
    E / n_out with E = 1/2 sum_o (d_o - x_o)^2."""
    out = plan.output_units
    e = 0.0
    for i in range(out.shape[0]):
        d = row[i] - x[out[i]]
        b[out[i]] = d
        e += 0.5 * float(d) * float(d)
    return e / out.shape[0] if out.shape[0] > 0 else 0.0


@njit(**_SAFE)
def train_patterns(plan, bufs, patterns, desired, order, mode, alpha, decay, mu,
                   gamma):
    """On-line training over the pattern numbers in `order`. For each p:
    x[inputs] = patterns[p]; forward; b[o] = desired[p] - x[o]; backward;
    backward2 (mode 1 Newton, 2 LM); update. Returns (sum of local errors,
    number of patterns done, position in `order` of the first pattern whose local
    error or updated weights are not finite, or -1). It stops at that pattern."""
    x = bufs.x
    poff, nsp, recv, patch, pg, psq, v1, v2 = _new_work(plan, x)
    second = mode != MODE_SGD
    lm = mode == MODE_LM
    tot = 0.0
    for i in range(order.shape[0]):
        p = order[i]
        present_pattern(plan, x, patterns[p])
        _forward(plan, x, bufs.s, bufs.w, patch, poff, nsp)
        e = lms_cost(plan, x, bufs.b, desired[p])
        if not np.isfinite(e):
            return tot, i, i
        _backprop(plan, x, bufs.s, bufs.w, bufs.b, bufs.g, bufs.acc, bufs.ggrad,
                  bufs.sqb, bufs.hq, True, second, lm,
                  poff, nsp, recv, patch, pg, psq, v1, v2)
        ok = update(bufs.w, bufs.delta, bufs.acc, bufs.hess, bufs.hq, mode, alpha,
                    decay, mu, gamma)
        if not ok:
            return tot, i, i
        tot += e
    return tot, order.shape[0], -1


@njit(**_SAFE)
def evaluate(plan, x, s, w, patterns, desired, lo, hi, out_err, out_class, out_sign):
    """Forward only for patterns lo <= p < hi: out_err[p] = local error
    (1/2 sum_o (d_o - x_o)^2 / n_out), out_class[p] = argmax_o x_o (first maximum),
    out_sign[p] = 1 if (x_o > 0) == (d_o > 0) for every output o, else 0.
    Returns the sum of the local errors."""
    poff, nsp, recv, patch, pg, psq, v1, v2 = _new_work(plan, x)
    out = plan.output_units
    nout = out.shape[0]
    tot = 0.0
    for p in range(lo, hi):
        present_pattern(plan, x, patterns[p])
        _forward(plan, x, s, w, patch, poff, nsp)
        e = 0.0
        best = 0
        ok = 1
        for i in range(nout):
            xo = x[out[i]]
            d = float(desired[p, i]) - float(xo)
            e += 0.5 * d * d
            if xo > x[out[best]]:
                best = i
            if (xo > 0) != (desired[p, i] > 0):
                ok = 0
        e = e / nout if nout > 0 else 0.0
        out_err[p] = e
        out_class[p] = best
        out_sign[p] = ok
        tot += e
    return tot
