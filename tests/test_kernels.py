"""Tests of sn/kernels.py against a slow, obviously-correct reference.

Small plans are built by hand with `Builder`, which also lists the connections its
block ops stand for (src, dst, weight, eps): that list is the meaning of the plan
layout, written here independently of the kernels. The reference computes everything
from the connection list, one connection at a time, as sn/kernels.py states it.
"""

import math

import numpy as np
import pytest

from sn import kernels as K

F64, F32 = np.float64, np.float32
TANH = (K.NLF_TANH, 1.7159, 2.0 / 3.0, 0.0, 0.0)
TANH_C = (K.NLF_TANH, 1.3, 0.8, 0.05, 0.1)       # with the linear and offset terms


# ---------------------------------------------------------------------------
# Plan builder
# ---------------------------------------------------------------------------

def window_taps(rows, cols, orows, ocols, size, step, pad):
    """taps[t, pos] for size x size windows at (step*oy - pad, step*ox - pad); -1 out
    of the image (background)."""
    taps = np.empty((size * size, orows * ocols), np.int32)
    for oy in range(orows):
        for ox in range(ocols):
            for dy in range(size):
                for dx in range(size):
                    r, c = oy * step - pad + dy, ox * step - pad + dx
                    inside = 0 <= r < rows and 0 <= c < cols
                    taps[dy * size + dx, oy * ocols + ox] = r * cols + c if inside else -1
    return taps


class Builder:
    """Stages and ops of a plan, and the connections they mean."""

    def __init__(self, nunits, inputs, outputs, nlfs):
        self.nunits = nunits
        self.inputs = list(inputs)
        self.outputs = list(outputs)
        self.nlfs = [list(r) for r in nlfs]
        self.stages = []                  # [lo, hi, nlf_row, [ops]]
        self.nweights = 0

    def stage(self, lo, hi, nlf=0):
        self.stages.append([lo, hi, nlf, []])
        return self

    def _op(self, **kw):
        self.stages[-1][3].append(kw)
        return self

    def full(self, src_lo, src_n, dst_lo, dst_n, w_lo):
        return self._op(kind=K.OP_FULL, dst_lo=dst_lo, dst_n=dst_n, src_lo=src_lo,
                        src_n=src_n, w_lo=w_lo)

    def bias(self, dst_lo, dst_n, w_lo, shared=False):
        return self._op(kind=K.OP_BIAS, dst_lo=dst_lo, dst_n=dst_n, w_lo=w_lo,
                        shared=int(shared))

    def conv(self, src_lo, plane_n, dst_lo, pos_n, taps, pairs, bg=-1, shared=True):
        return self._op(kind=K.OP_CONV, dst_lo=dst_lo, dst_n=pos_n, src_lo=src_lo,
                        src_n=plane_n, taps=np.asarray(taps, np.int32),
                        pairs=[tuple(p) for p in pairs], bg=bg, shared=int(shared))

    def sparse(self, conns):
        """conns: (src, dst, weight, eps); dst within the current stage."""
        lo, hi = self.stages[-1][0], self.stages[-1][1]
        dsts = sorted({c[1] for c in conns})
        dlo, dhi = dsts[0], dsts[-1] + 1
        assert lo <= dlo and dhi <= hi
        return self._op(kind=K.OP_SPARSE, dst_lo=dlo, dst_n=dhi - dlo,
                        conns=[tuple(c) for c in conns])

    # -- meaning -------------------------------------------------------------
    def connections(self, ueps):
        """(src, dst, weight, eps) of every connection, op by op."""
        out = []
        for lo, hi, nlf, ops in self.stages:
            for op in ops:
                kind = op["kind"]
                if kind == K.OP_SPARSE:
                    out += op["conns"]
                elif kind == K.OP_FULL:
                    for s in range(op["src_n"]):
                        for d in range(op["dst_n"]):
                            j = op["dst_lo"] + d
                            out.append((op["src_lo"] + s, j,
                                        op["w_lo"] + s * op["dst_n"] + d, ueps[j]))
                elif kind == K.OP_BIAS:
                    for d in range(op["dst_n"]):
                        j = op["dst_lo"] + d
                        out.append((0, j, op["w_lo"] + (0 if op["shared"] else d), ueps[j]))
                else:
                    taps = op["taps"]
                    nt, n = taps.shape
                    for p, q, wb in op["pairs"]:
                        for pos in range(n):
                            j = op["dst_lo"] + q * n + pos
                            for t in range(nt):
                                o = taps[t, pos]
                                if o == K.TAP_NONE:
                                    continue
                                src = op["src_lo"] + p * op["src_n"] + o if o >= 0 else op["bg"]
                                k = wb + t if op["shared"] else wb + pos * nt + t
                                out.append((src, j, k, ueps[j]))
        return out

    def as_sparse(self, ueps):
        """The same network with every stage a single OP_SPARSE op."""
        conns = self.connections(ueps)
        sp = Builder(self.nunits, self.inputs, self.outputs, self.nlfs)
        sp.nweights = self.nweights
        for lo, hi, nlf, ops in self.stages:
            sp.stage(lo, hi, nlf)
            mine = [c for c in conns if lo <= c[1] < hi]
            if mine:
                sp.sparse(mine)
        return sp

    # -- arrays ----------------------------------------------------------------
    def plan(self, ueps, dtype=F64):
        ops, stages, taps, pairs = [], [], [], []
        ptr, src, wi, eps = [0], [], [], []
        for lo, hi, nlf, sops in self.stages:
            op_lo = len(ops)
            for op in sops:
                row = [0] * K.OP_COLUMNS
                row[K.KIND] = op["kind"]
                row[K.DST_LO] = op["dst_lo"]
                row[K.DST_N] = op["dst_n"]
                row[K.SRC_LO] = op.get("src_lo", 0)
                row[K.SRC_N] = op.get("src_n", 0)
                row[K.W_LO] = op.get("w_lo", 0)
                row[K.BG] = op.get("bg", -1)
                row[K.SHARED] = op.get("shared", 0)
                if op["kind"] == K.OP_SPARSE:
                    row[K.AUX] = len(ptr) - 1
                    for j in range(op["dst_lo"], op["dst_lo"] + op["dst_n"]):
                        for (i, jj, k, e) in op["conns"]:
                            if jj == j:
                                src.append(i)
                                wi.append(k)
                                eps.append(e)
                        ptr.append(len(src))
                elif op["kind"] == K.OP_CONV:
                    row[K.AUX] = len(taps)
                    row[K.AUX2] = len(pairs)
                    row[K.NTAPS] = op["taps"].shape[0]
                    row[K.NPAIRS] = len(op["pairs"])
                    taps += list(op["taps"].ravel())
                    pairs += op["pairs"]
                ops.append(row)
            stages.append([lo, hi, nlf, op_lo, len(ops)])
        return K.Plan(
            stages=np.array(stages, np.int64).reshape(-1, 5),
            nlfs=np.array(self.nlfs, np.float64),
            ops=np.array(ops, np.int64).reshape(-1, K.OP_COLUMNS),
            csr_ptr=np.array(ptr, np.int64),
            csr_src=np.array(src, np.int32),
            csr_w=np.array(wi, np.int32),
            csr_eps=np.array(eps, dtype),
            taps=np.array(taps, np.int32),
            pairs=np.array(pairs, np.int64).reshape(-1, 3),
            ueps=np.asarray(ueps, dtype),
            input_units=np.array(self.inputs, np.int64),
            output_units=np.array(self.outputs, np.int64),
        )


