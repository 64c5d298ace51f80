"""Pictures in files: training curves from a perf-file, misclassified digits.

matplotlib is optional (pip install -e '.[plot]'); without it these raise an
SNError that says how to install it. Figures are drawn with the Agg backend
(no window, no pyplot state) and written atomically.

    python -m sn plot PERF-FILE [-o curve.png]
    python -m sn errors FILE WEIGHTS [-o misses.png]
    (plot-perf ["curve.png"])      the current perf-file
    (save-misses "misses.png")     the misclassified test patterns
"""

import math
import os
import re

import numpy as np

from .data import atomic_open
from .datum import to_string
from .errors import SNError
from .registry import builtin

MAX_MISSES = 100

PERF_LINE = re.compile(r"^\s*(-?\d+)\s+(\S+)\s+(\S+)\s*;\s*\{(\d+)-(\d+)\}")
RANGE_NOTE = re.compile(r"^;;;\s*\((ensemble|test-set)\s+(\d+)\s+(\d+)\)")


def matplotlib_figure(what):
    """A new Figure on an Agg canvas, or an SNError saying how to get matplotlib."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        raise SNError(f"{what} needs matplotlib, which is not installed: "
                      "pip install -e '.[plot]' (in sn's folder), or pip install matplotlib"
                      ) from None

    def new(**kwargs):
        fig = Figure(**kwargs)
        FigureCanvasAgg(fig)
        return fig
    return new


def save_figure(fig, path):
    """Write the figure to `path` atomically; the format follows the extension."""
    ext = os.path.splitext(path)[1].lower().lstrip(".") or "png"
    if ext not in ("png", "pdf", "svg", "jpg", "jpeg", "eps", "ps"):
        raise SNError(f"{path}: unknown picture format .{ext} (use .png, .pdf or .svg)")
    with atomic_open(path, "wb") as f:
        fig.savefig(f, format=ext, dpi=120, bbox_inches="tight")
    return path


# ---- training curves ---------------------------------------------------------

def read_perf(path):
    """The curves of a perf-file: {(first, last): [(age, error, performance)]},
    in order of appearance, and the ranges named by its ensemble and test-set
    notes."""
    try:
        with open(path, encoding="utf-8") as f:
            lines = f.read().splitlines()
    except OSError as err:
        raise SNError(f"cannot read the perf-file {path}: {err.strerror or err}") from None
    curves, notes = {}, {}
    for line in lines:
        m = PERF_LINE.match(line)
        if m:
            try:
                point = (int(m.group(1)), float(m.group(2)), float(m.group(3)))
            except ValueError:
                continue
            curves.setdefault((int(m.group(4)), int(m.group(5))), []).append(point)
            continue
        m = RANGE_NOTE.match(line)
        if m:
            notes[m.group(1)] = (int(m.group(2)), int(m.group(3)))
    return curves, notes


def curve_names(curves, notes):
    """training/test names for the ranges: from the notes, else the first
    range is the training set and the others test sets."""
    names = {}
    for k, key in enumerate(curves):
        if key == notes.get("ensemble"):
            role = "training"
        elif key == notes.get("test-set"):
            role = "test"
        elif "ensemble" in notes:
            role = "test"
        else:
            role = "training" if k == 0 else "test"
        names[key] = f"{role} {{{key[0]}-{key[1]}}}"
    return names


def plot_perf(perf_path, out_path, title=None):
    """Error and performance against age, one curve per pattern range."""
    new_figure = matplotlib_figure("plotting a perf-file")
    curves, notes = read_perf(perf_path)
    if not curves:
        raise SNError(f"{perf_path}: no perf lines (age error performance ;{{first-last}})")
    names = curve_names(curves, notes)
    fig = new_figure(figsize=(9, 3.8))
    err_ax, perf_ax = fig.subplots(1, 2)
    for key, points in curves.items():
        points = sorted(points)
        ages = [p[0] for p in points]
        style = "o-" if len(points) < 40 else "-"
        err_ax.plot(ages, [p[1] for p in points], style, markersize=3, label=names[key])
        perf_ax.plot(ages, [p[2] for p in points], style, markersize=3, label=names[key])
    err_ax.set_xlabel("age (patterns learned)")
    err_ax.set_ylabel("error")
    errors = [p[1] for pts in curves.values() for p in pts]
    if min(errors) > 0 and max(errors) / min(errors) > 20:
        err_ax.set_yscale("log")
    perf_ax.set_xlabel("age (patterns learned)")
    perf_ax.set_ylabel("performance (% right)")
    for ax in (err_ax, perf_ax):
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(title or os.path.basename(perf_path))
    return save_figure(fig, out_path)


@builtin("plot-perf", interp=True)
def plot_perf_(interp, out=None):
    """(plot-perf ["curve.png"]): the training and test curves of the current
    perf-file (error and performance against age) into a picture file,
    by default the perf-file's name with .png."""
    perf_file = interp.get("perf-file")
    if not perf_file or not isinstance(perf_file, str):
        raise SNError("plot-perf: no perf-file: (setq perf-file \"run.perf\") before training")
    if out is None:
        out = os.path.splitext(perf_file)[0] + ".png"
    if not isinstance(out, str):
        raise SNError(f"plot-perf: the file name must be a string, not {to_string(out)}")
    plot_perf(interp.resolve(perf_file), interp.resolve(out))
    interp.write(f"curves of {perf_file} written to {out}\n")
    return out


