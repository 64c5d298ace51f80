"""build-net and SN2.8's connection helpers (its lib/connect.sn).

The helpers make the same connections and shared weights as SN2.8's, in the
same order, and also record a Block describing the regular structure so that
the compiler can run it as dense loops. Our extensions on the 2-d helpers:

    :pad p         windows start at step*i - p (rows and columns)
    :background v  window taps outside the source read a constant unit of
                   state v, through the same kernel weight (without it, such
                   taps are simply not connected)
    :table T       layers made of planes: one kernel per (in-plane out-plane)
                   pair of T; r and c are then the rows and columns of a plane
"""

import numpy as np

from .datum import Cons, Keyword, Symbol, is_number, to_string
from .errors import SNError
from .interpreter import is_list
from .net import Block, Layer
from .netlib import lisp_list, sync_counts, units_of
from .nlf import Nlf
from .registry import builtin, special


def _int(x, fn, what):
    if not is_number(x) or int(x) != x:
        raise SNError(f"{fn}: {what} must be an integer, not {to_string(x)}")
    return int(x)


def _positive(x, fn, what):
    n = _int(x, fn, what)
    if n <= 0:
        raise SNError(f"{fn}: {what} must be positive, not {n}")
    return n


def split_keywords(args, allowed, fn):
    """Positional arguments, then a dict of :keyword value pairs."""
    positional, options = [], {}
    i = 0
    while i < len(args):
        a = args[i]
        if isinstance(a, Keyword):
            name = a.name[1:]
            if name not in allowed:
                raise SNError(f"{fn}: unknown keyword {a.name} (known: "
                              + ", ".join(":" + k for k in allowed) + ")")
            if i + 1 >= len(args):
                raise SNError(f"{fn}: {a.name} needs a value")
            options[name] = args[i + 1]
            i += 2
        else:
            if options:
                raise SNError(f"{fn}: positional argument {to_string(a)} after keywords")
            positional.append(a)
            i += 1
    return positional, options


def warn(interp, text):
    interp.write(text)


# ---- build-net -------------------------------------------------------------

def _layer_spec(interp, spec, fn):
    if not isinstance(spec, Cons) or not isinstance(spec.car, Symbol):
        raise SNError(f"{fn}: a layer is written (name size [nlf...]), not {to_string(spec)}")
    name = spec.car
    if not isinstance(spec.cdr, Cons):
        raise SNError(f"{fn}: layer {name.name} has no size")
    size_form, nlf_forms = spec.cdr.car, spec.cdr.cdr
    if isinstance(size_form, Cons) and all(is_number(v) for v in size_form):
        size = size_form
    else:
        size = interp.eval(size_form)
    shape = None
    if isinstance(size, Cons):
        dims = [_positive(v, fn, f"a dimension of layer {name.name}") for v in size]
        if len(dims) != 3:
            raise SNError(f"{fn}: the shape of layer {name.name} is (planes rows cols), "
                          f"not {to_string(size)}")
        shape, n = tuple(dims), dims[0] * dims[1] * dims[2]
    else:
        n = _positive(size, fn, f"the size of layer {name.name}")
    return name, n, shape, _layer_nlf(interp, nlf_forms)


def _layer_nlf(interp, forms):
    """Evaluate a layer's nlf forms with `nlf` rebound; the layer keeps the result."""
    if forms is None:
        return None
    sym = interp.intern("nlf")
    saved = sym.value
    try:
        interp.progn(forms)
        nlf = sym.value
    finally:
        sym.value = saved
    if not isinstance(nlf, Nlf):
        raise SNError(f"a layer's nlf forms must set a nonlinear function, not {to_string(nlf)}")
    return nlf


