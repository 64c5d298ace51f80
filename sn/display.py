"""Seeing and stepping: SN's displays, drawn in the terminal.

Grey pictures of patterns, layer states and weights, two characters per cell
so that cells look square:

    ascii     " .:-=+*#%@"             (any output: files, pipes, dumb terminals)
    unicode   "  ░░▒▒▓▓██"
    color     ANSI 256-colour grey ramp; weights in red (+) and blue (-)

By default a terminal that can show colour gets colour (stdout is a tty,
TERM is not "dumb", NO_COLOR is unset), anything else ascii; (set-display
'ascii|'unicode|'color|'auto) chooses. States map to grey with SN's
convention: -1 blank, +1 full.

Stepping: (step [n]) runs iterations one at a time and shows the last.
SN2.8's display hooks: disp-text, disp-net, disp-error, disp-everything,
disp-user, disp-nil, and the set-disp-* functions that install them as
disp-basic-iteration and disp-perf-iteration, as SN2.8's netenv.sn does.

SN2.8's window graphics in old scripts (new-window, cls, draw-list,
gray-draw-list, gprintf, plt-draw, init-error-plotting ...) are accepted:
the list drawings and texts come out in the terminal, the rest is ignored
with one notice per session.
"""

import math
import os
import shutil
import sys

import numpy as np

from .datum import Cons, Symbol, is_number, py_list, to_string
from .errors import SNError
from .netlib import number, units_of
from .registry import builtin, special

ASCII = " .:-=+*#%@"
BLOCKS = " ░▒▓█"
GREY0, GREYS = 232, 24        # the 256-colour grey ramp: 232 (black) .. 255 (white)
RESET = "\x1b[0m"
MODES = ("ascii", "unicode", "color")

GLOBALS = {
    "step-lm": None,
    # SN2.8's display and plotting globals (netenv.sn), for old scripts
    "disp-error-max-age": -1, "disp-error-window": None, "disp-error-sweeps": None,
    "disp-error-maxerr": None, "disp-error-port": None, "error-plotting-window": None,
    "training-error-port": None, "test-error-port": None, "perf-plotting-window": None,
    "training-perf-port": None, "test-perf-port": None, "window": None, "plot-port": None,
    # SN2.8's example scripts test these with (null ...) before setting them
    # (TLisp reads a symbol without a value as ())
    "draw-net-window": None, "draw-net-windowobject": None,
}


def setup(interp):
    for name, value in GLOBALS.items():
        interp.set(name, value)
    interp.display_mode = None        # None: chosen from the output stream
    interp.graphics_noticed = False
    interp.graphics_batch = None      # the items drawn inside (graphics-batch ...)


# ---- choosing how to draw -----------------------------------------------

def _stream(interp):
    out = interp.out or sys.stdout
    return out if hasattr(out, "isatty") else getattr(out, "stream", out)


def auto_mode(stream, environ=None):
    """color on a terminal that shows it, unicode on a terminal asked for no
    colour (NO_COLOR) that reads UTF-8, ascii elsewhere."""
    environ = os.environ if environ is None else environ
    try:
        tty = bool(stream.isatty())
    except (AttributeError, ValueError, OSError):
        tty = False
    if not tty or environ.get("TERM", "") == "dumb":
        return "ascii"
    if "NO_COLOR" in environ:
        encoding = (getattr(stream, "encoding", None) or "").lower().replace("-", "")
        return "unicode" if encoding == "utf8" else "ascii"
    return "color"


def mode(interp):
    return interp.display_mode or auto_mode(_stream(interp))


def width(interp):
    """Columns available for pictures side by side."""
    cols = shutil.get_terminal_size((80, 24)).columns
    return max(cols, 40)


@builtin("set-display", interp=True)
def set_display(interp, kind=None):
    """(set-display 'ascii|'unicode|'color|'auto): how pictures are drawn;
    without argument, the current choice."""
    if kind is None:
        return interp.intern(mode(interp))
    name = to_string(kind, readably=False)
    if name not in MODES + ("auto",):
        raise SNError(f"set-display: expects ascii, unicode, color or auto, not {name}")
    interp.display_mode = None if name == "auto" else name
    return interp.intern(name)


