"""The SN network: numbered units, connections and the weights they share.

This is the one source of truth about a network. Unit 0 is the bias (state 1).
A connection goes from unit `src` to unit `dst` and refers to a weight; several
connections may share one weight (SN2.8's "iterative" networks). The arrays are
also the buffers the kernels train in place, in the network's float type.

Per unit:       x state, s weighted sum, b back-sum, g gradient, gg second
                derivative (ggrad), sqb squared back-sum
Per connection: src, dst, w (weight index), eps (epsilon), alive
Per weight:     w value, delta, acc (gradient accumulator), hess (running
                average of the curvature, summed over its connections), hq
                (scratch), count (connections sharing it)
"""

from dataclasses import dataclass, field

import numpy as np

from .errors import SNError

UNIT_FIELDS = ("x", "s", "b", "g", "gg", "sqb")
WEIGHT_FIELDS = ("w", "delta", "acc", "hess", "hq")


@dataclass
class Layer:
    """A named run of consecutive units; `shape` is (planes, rows, cols) or None;
    `nlf` is the layer's own nonlinearity, or None for the current default."""
    name: str
    lo: int
    n: int
    shape: tuple = None
    nlf: object = None

    @property
    def units(self):
        return range(self.lo, self.lo + self.n)


@dataclass
class Block:
    """A regular set of connections recorded by a helper, for the compiler.

    kind 'full': every src unit to every dst unit, weights src-major from w_lo.
    kind 'bias': unit 0 to every dst unit, own weights or one shared (`shared`).
    kind 'conv': windows over planes; `taps` [ntaps, positions] gives each tap's
      offset in the source plane, -1 for a background unit, -2 for none;
      `bgunits[in_plane, tap, pos]` is the background unit a -1 tap reads (each
      out-of-image position of a source plane is a unit of constant state);
      `pairs` rows (in_plane, out_plane, w_base); weights w_base + tap when
      `shared`, else w_base + pos * ntaps + tap.
    The connections are net connections conn_lo .. conn_hi - 1, in the order
    `triples()` gives them.
    """
    kind: str
    dst_lo: int
    dst_n: int
    src_lo: int = 0
    src_n: int = 0
    w_lo: int = 0
    shared: bool = True
    taps: np.ndarray = None
    pairs: np.ndarray = None
    bgunits: np.ndarray = None
    kshape: tuple = None     # (rows, cols) of a conv block's windows
    conn_lo: int = 0
    conn_hi: int = 0
    note: str = field(default="")

    def triples(self):
        """(src, dst, weight) arrays of the block's connections, in creation order."""
        if self.kind == "full":
            src = np.repeat(np.arange(self.src_n), self.dst_n) + self.src_lo
            dst = np.tile(np.arange(self.dst_n), self.src_n) + self.dst_lo
            return src, dst, self.w_lo + np.arange(self.src_n * self.dst_n)
        if self.kind == "bias":
            dst = np.arange(self.dst_n) + self.dst_lo
            w = np.full(self.dst_n, self.w_lo) if self.shared else self.w_lo + np.arange(self.dst_n)
            return np.zeros(self.dst_n, dtype=np.int64), dst, w
        return self._conv_triples()

    def _conv_triples(self):
        ntaps, npos = self.taps.shape
        srcs, dsts, ws = [], [], []
        tap_index = np.arange(ntaps)
        for in_plane, out_plane, w_base in self.pairs:
            for pos in range(npos):
                col = self.taps[:, pos]
                keep = col != -2
                t = tap_index[keep]
                offsets = col[keep]
                src = self.src_lo + in_plane * self.src_n + offsets
                if self.bgunits is not None:
                    src = np.where(offsets >= 0, src, self.bgunits[in_plane, keep, pos])
                else:
                    src = np.where(offsets >= 0, src, -1)
                srcs.append(src)
                dsts.append(np.full(len(t), self.dst_lo + out_plane * self.dst_n + pos))
                ws.append(w_base + t if self.shared else w_base + pos * ntaps + t)
        if not srcs:
            empty = np.zeros(0, dtype=np.int64)
            return empty, empty, empty
        return (np.concatenate(srcs).astype(np.int64), np.concatenate(dsts).astype(np.int64),
                np.concatenate(ws).astype(np.int64))