# ---------------------------------------------------------------------------
# Reference: one connection at a time, straight from the formulas of sn/kernels.py
# ---------------------------------------------------------------------------

def f_ref(nlf, s):
    kind, A, B, C, D = nlf
    if kind == K.NLF_TANH:
        return A * math.tanh(B * s) + C * s + D
    if kind == K.NLF_LIN:
        return A * s + D
    if kind == K.NLF_PIECE:
        return A * min(1.0, max(-1.0, B * s)) + C * s + D
    if kind == K.NLF_BIN:
        return A * (1.0 if B * s >= 0 else -1.0) + C * s + D
    return max(0.0, s)


def df_ref(nlf, s):
    kind, A, B, C, D = nlf
    if kind in (K.NLF_TANH, K.NLF_BIN):
        return A * B * (1 - math.tanh(B * s) ** 2) + C
    if kind == K.NLF_LIN:
        return A
    if kind == K.NLF_PIECE:
        return (A * B if abs(B * s) < 1 else 0.0) + C
    return 1.0 if s > 0 else 0.0


def ddf_ref(nlf, s):
    kind, A, B, C, D = nlf
    if kind in (K.NLF_TANH, K.NLF_BIN):
        t = math.tanh(B * s)
        return -2 * A * B * B * t * (1 - t * t)
    return 0.0


class Ref:
    def __init__(self, builder, conns):
        self.bd = builder
        self.conns = conns
        self.into = {}
        for c in conns:
            self.into.setdefault(c[1], []).append(c)
        staged = {j for lo, hi, _, _ in builder.stages for j in range(lo, hi)}
        self.recv = staged - set(builder.outputs)

    def nlf(self, j):
        for lo, hi, r, _ in self.bd.stages:
            if lo <= j < hi:
                return self.bd.nlfs[r]

    def forward(self, x, w):
        x = np.array(x, F64)
        s = np.zeros_like(x)
        for lo, hi, _, _ in self.bd.stages:
            for j in range(lo, hi):
                s[j] = sum(w[k] * x[i] for i, _, k, _ in self.into.get(j, []))
                x[j] = f_ref(self.nlf(j), s[j])
        return x, s

    def cost(self, x, d):
        b = np.zeros_like(x)
        e = 0.0
        for o, do in zip(self.bd.outputs, d):
            b[o] = do - x[o]
            e += 0.5 * b[o] ** 2
        return b, e / len(self.bd.outputs)

    def backward(self, x, s, w, b, nw):
        b = b.copy()
        g = np.zeros_like(x)
        acc = np.zeros(nw)
        for lo, hi, _, _ in reversed(self.bd.stages):
            for j in range(lo, hi):
                g[j] = b[j] * df_ref(self.nlf(j), s[j])
                for i, _, k, e in self.into.get(j, []):
                    acc[k] += e * x[i] * g[j]
                    if i in self.recv:
                        b[i] += w[k] * g[j]
        return b, g, acc

    def backward2(self, x, s, w, b, nw, lm):
        sqb = np.zeros_like(x)
        sqb[self.bd.outputs] = 1.0
        gg = np.zeros_like(x)
        hq = np.zeros(nw)
        for lo, hi, _, _ in reversed(self.bd.stages):
            for j in range(lo, hi):
                nl = self.nlf(j)
                gg[j] = sqb[j] * df_ref(nl, s[j]) ** 2
                if not lm:
                    gg[j] -= b[j] * ddf_ref(nl, s[j])
                for i, _, k, _ in self.into.get(j, []):
                    hq[k] += gg[j] * x[i] ** 2
                    if i in self.recv:
                        sqb[i] += w[k] ** 2 * gg[j]
        return gg, sqb, hq