def _build(interp, layers_spec, links, fn, bias):
    net = interp.net
    if not is_list(layers_spec) or layers_spec is None:
        raise SNError(f"{fn}: the first argument is the list of layers")
    specs = [_layer_spec(interp, s, fn) for s in layers_spec]
    names = [s[0] for s in specs]
    if len(set(names)) != len(names):
        raise SNError(f"{fn}: a layer name is used twice")
    link_pairs = []
    for link in (links or []):
        items = list(link) if isinstance(link, Cons) else []
        if len(items) != 2 or not all(isinstance(i, Symbol) for i in items):
            raise SNError(f"{fn}: a connection is written (from to), not {to_string(link)}")
        for item in items:
            if item not in names:
                raise SNError(f"{fn}: unknown layer {item.name} in {to_string(link)}")
        link_pairs.append(tuple(items))
    made = []
    for name, n, shape, nlf in specs:
        lo = net.newneurons(n)
        layer = Layer(name.name, lo, n, shape, nlf)
        net.add_layer(layer)
        made.append(layer)
        name.value = lisp_list(layer.units)
    desired_lo = net.newneurons(made[-1].n)
    interp.set("input-layer", names[0].value)
    interp.set("output-layer", names[-1].value)
    interp.set("desired-layer", lisp_list(range(desired_lo, desired_lo + made[-1].n)))
    interp.set("layer-names", lisp_list(names))
    interp.set("net-struc", Cons(lisp_list(s.value for s in names), interp.get("desired-layer")))
    net.build = [layer.name for layer in made]
    if bias:
        for layer in made[1:]:
            bias_block(net, layer.lo, layer.n, shared=False)
    by_name = {layer.name: layer for layer in made}
    for a, b in link_pairs:
        full_block(net, by_name[a.name], by_name[b.name])
    sync_counts(interp)
    return lisp_list(names)


@builtin("build-net", interp=True)
def build_net(interp, layers, links=None):
    """(build-net '((name size [nlf...]) ...) '((from to) ...)): the layers in order
    (input first, output last, plus a hidden desired layer), every non-input unit
    connected to the bias, each listed pair fully connected."""
    return _build(interp, layers, links, "build-net", bias=True)


@builtin("build-net-nobias", interp=True)
def build_net_nobias(interp, layers, links=None):
    return _build(interp, layers, links, "build-net-nobias", bias=False)


def _new_block(net, block, nweights):
    src, dst, w = block.triples()
    src, dst = net.validate_new(src, dst)
    block.w_lo = net.new_weights(nweights)
    block.conn_lo = net.nconn
    src, dst, w = block.triples()
    net._insert(src, dst, w, 0.0)
    block.conn_hi = net.nconn
    net.record(block)
    return block


def bias_block(net, lo, n, shared):
    return _new_block(net, Block("bias", lo, n, shared=shared), 1 if shared else n)


def full_block(net, a, b):
    return _new_block(net, Block("full", b.lo, b.n, a.lo, a.n), a.n * b.n)


@builtin("bias-connect", interp=True)
def bias_connect(interp, layer):
    """One bias weight per unit of the layer."""
    lo, n = _contiguous(interp, layer, "bias-connect")
    bias_block(interp.net, lo, n, shared=False)
    sync_counts(interp)
    return None


@builtin("shared-bias-connect", interp=True)
def shared_bias_connect(interp, layer):
    """One bias weight shared by every unit of the layer."""
    lo, n = _contiguous(interp, layer, "shared-bias-connect")
    bias_block(interp.net, lo, n, shared=True)
    sync_counts(interp)
    return None


def _contiguous(interp, layer, fn):
    units = units_of(layer, fn, interp.net)
    if len(units) == 0:
        raise SNError(f"{fn}: the layer is empty")
    lo = int(units[0])
    if not np.array_equal(units, np.arange(lo, lo + len(units))):
        raise SNError(f"{fn}: the layer's units must be consecutive numbers")
    return lo, len(units)


# ---- window geometry -------------------------------------------------------

def window_origins(n_out, step, size, n_in, pad, toric):
    """Where each window starts along one axis. Without padding, SN2.8 slides
    the windows by `step` and pushes back inside those that would overflow."""
    if toric:
        return [min(i * step, n_in - step) for i in range(n_out)]
    if pad is not None:
        return [i * step - pad for i in range(n_out)]
    return [min(i * step, n_in - size) for i in range(n_out)]