# ---- misclassified patterns -----------------------------------------------------

def misses(interp, fn, lo=None, hi=None):
    """The misclassified patterns of lo..hi (the test set by default, else the
    training set): [(pattern, true class, predicted class)], lo, hi. The class
    is the largest output (its sign for a single output)."""
    from .netenv import matrices, outputs_on, pattern_range
    patterns, desired = matrices(interp, fn)
    if lo is None:
        lo, hi = interp.get("tpatt-min"), interp.get("tpatt-max")
        if lo is None:
            lo, hi = interp.get("patt-min"), interp.get("patt-max")
    lo, hi = pattern_range(interp, lo, hi, fn, len(patterns))
    _, ranks, signs = outputs_on(interp, patterns, desired, lo, hi)
    if desired.shape[1] == 1:
        true = (desired[lo:hi + 1, 0] > 0).astype(int)
        wrong = np.flatnonzero(~signs)
        found = [(lo + int(k), int(true[k]), 1 - int(true[k])) for k in wrong]
    else:
        true = np.argmax(desired[lo:hi + 1], axis=1)
        pred = ranks
        wrong = np.flatnonzero(pred != true)
        found = [(lo + int(k), int(true[k]), int(pred[k])) for k in wrong]
    return found, lo, hi


def save_misses(interp, out_path, limit=MAX_MISSES, fn="save-misses"):
    """A grid of the misclassified test patterns (at most `limit`), each
    titled with its true and predicted class. Returns (found, lo, hi)."""
    from .display import pattern_shape, value_range
    new_figure = matplotlib_figure(fn)
    found, lo, hi = misses(interp, fn)
    patterns = interp.get("pattern-matrix")
    shown = found[:limit]
    ncols = min(10, max(len(shown), 1))
    nrows = max(1, math.ceil(len(shown) / ncols))
    fig = new_figure(figsize=(1.1 * ncols + 0.4, 1.25 * nrows + 0.7))
    axes = np.atleast_1d(fig.subplots(nrows, ncols, squeeze=False, gridspec_kw={"hspace": 0.6}).ravel())
    for ax in axes:
        ax.set_axis_off()
    for ax, (p, true, pred) in zip(axes, shown):
        row = np.asarray(patterns[p], dtype=float)
        planes, rows, cols = pattern_shape(interp, len(row))
        image = np.full(rows * cols, np.nan)
        image[: min(len(row), rows * cols)] = row[: rows * cols]
        vmin, vmax = value_range(row)
        ax.imshow(image.reshape(rows, cols), cmap="gray_r", vmin=vmin, vmax=vmax,
                  interpolation="nearest")
        ax.set_title(f"{true}→{pred}", fontsize=9, color="firebrick")
        ax.text(0.5, -0.08, str(p), transform=ax.transAxes, ha="center", va="top",
                fontsize=6, color="grey")
    total = hi - lo + 1
    head = f"{len(found)} misclassified of {total} patterns ({lo}-{hi}): true→predicted"
    if len(found) > len(shown):
        head += f", the first {len(shown)}"
    fig.suptitle(head, fontsize=10)
    save_figure(fig, out_path)
    return found, lo, hi


@builtin("save-misses", interp=True)
def save_misses_(interp, out="misses.png"):
    """(save-misses "f.png"): the misclassified patterns of the test set (at
    most 100), with their true and predicted classes, into a picture file;
    returns the number of misses."""
    if not isinstance(out, str):
        raise SNError(f"save-misses: the file name must be a string, not {to_string(out)}")
    found, lo, hi = save_misses(interp, interp.resolve(out))
    interp.write(f"{len(found)} misclassified of {hi - lo + 1} patterns ({lo}-{hi}); "
                 f"{min(len(found), MAX_MISSES)} drawn in {out}\n")
    return len(found)


# ---- the command line -------------------------------------------------------------

def run_plot(perf_path, out=None, stream=None):
    out = out or os.path.splitext(perf_path)[0] + ".png"
    plot_perf(perf_path, out)
    if stream is not None:
        stream.write(f"curves of {perf_path} written to {out}\n")
    return out


def run_errors(path, weights, out="misses.png", stream=None):
    """Load a network file's top-level forms, its weights (load-net), then
    draw the misclassified test patterns."""
    from .interpreter import Interpreter
    import io
    matplotlib_figure("sn errors")  # fail before the long part
    if not os.path.isfile(weights):
        raise SNError(f"no such weight file: {weights}")
    interp = Interpreter(out=io.StringIO())
    interp.load(os.path.abspath(path))
    interp.call(interp.get("load-net"), [os.path.abspath(weights)])
    found, lo, hi = save_misses(interp, out, fn="errors")
    if stream is not None:
        stream.write(f"{len(found)} misclassified of {hi - lo + 1} patterns ({lo}-{hi}), "
                     f"error {100.0 * len(found) / (hi - lo + 1):.2f}%; "
                     f"{min(len(found), MAX_MISSES)} drawn in {out}\n")
    return found