def ref_update(w, delta, acc, hess, hq, mode, alpha, decay, mu, gamma):
    w, delta, hess = w.copy(), delta.copy(), hess.copy()
    for k in range(len(w)):
        step = acc[k]
        if mode != K.MODE_SGD:
            hess[k] = (1 - gamma) * hess[k] + gamma * hq[k]
            step = acc[k] / (mu + abs(hess[k]))
        delta[k] = alpha * delta[k] + (1 - alpha) * step
        w[k] = (1 - decay) * w[k] + delta[k]
    return w, delta, hess


# ---------------------------------------------------------------------------
# Networks
# ---------------------------------------------------------------------------

def net_sparse(nlfs=(TANH,)):
    """0 bias, 1..4 inputs, 5..8 hidden, 9..10 outputs; hand-made connections with
    shared weights, one hidden unit feeding nothing."""
    b = Builder(11, range(1, 5), [9, 10], nlfs)
    b.nweights = 12
    b.stage(5, 9).sparse([(1, 5, 0, .1), (2, 5, 1, .2), (0, 5, 2, .3), (2, 6, 0, .1),
                          (3, 6, 1, .4), (4, 6, 3, .5), (0, 6, 3, .2), (1, 7, 4, .1),
                          (4, 7, 4, .3), (0, 8, 5, .2), (3, 8, 6, .6)])
    b.stage(9, 11).sparse([(5, 9, 7, .1), (6, 9, 8, .2), (7, 9, 9, .3), (0, 9, 10, .4),
                           (6, 10, 7, .5), (7, 10, 11, .6), (5, 10, 11, .7)])
    return b


def net_full(nlfs=(TANH,)):
    """0 bias, 1..5 inputs, 6..9 hidden (FULL + BIAS per unit), 10..12 outputs
    (FULL + shared BIAS)."""
    b = Builder(13, range(1, 6), [10, 11, 12], nlfs)
    b.stage(6, 10).full(1, 5, 6, 4, 0).bias(6, 4, 20)
    b.stage(10, 13).full(6, 4, 10, 3, 24).bias(10, 3, 36, shared=True)
    b.nweights = 37
    return b


def knock_out(taps, rng, n):
    """Make n random taps absent (TAP_NONE)."""
    taps = taps.copy()
    flat = taps.reshape(-1)
    flat[rng.choice(flat.size, n, replace=False)] = K.TAP_NONE
    return taps


def net_conv(shared2=True, nlfs=(TANH,)):
    """0 bias, 1 background (-1), 2..51 inputs (2 planes 5x5),
    52..126 H1: 3 planes 5x5, 3x3 windows step 1 pad 1 over both input planes
            (tap-major layout: 25 positions), pairs sharing out planes, absent taps,
    127..142 H2: 4 planes 2x2, 3x3 windows step 2 pad 0 over H1 (pos-major when
            shared: runs of consecutive planes and weights; local weights otherwise),
    143..144 outputs, FULL from H2, shared bias; H1 one bias per unit."""
    rng = np.random.default_rng(1)
    b = Builder(145, range(2, 52), [143, 144], nlfs)
    t1 = knock_out(window_taps(5, 5, 5, 5, 3, 1, 1), rng, 6)
    pairs1 = [(0, 0, 0), (1, 0, 9), (1, 1, 18), (0, 2, 27), (1, 2, 0)]   # last shares
    b.stage(52, 127).conv(2, 25, 52, 25, t1, pairs1, bg=1).bias(52, 75, 36)
    t2 = knock_out(window_taps(5, 5, 2, 2, 3, 2, 0), rng, 3)
    w = 111
    if shared2:
        pairs2 = [(0, 0, w), (1, 0, w + 9), (2, 0, w + 18),        # run of 3
                  (0, 1, w + 27), (1, 1, w + 36),                  # run of 2
                  (2, 1, w + 90),                                  # breaks the run
                  (1, 2, w + 45), (2, 2, w + 54),
                  (0, 3, w + 63), (2, 3, w + 72), (1, 3, w + 81)]
        nw2 = 99
    else:
        pairs2 = [(0, 0, w), (1, 0, w + 36), (2, 1, w + 72), (1, 2, w + 108),
                  (0, 3, w + 144), (2, 3, w + 180)]
        nw2 = 216
    b.stage(127, 143).conv(52, 25, 127, 4, t2, pairs2, bg=1, shared=shared2)
    wo = w + nw2
    b.stage(143, 145).full(127, 16, 143, 2, wo).bias(143, 2, wo + 32, shared=True)
    b.nweights = wo + 33
    return b


NETS = {
    "sparse": net_sparse,
    "full": net_full,
    "conv": lambda nlfs=(TANH,): net_conv(True, nlfs),
    "local": lambda nlfs=(TANH,): net_conv(False, nlfs),
}