def tap_map(rows, cols, out_rows, out_cols, ysize, xsize, oy, ox, toric, has_background):
    """taps[t, pos]: offset in the source plane of tap t of window pos; -1 for
    a background unit, -2 when the tap is not connected; and the (row, col)
    each tap reads, for naming background units."""
    shape = (ysize * xsize, out_rows * out_cols)
    taps, ys, xs = (np.empty(shape, dtype=np.int64) for _ in range(3))
    for i in range(out_rows):
        for j in range(out_cols):
            pos = i * out_cols + j
            for ky in range(ysize):
                for kx in range(xsize):
                    t = ky * xsize + kx
                    y, x = oy[i] + ky, ox[j] + kx
                    if toric:
                        y, x = y % rows, x % cols
                    ys[t, pos], xs[t, pos] = y, x
                    if 0 <= y < rows and 0 <= x < cols:
                        taps[t, pos] = y * cols + x
                    else:
                        taps[t, pos] = -1 if has_background else -2
    return taps, (ys, xs)


def background_units(interp, block, coords, value):
    """The constant units that out-of-image taps read: one per source plane and
    out-of-image position (the paper's "virtual background plane"), shared by
    every helper that reads the same position of the same plane. Returns
    bgunits[in_plane, tap, pos]."""
    net = interp.net
    known = getattr(net, "backgrounds", None)
    if known is None:
        known = net.backgrounds = {}
    ys, xs = coords
    outside = block.taps == -1
    n_in = int(block.pairs[:, 0].max()) + 1
    bgunits = np.full((n_in,) + block.taps.shape, -1, dtype=np.int64)
    for plane in sorted(set(block.pairs[:, 0].tolist())):
        plane_lo = block.src_lo + plane * block.src_n
        for y, x in sorted(set(zip(ys[outside].tolist(), xs[outside].tolist()))):
            key = (plane_lo, block.src_n, y, x, float(value))
            if key not in known or known[key] >= net.nunits:
                known[key] = net.newneurons(1)
                net.x[known[key]] = value
            bgunits[plane][outside & (ys == y) & (xs == x)] = known[key]
    return bgunits


def _planes(interp, layer, fn, plane_size, which):
    lo, n = _contiguous(interp, layer, fn)
    if n % plane_size:
        raise SNError(f"{fn}: the {which} layer has {n} units, not a multiple of "
                      f"{plane_size} (one plane)")
    return lo, n // plane_size


def _table(table, n_in, n_out, fn):
    if table is None:
        if n_in != 1 or n_out != 1:
            raise SNError(f"{fn}: layers of several planes ({n_in} and {n_out}) need a :table")
        return [(0, 0)]
    pairs = []
    cell = table
    while isinstance(cell, Cons):
        pair = cell.car
        items = list(pair) if isinstance(pair, Cons) else []
        if len(items) != 2 or not all(is_number(v) and int(v) == v for v in items):
            raise SNError(f"{fn}: a table lists (in-plane out-plane) pairs, not {to_string(pair)}")
        a, b = int(items[0]), int(items[1])
        if not (0 <= a < n_in and 0 <= b < n_out):
            raise SNError(f"{fn}: table pair ({a} {b}) is out of range: planes are "
                          f"0..{n_in - 1} in and 0..{n_out - 1} out")
        pairs.append((a, b))
        cell = cell.cdr
    if cell is not None or not pairs:
        raise SNError(f"{fn}: malformed table {to_string(table)}")
    if len(set(pairs)) != len(pairs):
        raise SNError(f"{fn}: the table lists a pair twice")
    return pairs