# ---- cells, grids and pictures side by side ------------------------------

def cells(values, lo, hi, kind, signed=False):
    """One line of cells, two characters each, for `values` between lo
    (blank) and hi (full); NaN is a blank cell. `signed` colours positive
    values red and negative ones blue (colour mode; the others use grey)."""
    values = np.asarray(values, dtype=float)
    span = hi - lo if hi != lo else 1.0
    t = np.clip((values - lo) / span, 0.0, 1.0)
    missing = ~np.isfinite(values)
    out = []
    if kind == "color":
        last = None
        for v, x, miss in zip(values, t, missing):
            if miss:
                code = RESET
            elif signed:
                code = _signed_colour(v, max(abs(lo), abs(hi)))
            else:
                code = f"\x1b[48;5;{GREY0 + int(round(x * (GREYS - 1)))}m"
            if code != last:
                out.append(code)
                last = code
            out.append("  ")
        out.append(RESET)
        return "".join(out)
    ramp = ASCII if kind == "ascii" else BLOCKS
    top = len(ramp) - 1
    for x, miss in zip(t, missing):
        out.append("  " if miss else ramp[int(round(x * top))] * 2)
    return "".join(out)


def _signed_colour(v, m):
    level = int(round(min(abs(v) / m, 1.0) * 5)) if m > 0 else 0
    return f"\x1b[48;5;{16 + (36 * level if v >= 0 else level)}m"


class Picture:
    """Lines of text `width` characters wide on screen (escape codes aside)."""

    def __init__(self, lines, width, title=""):
        self.lines, self.width, self.title = lines, max(width, len(title)), title

    def row(self, k):
        if k < len(self.lines):
            line = self.lines[k]
            return line + " " * (self.width - _visible(line))
        return " " * self.width


def _visible(line):
    """The width of a line on screen: without its escape sequences."""
    if "\x1b" not in line:
        return len(line)
    n, escape = 0, False
    for ch in line:
        if escape:
            escape = ch != "m"
        elif ch == "\x1b":
            escape = True
        else:
            n += 1
    return n


def grid(matrix, lo, hi, kind, title="", signed=False):
    matrix = np.atleast_2d(np.asarray(matrix, dtype=float))
    return Picture([cells(row, lo, hi, kind, signed) for row in matrix],
                   2 * matrix.shape[1], title)


def side_by_side(pictures, columns, gap=2):
    """Pictures left to right, titles above, wrapped at `columns`."""
    rows, line, used = [], [], 0
    for p in pictures:
        if line and used + gap + p.width > columns:
            rows.append(line)
            line, used = [], 0
        used += (gap if line else 0) + p.width
        line.append(p)
    if line:
        rows.append(line)
    out = []
    sep = " " * gap
    for group in rows:
        if any(p.title for p in group):
            out.append(sep.join(p.title.ljust(p.width) for p in group).rstrip())
        for k in range(max(len(p.lines) for p in group)):
            out.append(sep.join(p.row(k) for p in group).rstrip())
    return out


def value_range(values):
    """SN's convention, -1 .. +1, unless the values are clearly on another
    scale (say 0 .. 255), then their own range."""
    finite = np.asarray(values, dtype=float)
    finite = finite[np.isfinite(finite)]
    if len(finite) and (finite.min() < -2 or finite.max() > 2):
        return float(finite.min()), float(finite.max())
    return -1.0, 1.0


def emit(interp, lines):
    interp.write("".join(line.rstrip() + "\n" for line in lines))


# ---- patterns ---------------------------------------------------------------

def _matrix(interp, name, fn):
    m = interp.get(name)
    if not isinstance(m, np.ndarray) or m.ndim != 2:
        raise SNError(f"{fn}: {name} is not a 2-d matrix (one pattern per row): set it, "
                      f"use load-patterns, or (load-dataset 'usps)")
    return m


def _pattern_number(n, m, fn):
    if not is_number(n) or int(n) != n:
        raise SNError(f"{fn}: a pattern number must be an integer, not {to_string(n)}")
    if not 0 <= n < len(m):
        raise SNError(f"{fn}: pattern {int(n)} is not in 0..{len(m) - 1}")
    return int(n)