def setup(builder, dtype=F64, seed=0, wscale=0.5, eps_scale=0.05):
    rng = np.random.default_rng(seed)
    ueps = rng.uniform(0.5, 1.5, builder.nunits) * eps_scale
    plan = builder.plan(ueps, dtype)
    bufs = K.new_buffers(builder.nunits, builder.nweights, dtype)
    bufs.x[1] = -1.0                       # background unit, where there is one
    bufs.w[:] = rng.uniform(-wscale, wscale, builder.nweights)
    pat = rng.uniform(-1, 1, (6, len(builder.inputs))).astype(dtype)
    des = np.where(rng.uniform(size=(6, len(builder.outputs))) < .5, -1.0, 1.0).astype(dtype)
    return plan, bufs, ueps, pat, des


def tol(dtype):
    return dict(rtol=1e-12, atol=1e-12) if dtype == F64 else dict(rtol=2e-4, atol=2e-5)


# ---------------------------------------------------------------------------
# Tests
# ---------------------------------------------------------------------------

def test_layouts_are_exercised():
    """The conv nets cover both patch layouts (tap-major and pos-major), runs of
    pairs, backsums into hidden units, and none into inputs."""
    for name, want in (("conv", [0, 0, 1, 0, 0]), ("local", [0, 0, 0, 0, 0])):
        bd = NETS[name]()
        plan = bd.plan(np.ones(bd.nunits))
        wk = K._workspace(plan, np.zeros(bd.nunits))
        assert list(wk.posmaj) == want
        assert list(wk.prop) == [0, 0, 1, 1, 0]   # conv1 (inputs), bias, conv2, full, bias
        if name == "conv":
            assert list(wk.runs[:, 2]) == [2, 1, 1, 1, 3, 2, 1, 2, 1, 1, 1]


@pytest.mark.parametrize("dtype", [F64, F32])
@pytest.mark.parametrize("name", list(NETS))
@pytest.mark.parametrize("nlf", [TANH, TANH_C])
def test_passes_match_reference(name, dtype, nlf):
    bd = NETS[name]((nlf,))
    plan, bufs, ueps, pat, des = setup(bd, dtype)
    ref = Ref(bd, bd.connections(ueps))
    w0 = bufs.w.astype(F64)
    K.present_pattern(plan, bufs.x, pat[0])
    K.forward(plan, bufs.x, bufs.s, bufs.w)
    x0 = np.zeros(bd.nunits)
    x0[0], x0[1] = 1.0, -1.0
    x0[bd.inputs] = pat[0]
    xr, sr = ref.forward(x0, w0)
    np.testing.assert_allclose(bufs.x, xr, **tol(dtype))
    np.testing.assert_allclose(bufs.s, sr, **tol(dtype))

    e = K.lms_cost(plan, bufs.x, bufs.b, bufs.sqb, des[0])
    br, er = ref.cost(xr, des[0].astype(F64))
    assert e == pytest.approx(er, rel=1e-12 if dtype == F64 else 1e-4)

    K.backward(plan, bufs.x, bufs.s, bufs.w, bufs.b, bufs.g, bufs.acc)
    br, gr, accr = ref.backward(xr, sr, w0, br, bd.nweights)
    np.testing.assert_allclose(bufs.b, br, **tol(dtype))
    np.testing.assert_allclose(bufs.g, gr, **tol(dtype))
    np.testing.assert_allclose(bufs.acc, accr, **tol(dtype))
    assert np.abs(accr).max() > 0 and np.abs(br[list(ref.recv)]).max() > 0

    for lm in (True, False):
        bufs.hq[:] = 0.0
        K.backward2(plan, bufs.x, bufs.s, bufs.w, bufs.b, bufs.ggrad, bufs.sqb, bufs.hq, lm)
        ggr, sqbr, hqr = ref.backward2(xr, sr, w0, br, bd.nweights, lm)
        np.testing.assert_allclose(bufs.ggrad, ggr, **tol(dtype))
        np.testing.assert_allclose(bufs.sqb, sqbr, **tol(dtype))
        np.testing.assert_allclose(bufs.hq, hqr, **tol(dtype))

    # update, all modes, with momentum and decay
    rng = np.random.default_rng(3)
    for mode in (K.MODE_SGD, K.MODE_NEWTON, K.MODE_LM):
        for alpha, decay in ((0.0, 0.0), (0.7, 1e-3)):
            w = rng.uniform(-1, 1, bd.nweights)
            delta = rng.uniform(-.1, .1, bd.nweights)
            hess = rng.uniform(-1, 1, bd.nweights)
            acc = accr.copy()
            hq = hqr.copy()
            args = [a.astype(dtype) for a in (w, delta, acc, hess, hq)]
            ok = K.update(*args, mode, alpha, decay, 0.05, 0.1)
            assert ok
            wr, dr, hr = ref_update(w, delta, acc, hess, hq, mode, alpha, decay, 0.05, 0.1)
            np.testing.assert_allclose(args[0], wr, **tol(dtype))
            np.testing.assert_allclose(args[1], dr, **tol(dtype))
            np.testing.assert_allclose(args[3], hr if mode else hess, **tol(dtype))
            assert not args[2].any() and (mode == K.MODE_SGD or not args[4].any())