def windows(interp, args, fn, shared, toric):
    """The 2-d helpers: (fn l1 r1 c1 l2 r2 c2 xstep ystep xsize ysize [:pad p]
    [:background v] [:table T])."""
    pos, opts = split_keywords(args, ("pad", "background", "table"), fn)
    if len(pos) != 10:
        raise SNError(f"{fn}: expects (l1 r1 c1 l2 r2 c2 xstep ystep xsize ysize), "
                      f"got {len(pos)} arguments")
    layer1, layer2 = pos[0], pos[3]
    rows, cols = _positive(pos[1], fn, "r1"), _positive(pos[2], fn, "c1")
    out_rows, out_cols = _positive(pos[4], fn, "r2"), _positive(pos[5], fn, "c2")
    xstep, ystep = _positive(pos[6], fn, "xstep"), _positive(pos[7], fn, "ystep")
    xsize, ysize = _positive(pos[8], fn, "xsize"), _positive(pos[9], fn, "ysize")
    pad = None
    if "pad" in opts:
        pad = _int(opts["pad"], fn, ":pad")
        if pad < 0 or toric:
            raise SNError(f"{fn}: :pad must be >= 0" if pad < 0 else f"{fn}: :pad has no meaning on a torus")
    src_lo, n_in = _planes(interp, layer1, fn, rows * cols, "source")
    dst_lo, n_out = _planes(interp, layer2, fn, out_rows * out_cols, "target")
    pairs = _table(opts.get("table"), n_in, n_out, fn)
    _check_geometry(interp, fn, rows, out_rows, ystep, ysize, pad, toric, "rows")
    _check_geometry(interp, fn, cols, out_cols, xstep, xsize, pad, toric, "columns")
    oy = window_origins(out_rows, ystep, ysize, rows, pad, toric)
    ox = window_origins(out_cols, xstep, xsize, cols, pad, toric)
    has_bg = "background" in opts
    if has_bg and not is_number(opts["background"]):
        raise SNError(f"{fn}: :background must be a number, not {to_string(opts['background'])}")
    taps, coords = tap_map(rows, cols, out_rows, out_cols, ysize, xsize, oy, ox, toric, has_bg)
    ntaps = ysize * xsize
    per_pair = ntaps if shared else ntaps * out_rows * out_cols
    block = Block("conv", dst_lo, out_rows * out_cols, src_lo, rows * cols, shared=shared,
                  taps=taps, kshape=(ysize, xsize), note=fn)
    block.pairs = np.array([(a, b, k * per_pair) for k, (a, b) in enumerate(pairs)], dtype=np.int64)
    background = opts["background"] if has_bg and (taps == -1).any() else None
    _conv_block(interp, block, per_pair * len(pairs), background, coords)
    sync_counts(interp)
    return None


def _conv_block(interp, block, nweights, background, coords):
    """Check every new connection, then make the background units (if any), the
    weights and the connections: an error changes nothing."""
    net = interp.net
    src, dst, _ = block.triples()
    net.validate_new(src[src >= 0], dst[src >= 0])  # background units do not exist yet
    if background is not None:
        block.bgunits = background_units(interp, block, coords, background)
        src, dst, _ = block.triples()
        net.validate_new(src, dst)
    w_lo = net.new_weights(nweights)
    block.pairs = block.pairs + np.array([0, 0, w_lo])
    block.w_lo = w_lo
    block.conn_lo = net.nconn
    src, dst, w = block.triples()
    net._insert(src, dst, w, 0.0)
    block.conn_hi = net.nconn
    net.record(block)


def _check_geometry(interp, fn, n_in, n_out, step, size, pad, toric, axis):
    if toric:
        if n_in < step:
            raise SNError(f"{fn}: impossible geometry: step {step} is larger than the "
                          f"{n_in} {axis} of the source")
        if n_in != n_out * step:
            warn(interp, f"{fn}:[warning]:inexact layer size.\n")
        return
    if pad is None:
        if size > n_in:
            raise SNError(f"{fn}: impossible geometry: windows of {size} {axis} do not fit "
                          f"in a source of {n_in}")
        if n_in != (n_out - 1) * step + size:
            warn(interp, f"{fn}:[warning]:inexact layer size.\n")
        return
    last = (n_out - 1) * step - pad
    if last >= n_in or size - pad <= 0:
        raise SNError(f"{fn}: impossible geometry: with :pad {pad}, some windows of {size} "
                      f"{axis} lie entirely outside the {n_in} {axis} of the source")