def pattern_shape(interp, size):
    """(planes, rows, cols) to draw a pattern of `size` values: the input
    layer's plane shape, else 16x16 for 256 values, else the nearest square."""
    layer_units = interp.get("input-layer", None)
    if layer_units is not None:
        try:
            layer = interp.net.layer_of(units_of(layer_units, "draw-pattern"))
        except SNError:
            layer = None
        if layer is not None and layer.shape and int(np.prod(layer.shape)) == size:
            return tuple(layer.shape)
    if size == 256:
        return (1, 16, 16)
    cols = max(1, math.ceil(math.sqrt(size)))
    return (1, math.ceil(size / cols), cols)


def planes_of(values, shape):
    """The planes of `values` as 2-d arrays, NaN-padded to the shape."""
    planes, rows, cols = shape
    padded = np.full(planes * rows * cols, np.nan)
    padded[: len(values)] = values
    return [padded[k * rows * cols:(k + 1) * rows * cols].reshape(rows, cols)
            for k in range(planes)]


def label_of(interp, n):
    """The class of pattern n (argmax of its desired row), or its desired
    value when there is only one output; None without desired values."""
    desired = interp.get("desired-matrix", None)
    if not isinstance(desired, np.ndarray) or desired.ndim != 2 or n >= len(desired):
        return None
    row = desired[n]
    if len(row) == 1:
        return f"desired {row[0]:g}"
    return f"label {int(np.argmax(row))}"


def pattern_picture(interp, n, kind, title=None):
    """The pictures of pattern n (one per plane) and its title."""
    patterns = _matrix(interp, "pattern-matrix", "draw-pattern")
    row = np.asarray(patterns[n], dtype=float)
    lo, hi = value_range(row)
    shape = pattern_shape(interp, len(row))
    planes = planes_of(row, shape)
    pictures = [grid(p, lo, hi, kind) for p in planes]
    if title is None:
        label = label_of(interp, n)
        title = f"pattern {n}" + (f"  {label}" if label else "")
    return pictures, title


@builtin("draw-pattern", interp=True)
def draw_pattern(interp, n):
    """(draw-pattern n): pattern n of pattern-matrix as grey levels, with its
    label (the largest value of its desired row)."""
    patterns = _matrix(interp, "pattern-matrix", "draw-pattern")
    n = _pattern_number(n, patterns, "draw-pattern")
    pictures, title = pattern_picture(interp, n, mode(interp))
    emit(interp, [title] + side_by_side(pictures, width(interp)))
    return None


# ---- layers -----------------------------------------------------------------

def _layer_units(interp, layer, fn):
    if isinstance(layer, Symbol):
        layer = interp.get(layer.name)
    units = units_of(layer, fn, interp.net)
    if len(units) == 0:
        raise SNError(f"{fn}: the layer is empty")
    return units


def layer_lines(interp, units, kind, columns, name=None):
    """The lines that draw the states of `units`: planes side by side for a
    layer with a plane shape, else one row of cells with their values."""
    net = interp.net
    layer = net.layer_of(units)
    values = net.x[units].astype(float)
    name = name or (layer.name if layer is not None else f"units {units[0]}..{units[-1]}")
    if layer is not None and layer.shape and layer.shape[1] * layer.shape[2] > 1:
        planes, rows, cols = layer.shape
        pictures = [grid(p, -1.0, 1.0, kind, title=str(k))
                    for k, p in enumerate(planes_of(values, layer.shape))]
        what = f"{planes} map{'s' if planes > 1 else ''} {rows}x{cols}"
        return [f"{name}: {what}"] + side_by_side(pictures, columns, gap=1)
    return [f"{name}: {len(units)} unit{'s' if len(units) > 1 else ''}"] + \
        flat_lines(values, kind, columns)