NLF_KINDS = {
    "tanh": TANH_C,
    "lin": (K.NLF_LIN, 0.7, 0.0, 0.0, 0.1),
    "piece": (K.NLF_PIECE, 1.2, 0.6, 0.05, 0.0),
    "relu": (K.NLF_RELU, 0.0, 0.0, 0.0, 0.0),
}


def energy(plan, bufs, w, pat, des):
    x = bufs.x.copy()
    s = bufs.s.copy()
    K.present_pattern(plan, x, pat)
    K.forward(plan, x, s, w)
    b = np.zeros_like(x)
    return K.lms_cost(plan, x, b, np.zeros_like(b), des) * len(des)


@pytest.mark.parametrize("name", list(NETS))
@pytest.mark.parametrize("nlf", list(NLF_KINDS))
def test_gradient_finite_differences(name, nlf):
    """With eps = 1, acc = -dE/dw (SN's sign), E = 1/2 sum (d - x)^2."""
    bd = NETS[name]((NLF_KINDS[nlf], TANH_C))
    if nlf == "relu":                        # tanh outputs: no dead output units
        bd.stages[-1][2] = 1
    plan, bufs, ueps, pat, des = setup(bd, wscale=0.8)
    plan = bd.plan(np.ones(bd.nunits))
    if name == "sparse":
        plan = plan._replace(csr_eps=np.ones_like(plan.csr_eps))
    K.present_pattern(plan, bufs.x, pat[1])
    K.forward(plan, bufs.x, bufs.s, bufs.w)
    K.lms_cost(plan, bufs.x, bufs.b, bufs.sqb, des[1])
    K.backward(plan, bufs.x, bufs.s, bufs.w, bufs.b, bufs.g, bufs.acc)
    h = 1e-6
    fd = np.empty(bd.nweights)
    for k in range(bd.nweights):
        wp = bufs.w.copy()
        wp[k] += h
        wm = bufs.w.copy()
        wm[k] -= h
        fd[k] = (energy(plan, bufs, wp, pat[1], des[1]) -
                 energy(plan, bufs, wm, pat[1], des[1])) / (2 * h)
    assert np.abs(fd).max() > 1e-3
    np.testing.assert_allclose(bufs.acc, -fd, rtol=1e-6, atol=1e-7)