@builtin("mask-2d-connect", interp=True)
def mask_2d_connect(interp, *args):
    """Windows of l1 seen by each unit of l2 through ONE shared kernel (a convolution)."""
    return windows(interp, args, "mask-2d-connect", shared=True, toric=False)


@builtin("local-2d-connect", interp=True)
def local_2d_connect(interp, *args):
    """Windows of l1 seen by each unit of l2, each with its own weights."""
    return windows(interp, args, "local-2d-connect", shared=False, toric=False)


@builtin("mask-toric-connect", interp=True)
def mask_toric_connect(interp, *args):
    """As mask-2d-connect, windows wrapping around the edges of l1."""
    return windows(interp, args, "mask-toric-connect", shared=True, toric=True)


@builtin("local-toric-connect", interp=True)
def local_toric_connect(interp, *args):
    return windows(interp, args, "local-toric-connect", shared=False, toric=True)


@builtin("mask-1d-connect", interp=True)
def mask_1d_connect(interp, layer1, n1, layer2, n2, step, size):
    """1-d windows of `size` units stepped by `step`, through one shared kernel."""
    return windows(interp, [layer1, 1, n1, layer2, 1, n2, step, 1, size, 1],
                   "mask-1d-connect", shared=True, toric=False)


@builtin("local-1d-connect", interp=True)
def local_1d_connect(interp, layer1, n1, layer2, n2, step, size):
    return windows(interp, [layer1, 1, n1, layer2, 1, n2, step, 1, size, 1],
                   "local-1d-connect", shared=False, toric=False)


def _equal_mask(interp, fn, src_units, dst_units, origins_y, origins_x, rows, cols, ysize, xsize):
    """Every tap of every window through a single weight."""
    net = interp.net
    src, dst = [], []
    for j, (y0, x0) in enumerate((y, x) for y in origins_y for x in origins_x):
        for ky in range(ysize):
            for kx in range(xsize):
                src.append(src_units[(y0 + ky) * cols + x0 + kx])
                dst.append(dst_units[j])
    src, dst = net.validate_new(src, dst)
    w = net.new_weights(1)
    net._insert(src, dst, np.full(len(src), w), 0.0)
    sync_counts(interp)


@builtin("equal-mask-2d-connect", interp=True)
def equal_mask_2d_connect(interp, l1, r1, c1, l2, r2, c2, xstep, ystep, xsize, ysize):
    fn = "equal-mask-2d-connect"
    rows, cols, orows, ocols = (_positive(v, fn, n) for v, n in
                                ((r1, "r1"), (c1, "c1"), (r2, "r2"), (c2, "c2")))
    xstep, ystep, xsize, ysize = (_positive(v, fn, n) for v, n in
                                  ((xstep, "xstep"), (ystep, "ystep"), (xsize, "xsize"), (ysize, "ysize")))
    src_units = units_of(l1, fn, interp.net)
    dst_units = units_of(l2, fn, interp.net)
    if len(src_units) != rows * cols or len(dst_units) != orows * ocols:
        raise SNError(f"{fn}: the layers have {len(src_units)} and {len(dst_units)} units, "
                      f"not {rows}x{cols} and {orows}x{ocols}")
    _check_geometry(interp, fn, rows, orows, ystep, ysize, None, False, "rows")
    _check_geometry(interp, fn, cols, ocols, xstep, xsize, None, False, "columns")
    _equal_mask(interp, fn, src_units, dst_units,
                window_origins(orows, ystep, ysize, rows, None, False),
                window_origins(ocols, xstep, xsize, cols, None, False), rows, cols, ysize, xsize)
    return None


@builtin("equal-mask-1d-connect", interp=True)
def equal_mask_1d_connect(interp, l1, n1, l2, n2, step, size):
    return equal_mask_2d_connect(interp, l1, 1, n1, l2, 1, n2, step, 1, size, 1)