def flat_lines(values, kind, columns, marks=None):
    """Units as columns: number, cell, value; wrapped at `columns`."""
    texts = [f"{v:+.2f}" for v in values]
    w = max(5, max(len(t) for t in texts)) + 1
    per_row = max(1, columns // w)
    out = []
    for start in range(0, len(values), per_row):
        chunk = range(start, min(start + per_row, len(values)))
        out.append("".join(f"{i:>{w - 1}} " for i in chunk).rstrip())
        out.append("".join(" " * (w - 3) + cells([values[i]], -1.0, 1.0, kind) + " "
                           for i in chunk).rstrip())
        out.append("".join(f"{texts[i]:>{w - 1}} " for i in chunk).rstrip())
        if marks is not None:
            out.append("".join(f"{marks[i]:>{w - 1}} " for i in chunk).rstrip())
    return out


@builtin("draw-layer", interp=True)
def draw_layer(interp, layer):
    """(draw-layer l): the current states of the units of l, as grey levels
    (-1 blank, +1 full): maps side by side, or a row of cells with values."""
    units = _layer_units(interp, layer, "draw-layer")
    emit(interp, layer_lines(interp, units, mode(interp), width(interp)))
    return None


def net_layers(interp):
    """The layers to draw: those build-net recorded, else those of net-struc."""
    net = interp.net
    if net.layers:
        return [(layer.name, np.arange(layer.lo, layer.lo + layer.n)) for layer in net.layers]
    struc = interp.get("net-struc", None)
    layers = struc.car if isinstance(struc, Cons) else None
    out = []
    for k, layer in enumerate(py_list(layers) if isinstance(layers, Cons) else []):
        units = units_of(layer, "draw-net", net)
        if len(units):
            out.append((f"layer {k}", units))
    return out


@builtin("draw-net", interp=True)
def draw_net(interp, net_struc=None, pattern=None):
    """(draw-net): the states of every layer after the last forward pass.
    SN2.8 calls (draw-net net-struc pattern) from disp-net; scripts may
    redefine it."""
    kind, columns = mode(interp), width(interp)
    lines = []
    if pattern is not None:
        lines.append(f"age={interp.get('age')}  pattern={to_string(pattern)}")
    layers = net_layers(interp)
    if not layers:
        raise SNError("draw-net: no network: build it with build-net")
    for name, units in layers:
        lines += layer_lines(interp, units, kind, columns, name)
    emit(interp, lines)
    return None


# ---- weights ------------------------------------------------------------------

def kernel_shape(net, block):
    """(rows, cols) of a conv block's kernels, as its helper recorded them."""
    return block.kshape


def conv_blocks(net, lo, n):
    return [b for b in net.blocks
            if b.kind == "conv" and b.shared and lo <= b.dst_lo < lo + n]


def _layer_name(net, unit):
    for layer in net.layers:
        if layer.lo <= unit < layer.lo + layer.n:
            return layer.name
    return f"unit {unit}"


def kernel_lines(interp, blocks, name, kind, columns):
    net = interp.net
    kernels = []   # (block, in_plane, out_plane, weights as ysize x xsize)
    for block in blocks:
        ysize, xsize = kernel_shape(net, block)
        ntaps = block.taps.shape[0]
        for in_plane, out_plane, w_base in block.pairs:
            w = net.w[w_base:w_base + ntaps].astype(float).reshape(ysize, xsize)
            kernels.append((block, int(in_plane), int(out_plane), w))
    m = max(float(np.abs(k[3]).max()) for k in kernels) or 1.0
    shapes = sorted({f"{k[3].shape[0]}x{k[3].shape[1]}" for k in kernels})
    source = ", ".join(sorted({_layer_name(net, b.src_lo) for b in blocks}))
    lines = [f"{name}: {len(kernels)} kernel{'s' if len(kernels) > 1 else ''} "
             f"{'/'.join(shapes)} from {source}; weights -{m:.3g} (blank) .. +{m:.3g} (full)"]
    by_out = {}
    for block, i, o, w in kernels:
        by_out.setdefault((id(block), o), []).append((i, w))
    if all(len(v) == 1 for v in by_out.values()):
        pictures = [grid(w, -m, m, kind, title=f"{i}>{o}", signed=True)
                    for _, i, o, w in kernels]
        return lines + side_by_side(pictures, columns, gap=1)
    for (block_id, o), ks in by_out.items():
        src = next(_layer_name(net, b.src_lo) for b in blocks if id(b) == block_id)
        pictures = [grid(w, -m, m, kind, title=str(i), signed=True) for i, w in ks]
        lines.append(f"{name} map {o}, kernels from {src} maps:")
        lines += side_by_side(pictures, columns, gap=1)
    return lines


MAX_UNITS = 48


def unit_weight_lines(interp, units, name, kind, columns):
    """Each unit's incoming weights (bias aside), laid out as its source layer."""
    net = interp.net
    live = net.alive()
    conns = live[np.isin(net.cdst[live], units) & (net.csrc[live] != 0)]
    if len(conns) == 0:
        return [f"{name}: no incoming connections (bias aside)"]
    src, dst = net.csrc[conns], net.cdst[conns]
    w = net.w[net.cw[conns]].astype(float)
    m = float(np.abs(w).max()) or 1.0
    groups = []   # (source name, units, shape)
    seen = np.zeros(len(conns), dtype=bool)
    for layer in net.layers:
        inside = (src >= layer.lo) & (src < layer.lo + layer.n)
        if inside.any():
            groups.append((layer.name, layer.lo, layer.n, layer.shape))
            seen |= inside
    if not seen.all():
        rest = np.unique(src[~seen])
        groups.append(("other units", None, rest, None))
    shown = units[:MAX_UNITS]
    lines = [f"{name}: weights into each unit from "
             + ", ".join(g[0] for g in groups)
             + f"; -{m:.3g} (blank) .. +{m:.3g} (full)"
             + (f"; the first {len(shown)} of {len(units)} units" if len(units) > len(shown) else "")]
    pictures = []
    for k, u in enumerate(shown):
        parts = []
        mine = dst == u
        for gname, lo, n, shape in groups:
            if lo is None:
                index = {int(s): j for j, s in enumerate(n)}
                image = np.full(len(n), np.nan)
                for s, v in zip(src[mine], w[mine]):
                    if int(s) in index:
                        image[index[int(s)]] = v
                parts.append(image[None, :])
                continue
            flat = np.full(n, np.nan)
            sel = mine & (src >= lo) & (src < lo + n)
            flat[src[sel] - lo] = w[sel]
            if shape and shape[1] * shape[2] > 1:
                planes = planes_of(flat, shape)
                gapcol = np.full((shape[1], 1), np.nan)
                image = np.hstack([x for p in planes for x in (p, gapcol)][:-1])
            else:
                image = planes_of(flat, (1, math.ceil(n / math.ceil(math.sqrt(n))),
                                         math.ceil(math.sqrt(n))))[0] if n >= 16 else flat[None, :]
            parts.append(image)
        rows = max(p.shape[0] for p in parts)
        padded = [np.vstack([p, np.full((rows - p.shape[0], p.shape[1]), np.nan)]) for p in parts]
        image = np.hstack([x for p in padded for x in (p, np.full((rows, 1), np.nan))][:-1])
        pictures.append(grid(image, -m, m, kind, title=str(k), signed=True))
    return lines + side_by_side(pictures, columns, gap=1)


@builtin("draw-weights", interp=True)
def draw_weights(interp, layer):
    """(draw-weights l): the shared kernels feeding layer l (its conv blocks,
    one picture per pair of maps), else each unit's incoming weights laid out
    as its source layer. Signed: -max blank, +max full (red/blue in colour)."""
    net = interp.net
    units = _layer_units(interp, layer, "draw-weights")
    recorded = net.layer_of(units)
    name = recorded.name if recorded is not None else f"units {units[0]}..{units[-1]}"
    blocks = conv_blocks(net, int(units[0]), len(units)) if recorded is not None else []
    kind, columns = mode(interp), width(interp)
    if blocks:
        emit(interp, kernel_lines(interp, blocks, name, kind, columns))
    else:
        emit(interp, unit_weight_lines(interp, units, name, kind, columns))
    return None


# ---- stepping -----------------------------------------------------------------

def _check_training_set(interp, fn):
    from .netenv import matrices, pattern_range
    patterns, _ = matrices(interp, fn)
    lo, hi = pattern_range(interp, interp.get("patt-min"), interp.get("patt-max"), fn,
                           len(patterns))
    current = interp.get("current-pattern")
    if not is_number(current) or not 0 <= current < len(patterns):
        interp.set("current-pattern", lo)


def _one_iteration(interp, p):
    if interp.get("step-lm", None) is not None:
        sym = interp.intern("lev-mar")
        saved = sym.value
        sym.value = interp.T
        try:
            interp.call(interp.get("basic-newton-iteration"), [p])
        finally:
            sym.value = saved
    else:
        interp.call(interp.get("basic-iteration"), [p])


@builtin("step", interp=True)
def step(interp, n=1):
    """(step [n]): n learning iterations on current-pattern, each followed by
    next-pattern (basic-newton-iteration with lev-mar when step-lm is set,
    else basic-iteration); then show the last pattern, the outputs against
    the desired values, the error and whether the answer was right."""
    if not is_number(n) or int(n) != n or n < 1:
        raise SNError(f"step: the number of iterations must be a positive integer, "
                      f"not {to_string(n)}")
    _check_training_set(interp, "step")
    p = None
    for _ in range(int(n)):
        p = interp.get("current-pattern")
        _one_iteration(interp, p)
        interp.set("current-pattern", interp.call(interp.get("next-pattern"), [p]))
    show_step(interp, int(p))
    return interp.get("local-error")


def show_step(interp, p):
    """The pattern, the outputs against the desired values, the error."""
    net = interp.net
    kind, columns = mode(interp), width(interp)
    out = units_of(interp.get("output-layer"), "step", net)
    des = units_of(interp.get("desired-layer"), "step", net)
    y, d = net.x[out].astype(float), net.x[des].astype(float)
    pictures, title = pattern_picture(interp, p, kind)
    table = ["out  output  desired"]
    best, want = int(np.argmax(y)), int(np.argmax(d))
    for i in range(len(y)):
        mark = ("<" if i == best else " ") + ("*" if i == want else " ") if len(y) > 1 else ""
        table.append(f"{i:>3}  " + cells([y[i]], -1.0, 1.0, kind) + f"{y[i]:+7.3f}  "
                     f"{d[i]:+6.2f} {mark}".rstrip())
    if len(y) > 1:
        table.append("(< largest output, * desired class)")
    right = interp.get("good-answer") is not None
    lines = [title]
    if len(y) <= 20:
        pictures = pictures + [Picture(table, max(_visible(t) for t in table))]
        lines += side_by_side(pictures, columns, gap=3)
    else:
        lines += side_by_side(pictures, columns)
        lines += flat_lines(y, kind, columns)
    lines.append(f"age={interp.get('age')}  pattern={p}  error={interp.get('local-error'):9.5f}  "
                 f"{'  ok  ' if right else '**arrgh**'}")
    emit(interp, lines)


# ---- SN2.8's display hooks ------------------------------------------------------

@builtin("disp-nil", interp=True)
def disp_nil(interp, n=None):
    return None


@builtin("disp-user", interp=True)
def disp_user(interp, n=None):
    """Displays nothing; a script redefines it, then calls (set-disp-user)."""
    return None


@builtin("disp-text", interp=True)
def disp_text(interp, n):
    interp.write(f"age={interp.get('age')}  pattern={n}  error={interp.get('local-error'):9.5f}  "
                 f"{'  ok  ' if interp.get('good-answer') is not None else '**arrgh**'}\n")
    return None


@builtin("plot-error", interp=True)
def plot_error(interp, age, err):
    """SN2.8 plots the instantaneous error against age; here a line with a bar
    (full at disp-error-maxerr, 1 by default)."""
    scale = interp.get("disp-error-maxerr", None)
    scale = float(scale) if is_number(scale) and scale > 0 else 1.0
    err = number(err, "plot-error")
    n = int(round(min(err / scale, 1.0) * 40)) if math.isfinite(err) else 40
    bar = ("#" if mode(interp) == "ascii" else "█") * n
    more = ">" if err > scale else ""
    interp.write(f"age={to_string(age):>6}  error={err:9.5f} |{bar}{more}\n")
    return None


@builtin("disp-error", interp=True)
def disp_error(interp, n=None):
    return interp.call(interp.get("plot-error"), [interp.get("age"), interp.get("local-error")])


@builtin("disp-net", interp=True)
def disp_net(interp, n=None):
    return interp.call(interp.get("draw-net"), [interp.get("net-struc", None), n])


@builtin("disp-everything", interp=True)
def disp_everything(interp, n=None):
    """The network's states, then the text line and the error."""
    interp.call(interp.get("draw-net"), [interp.get("net-struc", None), n])
    disp_text(interp, n)
    return None


def _set_disp(interp, name, basic, perf):
    interp.set("disp-basic-iteration", interp.get(basic))
    interp.set("disp-perf-iteration", interp.get(perf))
    return interp.intern(name)


# name -> (disp-basic-iteration, disp-perf-iteration), as SN2.8's netenv.sn
DISPLAYS = {
    "disp-nil": ("disp-nil", "disp-nil"),
    "disp-text": ("disp-text", "disp-text"),
    "disp-net": ("disp-net", "disp-net"),
    "disp-error": ("disp-error", "disp-nil"),
    "disp-everything": ("disp-everything", "disp-nil"),
    "disp-net-and-error": ("disp-error", "disp-net"),
    "disp-user": ("disp-user", "disp-user"),
}


def _define_set_disp(name, basic, perf):
    def set_disp(interp):
        return _set_disp(interp, name, basic, perf)
    set_disp.__doc__ = f"disp-basic-iteration: {basic}, disp-perf-iteration: {perf}."
    builtin("set-" + name, interp=True)(set_disp)


for _name, (_basic, _perf) in DISPLAYS.items():
    _define_set_disp(_name, _basic, _perf)


# ---- SN2.8's window graphics ------------------------------------------------------

class Window:
    """What new-window returns: the terminal stands for every window."""

    def __repr__(self):
        return "::window:terminal"


def notice(interp, name):
    if not interp.graphics_noticed:
        interp.graphics_noticed = True
        interp.write(f"sn: graphics call {name} ignored (no windows in a terminal)\n")


IGNORED = (
    "cls", "init-error-plotting", "init-perf-plotting", "cancel-error-plotting",
    "cancel-perf-plotting", "draw-value", "plt-draw", "plt-plot", "plt-move", "plt-clear",
    "new-plot-port", "copy-plot-port", "draw-axes", "nice-brect", "plot-lists", "draw-line",
    "draw-rect", "fill-rect", "draw-circle", "fill-circle", "draw-up-rect", "draw-down-rect",
    "fill-up-rect", "fill-down-rect", "fill-polygon", "color", "color-rgb", "font",
    "linestyle", "gspecial", "open-circle", "closed-circle", "reset-training-ports",
    "reset-test-ports", "auto-plot-training", "auto-plot-test", "draw-matrix-points",
    "gray-draw-matrix", "rgb-draw-matrix", "draw-pixel", "init-disp-error", "xor-mode",
    "graphics-sync",
)


def _define_ignored(name):
    def ignored(interp, *args):
        notice(interp, name)
        return None
    ignored.__doc__ = "SN2.8 window graphics: accepted and ignored in a terminal."
    builtin(name, interp=True)(ignored)


for _name in IGNORED:
    _define_ignored(_name)


@builtin("new-window", interp=True)
def new_window(interp, *args):
    """SN2.8 opens a graphic window; here drawings go to the terminal."""
    notice(interp, "new-window")
    return Window()


@builtin("colorp", interp=True)
def colorp(interp):
    return None


def _coordinate(x):
    return float(x) if is_number(x) else 0.0


def draw_item(interp, x, y, lines, visible):
    """Print a drawing now, or keep it for the end of the graphics-batch."""
    if interp.graphics_batch is not None:
        interp.graphics_batch.append((_coordinate(y), _coordinate(x), lines, visible))
    else:
        emit(interp, lines)


@special("graphics-batch")
def graphics_batch(interp, body):
    """(graphics-batch body...): evaluate the body; its drawings come out
    together, those at the same height side by side, ordered as on the window."""
    if interp.graphics_batch is not None:
        return interp.progn(body)
    interp.graphics_batch = items = []
    try:
        result = interp.progn(body)
    finally:
        interp.graphics_batch = None
    emit(interp, batch_lines(items))
    return result


def batch_lines(items):
    if not items:
        return []
    left = min(x for _, x, _, _ in items)
    out = []
    bands = {}
    for y, x, lines, visible in items:
        bands.setdefault(y, []).append((x, lines, visible))
    for y in sorted(bands):
        band = sorted(bands[y], key=lambda item: item[0])
        rows = max(len(lines) for _, lines, _ in band)
        texts = [""] * rows
        used = 0
        for x, lines, visible in band:
            col = max(used + (2 if used else 0), min(int((x - left) // 8), 60))
            for k in range(rows):
                line = lines[k] if k < len(lines) else ""
                texts[k] += " " * (col - _visible(texts[k])) + line
            used = col + visible
        out += [t.rstrip() for t in texts]
    return out


def _values(x, fn):
    if isinstance(x, np.ndarray):
        return np.asarray(x, dtype=float).ravel()
    if x is None or isinstance(x, Cons):
        items = py_list(x)
        if not all(is_number(v) for v in items):
            raise SNError(f"{fn}: the list must hold numbers: {to_string(x)}")
        return np.asarray(items, dtype=float)
    if is_number(x):
        return np.asarray([x], dtype=float)
    raise SNError(f"{fn}: expects a list of numbers or a matrix, not {to_string(x)}")


def _list_grid(interp, values, ncol, lo, hi, fn):
    if not is_number(ncol) or int(ncol) != ncol or ncol < 1:
        raise SNError(f"{fn}: the number of columns must be a positive integer, not {to_string(ncol)}")
    ncol = int(ncol)
    rows = max(1, math.ceil(len(values) / ncol))
    matrix = np.full(rows * ncol, np.nan)
    matrix[: len(values)] = values
    picture = grid(matrix.reshape(rows, ncol), lo, hi, mode(interp))
    return picture.lines, picture.width


@builtin("gray-draw-list", interp=True)
def gray_draw_list(interp, x, y, values, ncol, maxv, minv, apart=None):
    """(gray-draw-list x y l ncol maxv minv apart): the list as a grid of ncol
    columns of grey levels, minv blank, maxv full."""
    values = _values(values, "gray-draw-list")
    lines, visible = _list_grid(interp, values, ncol, number(minv, "gray-draw-list"),
                                number(maxv, "gray-draw-list"), "gray-draw-list")
    draw_item(interp, x, y, lines, visible)
    return None


@builtin("draw-list", interp=True)
def draw_list(interp, x, y, values, ncol, maxv, apart=None, area=None):
    """(draw-list x y l ncol maxv apart area): SN2.8 draws Hinton squares;
    here grey levels from -maxv (blank) to +maxv (full)."""
    values = _values(values, "draw-list")
    m = abs(number(maxv, "draw-list")) or 1.0
    lines, visible = _list_grid(interp, values, ncol, -m, m, "draw-list")
    draw_item(interp, x, y, lines, visible)
    return None


@builtin("gprintf", "draw-text", interp=True)
def gprintf(interp, x, y, text, *args):
    """(gprintf x y text): the text, where the window would show it."""
    if args:
        from .builtins import sprintf
        text = sprintf(text, *args)
    text = to_string(text, readably=False)
    draw_item(interp, x, y, text.split("\n"), max(len(t) for t in text.split("\n")))
    return None


# ---- misclassified digits in the terminal ------------------------------------------

@builtin("draw-misses", interp=True)
def draw_misses(interp, count=8):
    """(draw-misses [n]): the first n (default 8) misclassified patterns of the
    test set (the training set when there is none), with their true and
    predicted classes; returns the number of misses."""
    from .plot import misses
    if not is_number(count) or int(count) != count or count < 1:
        raise SNError(f"draw-misses: expects a positive number of patterns, not {to_string(count)}")
    found, lo, hi = misses(interp, "draw-misses")
    kind = mode(interp)
    pictures = []
    for p, true, pred in found[: int(count)]:
        planes, _ = pattern_picture(interp, p, kind, title="")
        planes[0].title = f"{p}: {true}>{pred}"
        planes[0].width = max(planes[0].width, len(planes[0].title))
        pictures += planes
    total = hi - lo + 1
    lines = [f"{len(found)} misclassified of {total} patterns ({lo}-{hi})"
             + (f"; the first {len(pictures)}, as pattern: true>predicted" if found else "")]
    emit(interp, lines + side_by_side(pictures, width(interp)))
    return len(found)