def test_binary_nlf_uses_tanh_pseudo_gradient():
    nlf = (K.NLF_BIN, 1.0, 0.9, 0.0, 0.0)
    bd = net_full((TANH, nlf))
    bd.stages[1][2] = 1                      # outputs binary
    plan, bufs, ueps, pat, des = setup(bd)
    ref = Ref(bd, bd.connections(ueps))
    K.present_pattern(plan, bufs.x, pat[0])
    K.forward(plan, bufs.x, bufs.s, bufs.w)
    assert set(np.abs(bufs.x[10:13])) == {1.0}
    K.lms_cost(plan, bufs.x, bufs.b, bufs.sqb, des[0])
    K.backward(plan, bufs.x, bufs.s, bufs.w, bufs.b, bufs.g, bufs.acc)
    x0 = np.zeros(bd.nunits)
    x0[0] = 1
    x0[bd.inputs] = pat[0]
    xr, sr = ref.forward(x0, bufs.w)
    br, _ = ref.cost(xr, des[0])
    _, gr, accr = ref.backward(xr, sr, bufs.w, br, bd.nweights)
    np.testing.assert_allclose(bufs.g, gr, rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(bufs.acc, accr, rtol=1e-12, atol=1e-13)


def _elementwise(fn, s):
    """fn (a compiled scalar function) applied to each element of s, in compiled code."""
    from numba import njit

    @njit
    def apply(s, out):
        for i in range(s.shape[0]):
            out[i] = fn(s[i])

    out = np.empty_like(s)
    apply(s, out)
    return out


def test_tanh_accuracy():
    s = np.concatenate([np.linspace(-30, 30, 20001), np.geomspace(1e-12, 3, 500),
                        [0.0, -0.0, np.inf, -np.inf]])
    out = _elementwise(K._tanh, s)
    np.testing.assert_allclose(out, np.tanh(s), rtol=4 * 2.2e-16, atol=0)
    assert np.isnan(_elementwise(K._tanh, np.array([np.nan]))[0])


def test_tanh32_accuracy():
    """float32 tanh within 3 float32 ulp of the exact value, and exactly +-1 far out."""
    s = np.concatenate([np.linspace(-12, 12, 200001), np.geomspace(1e-30, 3, 2000),
                        -np.geomspace(1e-30, 3, 200), [0.0, 9.0, 50.0, np.inf, -np.inf]])
    s = s.astype(np.float32)
    out = _elementwise(K._tanh32, s)
    exact = np.tanh(s.astype(np.float64))
    ulp = np.spacing(np.abs(exact).astype(np.float32)).astype(np.float64)
    assert (np.abs(out - exact) <= 3 * ulp).all()
    assert out[-1] == -1.0 and out[-2] == 1.0 and out[-3] == 1.0
    assert np.isnan(_elementwise(K._tanh32, np.array([np.nan], np.float32))[0])


def untied(builder, ueps):
    """The same network with one weight per connection; also returns, for each new
    weight, the weight it came from."""
    conns = builder.connections(ueps)
    sp = Builder(builder.nunits, builder.inputs, builder.outputs, builder.nlfs)
    origin = []
    for lo, hi, nlf, _ in builder.stages:
        sp.stage(lo, hi, nlf)
        mine = []
        for (i, j, k, e) in conns:
            if lo <= j < hi:
                mine.append((i, j, len(origin), e))
                origin.append(k)
        sp.sparse(mine)
    sp.nweights = len(origin)
    return sp, np.array(origin)


def one_hidden_layer():
    """Inputs 2 planes 4x4 -> conv 3x3 with shared kernels (and a shared bias) ->
    3 outputs fully connected: one path from each weight to each output."""
    b = Builder(2 + 32 + 18 + 3, range(2, 34), [52, 53, 54], [TANH])
    taps = window_taps(4, 4, 3, 3, 3, 2, 1)
    b.stage(34, 52).conv(2, 16, 34, 9, taps, [(0, 0, 0), (1, 0, 9), (1, 1, 18)], bg=1)
    b.bias(34, 18, 27, shared=True)
    b.stage(52, 55).full(34, 18, 52, 3, 28).bias(52, 3, 82)
    b.nweights = 85
    return b


def jacobian(plan, bufs, w, pat, outputs, h=1e-6):
    J = np.empty((len(outputs), len(w)))
    for k in range(len(w)):
        out = []
        for sgn in (1, -1):
            wk = w.copy()
            wk[k] += sgn * h
            x = bufs.x.copy()
            K.present_pattern(plan, x, pat)
            K.forward(plan, x, bufs.s.copy(), wk)
            out.append(x[outputs])
        J[:, k] = (out[0] - out[1]) / (2 * h)
    return J


def test_lm_curvature_is_gauss_newton_diagonal():
    """LM: hq[k] = sum over the connections c of k of sum_o (dx_o/dw_c)^2, the
    Gauss-Newton diagonal of E = 1/2 sum (d-x)^2 for each connection's own weight
    (SN's diagonal pass drops the cross terms between connections sharing a weight;
    this net has a single path from each connection to each output)."""
    bd = one_hidden_layer()
    plan, bufs, ueps, pat, des = setup(bd, wscale=0.7)
    K.present_pattern(plan, bufs.x, pat[2])
    K.forward(plan, bufs.x, bufs.s, bufs.w)
    K.lms_cost(plan, bufs.x, bufs.b, bufs.sqb, des[2])
    K.backward2(plan, bufs.x, bufs.s, bufs.w, bufs.b, bufs.ggrad, bufs.sqb, bufs.hq, True)
    sp, origin = untied(bd, ueps)
    splan = sp.plan(ueps)
    J = jacobian(splan, bufs, bufs.w[origin], pat[2], bd.outputs)
    gn = np.zeros(bd.nweights)
    np.add.at(gn, origin, (J ** 2).sum(axis=0))
    assert (origin == 0).sum() == 9                # a shared kernel weight ...
    np.testing.assert_allclose(bufs.hq, gn, rtol=1e-6, atol=1e-9)
    # ... whose tied Gauss-Newton diagonal has cross terms SN leaves out
    Jt = jacobian(plan, bufs, bufs.w, pat[2], bd.outputs)
    assert abs((Jt[:, 0] ** 2).sum() - gn[0]) > 1e-3 * gn[0]


def test_newton_curvature_is_hessian_diagonal():
    """Newton: with a single path from each connection to each output and no
    sharing, hq[k] = d2E/dw_k^2 exactly."""
    bd = one_hidden_layer()
    plan0, bufs, ueps, pat, des = setup(bd, wscale=0.7)
    sp, origin = untied(bd, ueps)
    plan = sp.plan(np.ones(bd.nunits))
    plan = plan._replace(csr_eps=np.ones_like(plan.csr_eps))
    w = bufs.w[origin]
    bufs = K.new_buffers(sp.nunits, sp.nweights, F64)
    bufs.x[1] = -1
    K.present_pattern(plan, bufs.x, pat[3])
    K.forward(plan, bufs.x, bufs.s, w)
    K.lms_cost(plan, bufs.x, bufs.b, bufs.sqb, des[3])
    K.backward(plan, bufs.x, bufs.s, w, bufs.b, bufs.g, bufs.acc)
    K.backward2(plan, bufs.x, bufs.s, w, bufs.b, bufs.ggrad, bufs.sqb, bufs.hq, False)
    h = 1e-4
    e0 = energy(plan, bufs, w, pat[3], des[3])
    d2 = np.empty(len(w))
    for k in range(len(w)):
        wp = w.copy()
        wp[k] += h
        wm = w.copy()
        wm[k] -= h
        d2[k] = (energy(plan, bufs, wp, pat[3], des[3]) - 2 * e0 +
                 energy(plan, bufs, wm, pat[3], des[3])) / h ** 2
    np.testing.assert_allclose(bufs.hq, d2, rtol=1e-5, atol=1e-6)


def train_loop(plan, bufs, pat, des, order, mode, alpha, decay, mu, gamma):
    """train_patterns written with the single-step kernels."""
    tot = 0.0
    for p in order:
        K.present_pattern(plan, bufs.x, pat[p])
        K.forward(plan, bufs.x, bufs.s, bufs.w)
        tot += K.lms_cost(plan, bufs.x, bufs.b, bufs.sqb, des[p])
        K.backward(plan, bufs.x, bufs.s, bufs.w, bufs.b, bufs.g, bufs.acc)
        if mode != K.MODE_SGD:
            K.backward2(plan, bufs.x, bufs.s, bufs.w, bufs.b, bufs.ggrad, bufs.sqb,
                        bufs.hq, mode == K.MODE_LM)
        assert K.update(bufs.w, bufs.delta, bufs.acc, bufs.hess, bufs.hq, mode, alpha,
                        decay, mu, gamma)
    return tot


@pytest.mark.parametrize("dtype", [F64, F32])
@pytest.mark.parametrize("mode", [K.MODE_SGD, K.MODE_NEWTON, K.MODE_LM])
def test_train_patterns_equals_step_by_step(mode, dtype):
    bd = net_conv(True)
    plan, bufs, ueps, pat, des = setup(bd, dtype)
    other = K.new_buffers(bd.nunits, bd.nweights, dtype)
    for a, b in zip(other, bufs):
        a[:] = b
    order = np.array([0, 3, 1, 5, 2, 4, 0, 0, 2], np.int64)
    args = (mode, 0.5, 1e-4, 0.05, 0.05)
    tot, n, bad = K.train_patterns(plan, bufs, pat, des, order, *args, K.plain_extras())
    assert (n, bad) == (len(order), -1)
    tot2 = train_loop(plan, other, pat, des, order, *args)
    assert tot == pytest.approx(tot2, rel=1e-12)
    for name, a, b in zip(bufs._fields, bufs, other):
        np.testing.assert_array_equal(a, b, err_msg=name)


@pytest.mark.parametrize("mode", [K.MODE_SGD, K.MODE_LM])
@pytest.mark.parametrize("name", ["conv", "local", "full"])
def test_blocks_and_sparse_train_alike(name, mode):
    """The same network as blocks and as OP_SPARSE: same weights after 300 on-line
    iterations (float64)."""
    bd = NETS[name]()
    plan, bufs, ueps, pat, des = setup(bd, eps_scale=0.02)
    sp = bd.as_sparse(ueps)
    splan = sp.plan(np.zeros(bd.nunits))
    assert set(splan.ops[:, K.KIND]) == {K.OP_SPARSE}
    sbufs = K.new_buffers(bd.nunits, bd.nweights, F64)
    for a, b in zip(sbufs, bufs):
        a[:] = b
    order = np.arange(300, dtype=np.int64) % len(pat)
    args = (mode, 0.3, 0.0, 0.5, 0.05)
    r1 = K.train_patterns(plan, bufs, pat, des, order, *args, K.plain_extras())
    r2 = K.train_patterns(splan, sbufs, pat, des, order, *args, K.plain_extras())
    assert r1[1:] == r2[1:] == (300, -1)
    assert r1[0] == pytest.approx(r2[0], rel=1e-12)
    w0 = setup(bd, eps_scale=0.02)[1].w
    assert np.abs(bufs.w - w0).max() > 1e-2               # it did learn
    np.testing.assert_allclose(bufs.w, sbufs.w, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(bufs.hess, sbufs.hess, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("dtype", [F64, F32])
def test_nan_stops_at_the_right_pattern(dtype):
    bd = net_full()
    plan, bufs, ueps, pat, des = setup(bd, dtype)
    pat = np.repeat(pat, 3, axis=0)
    des = np.repeat(des, 3, axis=0)
    pat[7, 2] = np.nan
    order = np.arange(len(pat), dtype=np.int64)
    w_before = bufs.w.copy()
    ref = K.new_buffers(bd.nunits, bd.nweights, dtype)
    for a, b in zip(ref, bufs):
        a[:] = b
    tot, n, bad = K.train_patterns(plan, bufs, pat, des, order, K.MODE_LM, 0, 0, .05, .05,
                                   K.plain_extras())
    assert (n, bad) == (7, 7)
    tot2, n2, bad2 = K.train_patterns(plan, ref, pat, des, order[:7], K.MODE_LM, 0, 0,
                                      .05, .05, K.plain_extras())
    assert (n2, bad2) == (7, -1) and tot == tot2
    np.testing.assert_array_equal(bufs.w, ref.w)          # stopped before updating
    assert not np.array_equal(bufs.w, w_before)
    # the order decides: pattern 7 presented third
    bufs2 = setup(bd, dtype)[1]
    r = K.train_patterns(plan, bufs2, pat, des, np.array([0, 1, 7, 2], np.int64), 0, 0,
                         0, .05, .05, K.plain_extras())
    assert r[1:] == (2, 2)


def test_non_finite_weights_stop_training():
    """Finite states but an update that makes weights infinite: stop at that pattern."""
    bd = net_full()
    plan, bufs, ueps, pat, des = setup(bd)
    plan = plan._replace(ueps=np.full(bd.nunits, np.inf))
    order = np.arange(4, dtype=np.int64)
    tot, n, bad = K.train_patterns(plan, bufs, pat, des, order, K.MODE_SGD, 0, 0, .05, .05,
                                   K.plain_extras())
    assert (n, bad) == (0, 0) and tot == 0.0
    assert not np.isfinite(bufs.w).all()


@pytest.mark.parametrize("dtype", [F64, F32])
def test_evaluate(dtype):
    bd = net_conv(True)
    plan, bufs, ueps, pat, des = setup(bd, dtype, wscale=1.0)
    ref = Ref(bd, bd.connections(ueps))
    n = len(pat)
    err = np.full(n, -1.0)
    cls = np.full(n, -1, np.int64)
    sgn = np.full(n, 9, np.uint8)
    tot = K.evaluate(plan, bufs.x, bufs.s, bufs.w, pat, des, 1, 5, err, cls, sgn, K.COST_LMS)
    assert err[0] == -1 and err[5] == -1 and cls[0] == -1 and sgn[5] == 9
    want = 0.0
    for p in range(1, 5):
        x0 = np.zeros(bd.nunits)
        x0[0], x0[1] = 1, -1
        x0[bd.inputs] = pat[p]
        xr, _ = ref.forward(x0, bufs.w.astype(F64))
        _, e = ref.cost(xr, des[p].astype(F64))
        out = xr[bd.outputs]
        assert err[p] == pytest.approx(e, rel=1e-10 if dtype == F64 else 1e-4)
        assert cls[p] == np.argmax(out)
        assert sgn[p] == all((out > 0) == (des[p] > 0))
        want += e
    assert tot == pytest.approx(want, rel=1e-10 if dtype == F64 else 1e-4)


def test_kernels_are_cached():
    for f in (K.forward, K.backward, K.backward2, K.update, K.train_patterns, K.evaluate):
        assert f._cache.__class__.__name__ == "FunctionCache"


def test_new_buffers():
    b = K.new_buffers(5, 3, F32)
    assert b.x.dtype == F32 and b.w.shape == (3,) and b.x[0] == 1 and b.x[1:].sum() == 0
    with pytest.raises(TypeError):
        K.new_buffers(5, 3, np.int32)


# ---------------------------------------------------------------------------
# Random sparse networks (hypothesis)
# ---------------------------------------------------------------------------

from hypothesis import given, settings, strategies as st  # noqa: E402

ALL_NLFS = [TANH_C, NLF_KINDS["lin"], NLF_KINDS["piece"], NLF_KINDS["relu"],
            (K.NLF_BIN, 1.0, 0.7, 0.1, 0.0)]


@st.composite
def random_nets(draw):
    """Bias 0, inputs, then 1-3 stages; every unit of a stage draws connections from
    earlier units (bias and inputs included) through a small pool of shared weights."""
    nin = draw(st.integers(1, 4))
    sizes = draw(st.lists(st.integers(1, 4), min_size=1, max_size=3))
    nw = draw(st.integers(1, 12))
    nunits = 1 + nin + sum(sizes)
    nlf_rows = draw(st.lists(st.integers(0, len(ALL_NLFS) - 1), min_size=len(sizes),
                             max_size=len(sizes)))
    outputs = list(range(nunits - sizes[-1], nunits))
    b = Builder(nunits, range(1, 1 + nin), outputs, ALL_NLFS)
    b.nweights = nw
    lo = 1 + nin
    for size, row in zip(sizes, nlf_rows):
        conns = []
        for j in range(lo, lo + size):
            srcs = draw(st.lists(st.integers(0, lo - 1), min_size=0, max_size=5))
            for i in srcs:
                conns.append((i, j, draw(st.integers(0, nw - 1)),
                              draw(st.floats(0.01, 1.0))))
        b.stage(lo, lo + size, row)
        if conns:
            b.sparse(conns)
        lo += size
    return b


@settings(max_examples=60, deadline=None)
@given(random_nets(), st.integers(0, 2 ** 31))
def test_random_sparse_nets_match_reference(bd, seed):
    rng = np.random.default_rng(seed)
    plan = bd.plan(np.zeros(bd.nunits))
    ref = Ref(bd, bd.connections(np.zeros(bd.nunits)))
    bufs = K.new_buffers(bd.nunits, bd.nweights, F64)
    bufs.w[:] = rng.uniform(-1.5, 1.5, bd.nweights)
    pat = rng.uniform(-1, 1, len(bd.inputs))
    des = rng.uniform(-1, 1, len(bd.outputs))
    K.present_pattern(plan, bufs.x, pat)
    K.forward(plan, bufs.x, bufs.s, bufs.w)
    x0 = np.zeros(bd.nunits)
    x0[0] = 1
    x0[bd.inputs] = pat
    xr, sr = ref.forward(x0, bufs.w)
    np.testing.assert_allclose(bufs.x, xr, rtol=1e-12, atol=1e-12)
    K.lms_cost(plan, bufs.x, bufs.b, bufs.sqb, des)
    br, _ = ref.cost(xr, des)
    K.backward(plan, bufs.x, bufs.s, bufs.w, bufs.b, bufs.g, bufs.acc)
    br, gr, accr = ref.backward(xr, sr, bufs.w, br, bd.nweights)
    np.testing.assert_allclose(bufs.b, br, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(bufs.g, gr, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(bufs.acc, accr, rtol=1e-12, atol=1e-12)
    lm = bool(seed % 2)
    K.backward2(plan, bufs.x, bufs.s, bufs.w, bufs.b, bufs.ggrad, bufs.sqb, bufs.hq, lm)
    ggr, sqbr, hqr = ref.backward2(xr, sr, bufs.w, br, bd.nweights, lm)
    np.testing.assert_allclose(bufs.ggrad, ggr, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(bufs.sqb, sqbr, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(bufs.hq, hqr, rtol=1e-12, atol=1e-12)