@builtin("tdnn-connect", interp=True)
def tdnn_connect(interp, l1, nframes1, ntraits1, l2, nframes2, ntraits2, step, size):
    """Time-delay connections: each frame of l2 (all its traits) sees `size`
    frames of l1 through weights shared by every frame. Layers are frame-major."""
    fn = "tdnn-connect"
    net = interp.net
    f1, t1, f2, t2 = (_positive(v, fn, n) for v, n in ((nframes1, "nframes1"), (ntraits1, "ntraits1"),
                                                        (nframes2, "nframes2"), (ntraits2, "ntraits2")))
    step, size = _positive(step, fn, "step"), _positive(size, fn, "size")
    a1, a2 = units_of(l1, fn, net), units_of(l2, fn, net)
    if len(a1) != f1 * t1 or len(a2) != f2 * t2:
        raise SNError(f"{fn}: the layers have {len(a1)} and {len(a2)} units, "
                      f"not {f1}x{t1} and {f2}x{t2}")
    if size > f1:
        raise SNError(f"{fn}: impossible geometry: {size} frames do not fit in {f1}")
    if f1 != (f2 - 1) * step + size:
        warn(interp, f"{fn}:[benign warning] bad frame numbers.\n")
    src, dst, w = [], [], []
    for i, origin in enumerate(window_origins(f2, step, size, f1, None, False)):
        window = a1[origin * t1:(origin + size) * t1]
        frame = a2[i * t2:(i + 1) * t2]
        src.append(np.repeat(window, t2))
        dst.append(np.tile(frame, len(window)))
        w.append(np.arange(len(window) * t2))
    src, dst = net.validate_new(np.concatenate(src), np.concatenate(dst))
    base = net.new_weights(size * t1 * t2)
    net._insert(src, dst, base + np.concatenate(w), 0.0)
    sync_counts(interp)
    return None


@builtin("tdnn-bias-connect", interp=True)
def tdnn_bias_connect(interp, layer, nframes, ntraits):
    """Bias connections shared by the frames, one weight per trait."""
    fn = "tdnn-bias-connect"
    net = interp.net
    f, t = _positive(nframes, fn, "nframes"), _positive(ntraits, fn, "ntraits")
    units = units_of(layer, fn, net)
    if len(units) != f * t:
        raise SNError(f"{fn}: the layer has {len(units)} units, not {f}x{t}")
    src, dst = net.validate_new(np.zeros(len(units), dtype=np.int64), units)
    base = net.new_weights(t)
    net._insert(src, dst, base + np.tile(np.arange(t), f), 0.0)
    sync_counts(interp)
    return None


# ---- connection tables --------------------------------------------------------

@builtin("full-table")
def full_table(a, b):
    """Every (input plane, output plane) pair for a input and b output planes."""
    a, b = _positive(a, "full-table", "a"), _positive(b, "full-table", "b")
    return lisp_list(lisp_list((i, j)) for i in range(a) for j in range(b))


@builtin("one2one-table")
def one2one_table(n):
    n = _positive(n, "one2one-table", "n")
    return lisp_list(lisp_list((i, i)) for i in range(n))


@special("conn-table")
def conn_table(interp, args):
    """(conn-table ((in-planes) (out-planes)) ...): every in-plane of a group
    to every out-plane of the same group. A group written as two lists of
    plane numbers is taken as it is; any other group is evaluated."""
    pairs = []
    for group in (args or []):
        if not _literal_group(group):
            group = interp.eval(group)
        items = list(group) if isinstance(group, Cons) else []
        if len(items) != 2 or not all(is_list(x) for x in items):
            raise SNError(f"conn-table: a group is ((in-planes) (out-planes)), not {to_string(group)}")
        ins = [_int(v, "conn-table", "a plane") for v in (items[0] or [])]
        outs = [_int(v, "conn-table", "a plane") for v in (items[1] or [])]
        pairs.extend((i, o) for o in outs for i in ins)
    return lisp_list(lisp_list(p) for p in pairs)


def _literal_group(group):
    items = list(group) if isinstance(group, Cons) else []
    return len(items) == 2 and all(is_list(x) for x in items)