def _grow(array, n):
    if n <= len(array):
        return array
    bigger = np.zeros(max(n, 2 * len(array), 16), dtype=array.dtype)
    bigger[: len(array)] = array
    return bigger


class Net:
    def __init__(self, dtype=np.float32):
        self.dtype = np.dtype(dtype)
        self.clear()

    # ---- sizes and storage ---------------------------------------------
    def clear(self):
        """An empty network: only the bias unit."""
        for name in UNIT_FIELDS + WEIGHT_FIELDS:
            setattr(self, name, np.zeros(16, dtype=self.dtype))
        self.fanin = np.zeros(16, dtype=np.int64)
        self.csrc = np.zeros(16, dtype=np.int64)
        self.cdst = np.zeros(16, dtype=np.int64)
        self.cw = np.zeros(16, dtype=np.int64)
        self.ceps = np.zeros(16, dtype=np.float64)
        self.calive = np.zeros(16, dtype=bool)
        self.count = np.zeros(16, dtype=np.int64)
        self.nunits, self.nconn, self.nweights = 1, 0, 0
        self.x[0] = 1.0
        self.index = {}
        self.layers = []
        self.blocks = []
        self.version = 0        # bumped by every change of structure
        self.weights_version = 0

    def set_dtype(self, dtype):
        dtype = np.dtype(dtype)
        if dtype == self.dtype:
            return
        for name in UNIT_FIELDS + WEIGHT_FIELDS:
            setattr(self, name, getattr(self, name).astype(dtype))
        self.dtype = dtype
        self.version += 1

    def reserve(self, units, conns=0, weights=0):
        """SN2.8's alloc-net: make room in advance (the net grows anyway)."""
        self._units(units)
        self._conns(conns)
        self._weights(weights)

    def _units(self, n):
        for name in UNIT_FIELDS:
            setattr(self, name, _grow(getattr(self, name), n))
        self.fanin = _grow(self.fanin, n)

    def _conns(self, n):
        for name in ("csrc", "cdst", "cw", "ceps", "calive"):
            setattr(self, name, _grow(getattr(self, name), n))

    def _weights(self, n):
        for name in WEIGHT_FIELDS:
            setattr(self, name, _grow(getattr(self, name), n))
        self.count = _grow(self.count, n)

    def view(self, name):
        """The live part of a unit, connection or weight array."""
        array = getattr(self, name)
        if name in UNIT_FIELDS or name == "fanin":
            return array[: self.nunits]
        if name in WEIGHT_FIELDS or name == "count":
            return array[: self.nweights]
        return array[: self.nconn]

    def alive(self):
        """Indices of the connections that have not been cut."""
        return np.flatnonzero(self.calive[: self.nconn])

    # ---- units -------------------------------------------------------------
    def newneurons(self, n):
        """n new units; returns the number of the first."""
        if n <= 0:
            raise SNError(f"newneurons: the number of units must be positive, not {n}")
        lo = self.nunits
        self._units(lo + n)
        self.nunits += n
        self.version += 1
        return lo

    def check_unit(self, u, what="unit"):
        if not 0 <= u < self.nunits:
            raise SNError(f"{what} {u} does not exist (units are 0..{self.nunits - 1})")
        return u

    def add_layer(self, layer):
        self.layers = [l for l in self.layers if l.name != layer.name]
        self.layers.append(layer)

    def layer_of(self, units):
        """The recorded layer whose units are exactly `units`, or None."""
        if len(units) == 0:
            return None
        lo = units[0]
        for layer in self.layers:
            if layer.lo == lo and layer.n == len(units) and units[-1] == lo + len(units) - 1:
                if np.array_equal(np.asarray(units), np.arange(lo, lo + len(units))):
                    return layer
        return None

    # ---- connections ---------------------------------------------------------
    def find(self, src, dst):
        """The connection src -> dst, or None."""
        return self.index.get((src, dst))

    def new_weights(self, n, value=0.0):
        lo = self.nweights
        self._weights(lo + n)
        self.nweights += n
        for name in WEIGHT_FIELDS:
            getattr(self, name)[lo: lo + n] = 0.0
        self.w[lo: lo + n] = value
        self.count[lo: lo + n] = 0
        return lo

    def add_connections(self, src, dst, w, eps=0.0):
        """Connections src[k] -> dst[k] using the existing weights w[k]."""
        src, dst = self.validate_new(src, dst)
        w = np.asarray(w, dtype=np.int64)
        if len(w) and (w.min() < 0 or w.max() >= self.nweights):
            raise SNError(f"weight {int(w.max())} does not exist")
        self._insert(src, dst, w, eps)

    def connect(self, src, dst, value=0.0, eps=0.0):
        """Every src unit to every dst unit, each connection with a new weight
        (SN's order: sources outer, targets inner)."""
        src, dst = np.asarray(src, dtype=np.int64), np.asarray(dst, dtype=np.int64)
        src, dst = self.validate_new(np.repeat(src, len(dst)), np.tile(dst, len(src)))
        w = self.new_weights(len(src), value)
        self._insert(src, dst, w + np.arange(len(src)), eps)

    def validate_new(self, src, dst):
        """Check that src[k] -> dst[k] can be made: units exist, no duplicates."""
        src = np.asarray(src, dtype=np.int64)
        dst = np.asarray(dst, dtype=np.int64)
        for name, units in (("source", src), ("target", dst)):
            bad = units[(units < 0) | (units >= self.nunits)]
            if len(bad):
                raise SNError(f"{name} unit {int(bad[0])} does not exist "
                              f"(units are 0..{self.nunits - 1})")
        pairs = list(zip(src.tolist(), dst.tolist()))
        if len(set(pairs)) != len(pairs):
            raise SNError("a connection is listed twice")
        for pair in pairs:
            if pair in self.index:
                raise SNError(f"the connection {pair[0]} -> {pair[1]} exists already")
        return src, dst

    def _insert(self, src, dst, w, eps):
        n = len(src)
        if n == 0:
            return
        lo = self.nconn
        self._conns(lo + n)
        self.csrc[lo: lo + n] = src
        self.cdst[lo: lo + n] = dst
        self.cw[lo: lo + n] = w
        self.ceps[lo: lo + n] = eps
        self.calive[lo: lo + n] = True
        self.nconn += n
        self.index.update(zip(zip(src.tolist(), dst.tolist()), range(lo, lo + n)))
        np.add.at(self.fanin, dst, 1)
        np.add.at(self.count, w, 1)
        self.version += 1

    def dup_connection(self, ref_src, ref_dst, src, dst, eps=0.0):
        """New connections src[k] -> dst[k] sharing the weight of ref_src[k] -> ref_dst[k]."""
        w = []
        for a, b in zip(ref_src, ref_dst):
            c = self.find(int(a), int(b))
            if c is None:
                raise SNError(f"the source connection {a} -> {b} does not exist")
            w.append(self.cw[c])
        self.add_connections(src, dst, np.asarray(w, dtype=np.int64), eps)

    def cut(self, src, dst):
        """Remove a connection; a weight no connection uses any more is zeroed."""
        c = self.find(src, dst)
        if c is None:
            raise SNError(f"no connection {src} -> {dst}")
        del self.index[(src, dst)]
        self.calive[c] = False
        self.fanin[dst] -= 1
        w = self.cw[c]
        self.count[w] -= 1
        if self.count[w] == 0:
            self.w[w] = 0.0
            self.acc[w] = 0.0
        self.version += 1

    def set_weight_index(self, c, k):
        """Make connection c use weight k (SN2.8's sindex)."""
        if not 0 <= k < self.nweights:
            raise SNError(f"weight {k} does not exist (weights are 0..{self.nweights - 1})")
        self.count[self.cw[c]] -= 1
        self.cw[c] = k
        self.count[k] += 1
        self.version += 1

    def incoming(self, dst):
        """Connections into `dst`, in creation order."""
        live = self.alive()
        return live[self.cdst[live] == dst]

    def outgoing(self, src):
        live = self.alive()
        return live[self.csrc[live] == src]

    def record(self, block):
        self.blocks.append(block)
