"""Training and measurement: SN2.8's netenv (learn, run, trun, perf ...).

The steps of an iteration are Lisp-visible hooks, as in SN2.8:
present-pattern, forward-prop, present-desired, backward-prop,
backward-2-prop, do-update-weight(-newton), classify, disp-basic-iteration.
When none of them has been redefined, whole passes run inside the kernels;
when one has (say present-pattern, to add noise), each iteration goes through
the hooks from Lisp, more slowly, with the same arithmetic.
"""

import math
import os
import time

import numpy as np

from . import kernels as K
from .compile import buffers, compiled
from .builtins import sprintf
from .data import load_dataset, load_matrix
from .datum import Deferred, Keyword, is_number, to_string
from .errors import SNError
from .netlib import lisp_list, number, units_of
from .nlf import Nlf
from . import modern
from .registry import REGISTRY, builtin

CHUNK = 1024  # patterns per kernel call: Ctrl-C and progress reports between chunks

GLOBALS = {
    "pattern-matrix": None, "desired-matrix": None, "patt-min": None, "patt-max": None,
    "tpatt-min": None, "tpatt-max": None, "current-pattern": 0, "local-error": 0,
    "good-answer": None, "global-error": 0, "good-an-num": 0, "good-an-percent": 0,
    "perf-file": None, "confidence": 90, "out-class": None, "des-class": None,
}

# hook -> the builtin that is its default; the fast path needs them all unchanged
HOOKS = ("present-pattern", "present-desired", "forward-prop", "backward-prop",
         "backward-2-prop", "do-update-weight", "do-update-weight-newton",
         "basic-iteration", "basic-newton-iteration", "test-pattern", "do-compute-err")


def setup(interp):
    for name, value in GLOBALS.items():
        interp.set(name, value)
    interp.set("classify", REGISTRY["class-quadrant"])
    interp.set("next-choice", REGISTRY["nextcho-seq"])
    interp.set("next-pattern", REGISTRY["nextpat-seq"])
    interp.set("init-grad", REGISTRY["init-grad-lms"])
    interp.set("disp-basic-iteration", REGISTRY["disp-nil"])
    interp.set("disp-perf-iteration", REGISTRY["disp-nil"])
    interp.progress = None  # callback(done, total, seconds) while a pass runs
    interp.learning = False  # inside an iteration that learns (dropout, shifts apply)


# ---- data ------------------------------------------------------------------

def matrices(interp, fn):
    """The pattern and desired matrices, checked against the network."""
    patterns = interp.get("pattern-matrix")
    desired = interp.get("desired-matrix")
    if patterns is None or desired is None:
        raise SNError(f"{fn}: no patterns: set pattern-matrix and desired-matrix, "
                      "use load-patterns, or (load-dataset 'usps)")
    for name, m in (("pattern-matrix", patterns), ("desired-matrix", desired)):
        if not isinstance(m, np.ndarray) or m.ndim != 2:
            raise SNError(f"{fn}: {name} must be a 2-d matrix (one pattern per row), "
                          f"not {to_string(m)}")
    if len(patterns) != len(desired):
        raise SNError(f"{fn}: pattern-matrix has {len(patterns)} rows but desired-matrix "
                      f"has {len(desired)}")
    net = interp.net
    n_in = len(units_of(interp.get("input-layer"), "input-layer", net))
    n_out = len(units_of(interp.get("output-layer"), "output-layer", net))
    if patterns.shape[1] != n_in:
        raise SNError(f"{fn}: patterns have {patterns.shape[1]} values but the input layer "
                      f"has {n_in} units")
    if desired.shape[1] != n_out:
        raise SNError(f"{fn}: desired rows have {desired.shape[1]} values but the output "
                      f"layer has {n_out} units")
    return patterns, desired


def pattern_range(interp, lo, hi, fn, npatterns):
    if lo is None or hi is None:
        raise SNError(f"{fn}: no pattern range: set it with (ensemble first last)")
    for v in (lo, hi):
        if not is_number(v) or int(v) != v:
            raise SNError(f"{fn}: a pattern number must be an integer, not {to_string(v)}")
    lo, hi = int(lo), int(hi)
    if lo > hi:
        raise SNError(f"{fn}: the range {lo}-{hi} is empty")
    if lo < 0 or hi >= npatterns:
        raise SNError(f"{fn}: the range {lo}-{hi} is outside the {npatterns} patterns "
                      f"(0-{npatterns - 1})")
    return lo, hi


@builtin("ensemble", interp=True)
def ensemble(interp, lo, hi):
    """The training set: patterns lo..hi (inclusive)."""
    lo, hi = _range_args(lo, hi, "ensemble")
    interp.set("patt-min", lo)
    interp.set("patt-max", hi)
    current = interp.get("current-pattern")
    if not is_number(current) or not lo <= current <= hi:
        interp.set("current-pattern", lo)
    save_perf(interp, f";;; (ensemble {lo} {hi})\n")
    return None


@builtin("test-set", interp=True)
def test_set(interp, lo, hi):
    """The test set: patterns lo..hi (inclusive)."""
    lo, hi = _range_args(lo, hi, "test-set")
    interp.set("tpatt-min", lo)
    interp.set("tpatt-max", hi)
    n = hi - lo + 1
    conf = interp.get("confidence")
    interval = 100 * math.sqrt(-math.log((1 - conf / 100) / 2) / (2 * n))  # Hoeffding
    interp.write(f"** Test set size = {n}, {conf:g}% confidence interval = +-{interval:.2f}%.\n")
    save_perf(interp, f";;; (test-set {lo} {hi})\n")
    return None


def _range_args(lo, hi, fn):
    for v in (lo, hi):
        if not is_number(v) or int(v) != v:
            raise SNError(f"{fn}: a pattern number must be an integer, not {to_string(v)}")
    if lo > hi:
        raise SNError(f"{fn}: first argument must be smaller than second one")
    return int(lo), int(hi)


@builtin("get-pattern", interp=True)
def get_pattern(interp, matrix, n, layer):
    """Copy row n of a matrix into the states of the units of a layer."""
    if not isinstance(matrix, np.ndarray) or matrix.ndim != 2:
        raise SNError(f"get-pattern: not a 2-d matrix: {to_string(matrix)}")
    units = units_of(layer, "get-pattern", interp.net)
    if not is_number(n) or not 0 <= n < len(matrix):
        raise SNError(f"get-pattern: pattern {to_string(n)} is not in 0..{len(matrix) - 1}")
    if len(units) != matrix.shape[1]:
        raise SNError(f"get-pattern: rows have {matrix.shape[1]} values, the layer "
                      f"{len(units)} units")
    interp.net.x[units] = matrix[int(n)]
    return None


@builtin("gauss-state", interp=True)
def gauss_state(interp, layer, sigma):
    """Add gaussian noise of deviation sigma to the states of a layer."""
    units = units_of(layer, "gauss-state", interp.net)
    interp.net.x[units] += interp.rng.standard_normal(len(units)) * number(sigma, "gauss-state")
    return None


@builtin("load-patterns", interp=True)
def load_patterns(interp, pattern_file, desired_file):
    """Read the pattern and desired matrices from SN matrix files (binary,
    packed, ascii .MAT or .npy); the training set becomes all the patterns."""
    for name in (pattern_file, desired_file):
        if not isinstance(name, str):
            raise SNError(f"load-patterns: a file name must be a string, not {to_string(name)}")
    patterns = _as_rows(load_matrix(interp.resolve(pattern_file)), pattern_file)
    desired = _as_rows(load_matrix(interp.resolve(desired_file)), desired_file)
    if len(patterns) != len(desired):
        interp.write("***WARNING: pattern file and desired output file have\n"
                     "            different numbers of elements\n")
    interp.set("pattern-matrix", patterns)
    interp.set("desired-matrix", desired)
    save_perf(interp, f";;; (load-patterns {pattern_file!r} {desired_file!r})\n")
    ensemble(interp, 0, min(len(patterns), len(desired)) - 1)
    return None


def _as_rows(m, name):
    if m.ndim == 1:
        return m.reshape(-1, 1)
    if m.ndim != 2:
        return m.reshape(m.shape[0], -1)
    return m


@builtin("data-file", interp=True)
def data_file(interp, name):
    """(data-file "sn28/dig.pat"): the path of a data file, looked for in the
    folder named by SN_DATA (with or without its subfolder) and in the cache."""
    if not isinstance(name, str):
        raise SNError(f"data-file: the name must be a string, not {to_string(name)}")
    sub, _, base = name.rpartition("/")
    places = []
    root = os.environ.get("SN_DATA")
    if root:
        places += [os.path.join(root, name), os.path.join(root, base)]
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    places.append(os.path.join(cache, "sn", name))
    for place in places:
        if os.path.isfile(place):
            return place
    raise SNError(f"data-file: {name} not found; looked in: " + ", ".join(places)
                  + ". Put the file in the folder named by SN_DATA.")


DATASET_SIZES = {"usps": (7291, 2007), "mnist16": (7291, 2007)}


@builtin("load-dataset", interp=True)
def load_dataset_(interp, name, *options):
    """(load-dataset 'usps [:mnist n]) or (load-dataset 'mnist16 [:train n]
    [:test n]): the pattern and desired matrices (read on first use), the
    training range (ensemble) and the test range (test-set). :mnist adds n
    MNIST digits framed as USPS's to the USPS training patterns."""
    name = to_string(name, readably=False)
    if name not in DATASET_SIZES:
        raise SNError(f"load-dataset: unknown data set {name}: known are usps, mnist16")
    kwargs = _dataset_options(name, options)
    n_train = kwargs.get("n_train", DATASET_SIZES[name][0]) + kwargs.get("mnist", 0)
    n_test = kwargs.get("n_test", DATASET_SIZES[name][1])
    loaded = {}

    def data():
        if "set" not in loaded:
            loaded["set"] = load_dataset(name, **kwargs)
        return loaded["set"]

    interp.set("pattern-matrix", Deferred(f"{name} patterns", lambda: np.array(data().patterns)))
    interp.set("desired-matrix", Deferred(f"{name} desired", lambda: np.array(data().desired)))
    interp.set("dataset-labels", Deferred(f"{name} labels", lambda: np.array(data().labels, dtype=float)))
    ensemble(interp, 0, n_train - 1)
    interp.set("tpatt-min", n_train)
    interp.set("tpatt-max", n_train + n_test - 1)
    return interp.intern(name)


def _dataset_options(name, options):
    if len(options) % 2:
        raise SNError("load-dataset: options are :keyword value pairs")
    kwargs = {}
    for key, value in zip(options[::2], options[1::2]):
        if not isinstance(key, Keyword) or key.name not in _DATASET_OPTIONS:
            raise SNError(f"load-dataset: unknown option {to_string(key)} (known: "
                          + ", ".join(_DATASET_OPTIONS) + ")")
        owner, argument, least, most = _DATASET_OPTIONS[key.name]
        if name != owner:
            raise SNError(f"load-dataset: {key.name} applies to {owner}, not {name}")
        if not is_number(value) or int(value) != value or not least <= value <= most:
            raise SNError(f"load-dataset: {key.name} needs a number of patterns from {least} "
                          f"to {most}, not {to_string(value)}")
        kwargs[argument] = int(value)
    return kwargs


# option: (data set, loader argument, fewest and most patterns)
_DATASET_OPTIONS = {":train": ("mnist16", "n_train", 1, 60000),
                    ":test": ("mnist16", "n_test", 1, 10000),
                    ":mnist": ("usps", "mnist", 0, 60000)}


# ---- the steps of an iteration ----------------------------------------------

def current(interp):
    """The compiled network (sparse only after (set-plan 'sparse); epsilons of
    1 under AdamW, whose accumulators must hold the plain gradient)."""
    return compiled(interp, all_sparse=getattr(interp, "sparse_only", False),
                    unit_eps=modern.adamw(interp) is not None)


def _plan(interp):
    return current(interp).plan


@builtin("set-plan", interp=True)
def set_plan(interp, kind):
    """(set-plan 'sparse) runs every connection through the generic sparse
    kernel; (set-plan 'blocks), the default, uses the helpers' dense blocks."""
    name = to_string(kind, readably=False)
    if name not in ("sparse", "blocks"):
        raise SNError(f"set-plan: expects sparse or blocks, not {name}")
    interp.sparse_only = name == "sparse"
    return kind


@builtin("present-pattern", interp=True)
def present_pattern(interp, layer, n):
    get_pattern(interp, interp.get("pattern-matrix"), n, layer)
    if modern.state(interp).shift > 0 and interp.learning:
        _shift_input(interp, layer, n)
    noise = interp.get("input-noise")
    if is_number(noise) and noise != 0:
        gauss_state(interp, layer, noise)
    return None


def _shift_input(interp, layer, n):
    """The pattern translated by a random shift (augment-shift), while learning."""
    state = modern.state(interp)
    dy, dx = modern.draw_shift(interp)
    shape = np.asarray(modern.input_shape(interp), dtype=np.int64)
    K.present_shifted(_plan(interp), interp.net.x[: interp.net.nunits],
                      np.ascontiguousarray(interp.get("pattern-matrix")[int(n)], dtype=float),
                      int(dy), int(dx), shape, state.wrap, state.fill)


@builtin("present-desired", interp=True)
def present_desired(interp, layer, n):
    return get_pattern(interp, interp.get("desired-matrix"), n, layer)


@builtin("forward-prop", interp=True)
def forward_prop(interp, net_struc=None):
    plan = _plan(interp)
    b = buffers(interp.net)
    theta = interp.get("theta")
    if is_number(theta) and theta != 0:
        _forward_with_noise(interp, plan, b, float(theta))
    elif _keep(interp) is not None:
        K.forward_keep(plan, b.x, b.s, b.w, _keep(interp))
    else:
        K.forward(plan, b.x, b.s, b.w)
    return None


def _keep(interp):
    """The dropout factor of every unit for this iteration (drawn by the
    iteration that learns), or None outside learning or without dropout."""
    state = modern.state(interp)
    return state.keep if interp.learning and state.dropout else None


def _draw_keep(interp):
    state = modern.state(interp)
    if not state.dropout:
        return
    keep = np.ones(interp.net.nunits, dtype=interp.net.dtype)
    keep[np.concatenate([u for u, _ in state.dropout])] = modern.draw_keep(interp)
    state.keep = keep


def _forward_with_noise(interp, plan, b, theta):
    """SN2.8's theta: gaussian noise added to every weighted sum, stage by stage."""
    for k in range(len(plan.stages)):
        one = plan._replace(stages=plan.stages[k:k + 1])
        K.forward(one, b.x, b.s, b.w)
        lo, hi = plan.stages[k, 0], plan.stages[k, 1]
        b.s[lo:hi] += interp.rng.standard_normal(hi - lo) * theta
        nlf = plan.nlfs[plan.stages[k, 2]]
        b.x[lo:hi] = Nlf(int(nlf[0]), *nlf[1:]).f(b.s[lo:hi])


@builtin("init-grad-lms", interp=True)
def init_grad_lms(interp, output, desired):
    """LMS cost: output back-sums d - y (squared back-sums 1); returns 1/2 sum (d - y)^2."""
    return modern.layer_cost(interp, K.COST_LMS, output, desired, "init-grad-lms")


@builtin("do-compute-err", interp=True)
def do_compute_err(interp, output, desired):
    """local-error: the cost per output unit."""
    energy = interp.call(interp.get("init-grad"), [output, desired])
    n = len(units_of(output, "do-compute-err", interp.net))
    interp.set("local-error", energy / n)
    return interp.get("local-error")


@builtin("backward-prop", interp=True)
def backward_prop(interp, net_struc=None):
    interp.call(interp.get("do-compute-err"), [interp.get("output-layer"), interp.get("desired-layer")])
    b = buffers(interp.net)
    keep = _keep(interp)
    K.backward_keep(_plan(interp), b.x, b.s, b.w, b.b, b.g, b.acc,
                    keep if keep is not None else b.x, keep is not None)
    return None


@builtin("backward-2-prop", interp=True)
def backward_2_prop(interp, net_struc=None):
    b = buffers(interp.net)
    K.backward2(_plan(interp), b.x, b.s, b.w, b.b, b.ggrad, b.sqb, b.hq,
                interp.get("lev-mar") is not None)
    return None


def _update(interp, mode):
    b = buffers(interp.net)
    if mode == K.MODE_ADAMW:
        ok = modern.adamw_update(interp)
    else:
        ok = K.update(b.w, b.delta, b.acc, b.hess, b.hq, mode, *_constants(interp))
    interp.net.weights_version += 1
    if not ok:
        raise SNError("a weight became NaN or infinite")
    return None


def _constants(interp):
    return tuple(number(interp.get(n), n) for n in ("alpha", "decay", "mu", "gamma"))


@builtin("do-update-weight", interp=True)
def do_update_weight(interp, net_struc=None):
    return _update(interp, _mode(interp, False))


@builtin("do-update-weight-newton", interp=True)
def do_update_weight_newton(interp, net_struc=None):
    return _update(interp, K.MODE_LM if interp.get("lev-mar") is not None else K.MODE_NEWTON)


def _hook(interp, name, *args):
    return interp.call(interp.get(name), list(args))


def _iteration(interp, n, newton):
    _mode(interp, newton)
    inputs, desired = interp.get("input-layer"), interp.get("desired-layer")
    ns = interp.get("net-struc")
    interp.learning = True
    try:
        _hook(interp, "present-pattern", inputs, n)
        _draw_keep(interp)
        _learning_steps(interp, n, newton, ns, desired)
    finally:
        interp.learning = False
    interp.set("age", interp.get("age") + 1)
    interp.set("good-answer", _hook(interp, "classify", n))
    _hook(interp, "disp-basic-iteration", n)
    return interp.get("local-error")


def _learning_steps(interp, n, newton, ns, desired):
    _hook(interp, "forward-prop", ns)
    _hook(interp, "present-desired", desired, n)
    _hook(interp, "backward-prop", ns)
    if newton:
        _hook(interp, "backward-2-prop", ns)
        _hook(interp, "do-update-weight-newton", ns)
    else:
        _hook(interp, "do-update-weight", ns)


@builtin("basic-iteration", interp=True)
def basic_iteration(interp, n):
    """One on-line iteration of back-propagation on pattern n."""
    return _iteration(interp, n, newton=False)


@builtin("basic-newton-iteration", interp=True)
def basic_newton_iteration(interp, n):
    """One on-line iteration of the diagonal Newton (or, with lev-mar, Levenberg-Marquardt) method."""
    return _iteration(interp, n, newton=True)


@builtin("test-pattern", interp=True)
def test_pattern(interp, n):
    """Forward pattern n without learning; sets local-error and good-answer."""
    _hook(interp, "present-pattern", interp.get("input-layer"), n)
    _hook(interp, "forward-prop", interp.get("net-struc"))
    _hook(interp, "present-desired", interp.get("desired-layer"), n)
    _hook(interp, "do-compute-err", interp.get("output-layer"), interp.get("desired-layer"))
    interp.set("good-answer", _hook(interp, "classify", n))
    _hook(interp, "disp-perf-iteration", n)
    return interp.get("local-error")


# ---- classifiers ------------------------------------------------------------

def _outputs(interp):
    net = interp.net
    out = units_of(interp.get("output-layer"), "classify", net)
    des = units_of(interp.get("desired-layer"), "classify", net)
    return net.x[out].astype(float), net.x[des].astype(float)


def _rank_of_max(values):
    best = np.flatnonzero(values == values.max())
    return int(best[0]) if len(best) == 1 else lisp_list(best.tolist())


@builtin("class-max", interp=True)
def class_max(interp, n=None):
    """Right when the largest output and the largest desired value have the same rank."""
    y, d = _outputs(interp)
    out, des = _rank_of_max(y), _rank_of_max(d)
    interp.set("out-class", out)
    interp.set("des-class", des)
    return interp.truth(to_string(out) == to_string(des))


@builtin("class-quadrant", interp=True)
def class_quadrant(interp, n=None):
    """Right when every output has the sign of its desired value."""
    y, d = _outputs(interp)
    return interp.truth(bool(np.all((y > 0) == (d > 0))))


@builtin("class-nil", interp=True)
def class_nil(interp, n=None):
    return interp.T


class ClassSgn:
    """SN2.8's class-sgn: every output on the same side of tmin and of tmax as its desired value."""

    def __init__(self, interp, tmin, tmax):
        self.interp, self.tmin, self.tmax = interp, tmin, tmax

    def lisp_call(self, n=None):
        y, d = _outputs(self.interp)
        same = (np.sign(y - self.tmin) == np.sign(d - self.tmin)) & \
               (np.sign(y - self.tmax) == np.sign(d - self.tmax))
        return self.interp.truth(bool(same.all()))

    def __repr__(self):
        return f"::class-sgn:{self.tmin:g}:{self.tmax:g}"


class ClassTolerance:
    """class-lms (mean squared distance below a margin) and class-hamming (every output within a margin)."""

    def __init__(self, interp, kind, margin):
        self.interp, self.kind, self.margin = interp, kind, margin

    def lisp_call(self, n=None):
        y, d = _outputs(self.interp)
        if self.kind == "lms":
            return self.interp.truth(float(np.mean((y - d) ** 2)) < self.margin)
        return self.interp.truth(bool(np.all(np.abs(y - d) < self.margin)))

    def __repr__(self):
        return f"::class-{self.kind}:{self.margin:g}"


def _switch(name, variable, target):
    """(name) sets `variable` to the built-in function `target`, as SN2.8's
    set-class-max, set-nextcho-seq ... do."""
    def switch(interp):
        interp.set(variable, REGISTRY[target])
        return interp.intern(target)
    builtin(name, interp=True)(switch)


for _name, _variable, _target in [
        ("set-class-max", "classify", "class-max"),
        ("set-class-quadrant", "classify", "class-quadrant"),
        ("set-class-nil", "classify", "class-nil"),
        ("set-nextcho-seq", "next-choice", "nextcho-seq"),
        ("set-nextcho-rnd", "next-choice", "nextcho-rnd"),
        ("set-cost-lms", "init-grad", "init-grad-lms")]:
    _switch(_name, _variable, _target)


@builtin("set-class-sgn", interp=True)
def set_class_sgn(interp, tmin, tmax):
    tmin, tmax = number(tmin, "set-class-sgn"), number(tmax, "set-class-sgn")
    if tmin == 0 and tmax == 0:
        return interp.call(REGISTRY["set-class-quadrant"], [])
    interp.set("classify", ClassSgn(interp, tmin, tmax))
    return interp.intern("class-sgn")


@builtin("set-class-lms", interp=True)
def set_class_lms(interp, margin):
    interp.set("classify", ClassTolerance(interp, "lms", number(margin, "set-class-lms")))
    return interp.intern("class-lms")


@builtin("set-class-hamming", interp=True)
def set_class_hamming(interp, margin):
    interp.set("classify", ClassTolerance(interp, "hamming", number(margin, "set-class-hamming")))
    return interp.intern("class-hamming")


# ---- choosing the next pattern ----------------------------------------------

@builtin("nextcho-seq", interp=True)
def nextcho_seq(interp, p):
    lo, hi = interp.get("patt-min"), interp.get("patt-max")
    return lo if p < lo or p >= hi else p + 1


@builtin("nextcho-rnd", interp=True)
def nextcho_rnd(interp, p):
    lo, hi = interp.get("patt-min"), interp.get("patt-max")
    return int(interp.rng.integers(lo, hi + 1))


@builtin("nextpat-seq", interp=True)
def nextpat_seq(interp, p):
    return _hook(interp, "next-choice", p)


def _order(interp, start, count):
    """The patterns `learn` visits from `start`, the pattern after them, and the
    random draws of each iteration (drawn in the Lisp loop's order)."""
    lo, hi = interp.get("patt-min"), interp.get("patt-max")
    choice = interp.get("next-choice")
    if choice is REGISTRY["nextcho-rnd"]:
        order, after, *drawn = modern.draws(interp, count, start,
                                            lambda p: nextcho_rnd(interp, p))
        return order, after, drawn
    if choice is REGISTRY["nextcho-seq"]:
        span = hi - lo + 1
        first = start - lo if lo <= start <= hi else -1
        seq = (first + 1 + np.arange(count)) % span + lo
        order = np.concatenate([[start], seq[:-1]]).astype(np.int64)
        _, _, *drawn = modern.draws(interp, count)
        return order, int(seq[-1]), drawn
    return None, None, None


# ---- learning loops -----------------------------------------------------------

def fast_path(interp, newton):
    """True when every hook of an iteration is still the built-in one."""
    for name in HOOKS:
        if interp.get(name) is not REGISTRY[name]:
            return False
    theta = interp.get("theta")
    noise = interp.get("input-noise")
    return (modern.cost_kind(interp) is not None
            and interp.get("disp-basic-iteration") is REGISTRY["disp-nil"]
            and interp.get("next-pattern") is REGISTRY["nextpat-seq"]
            and interp.get("classify") in (REGISTRY["class-max"], REGISTRY["class-quadrant"],
                                           REGISTRY["class-nil"])
            and is_number(theta) and theta == 0 and is_number(noise) and noise == 0)


def _mode(interp, newton):
    if modern.adamw(interp) is not None:
        if newton:
            raise SNError("the -newton and -lm forms are SN's second-order method; with "
                          "(set-optimizer 'adamw) learn with learn, learn-cycle, run or trun")
        return K.MODE_ADAMW
    if not newton:
        return K.MODE_SGD
    return K.MODE_LM if interp.get("lev-mar") is not None else K.MODE_NEWTON


def train_order(interp, order, newton, fn, what="pass", drawn=None):
    """On-line iterations over the pattern numbers in `order` (fast path);
    `drawn` = (shifts, keep), the random draws of each (see modern.draws).
    A NaN or infinity stops training, puts back the weights of the start of
    this call and reports the pattern and the layer."""
    if drawn is None:
        _, _, *drawn = modern.draws(interp, len(order))
    shifts, keep = drawn
    patterns, desired = matrices(interp, fn)
    net = interp.net
    plan = _plan(interp)
    b = buffers(net)
    saved = [a.copy() for a in (b.w, b.delta, b.hess)]
    opt = modern.adamw(interp)
    saved_opt = opt.copy() if opt is not None else None
    mode = _mode(interp, newton)
    constants = _constants(interp)
    ft = net.dtype
    pats = np.ascontiguousarray(patterns, dtype=ft)
    des = np.ascontiguousarray(desired, dtype=ft)
    start = time.perf_counter()
    done = 0
    errors = 0.0
    span = interp.get("patt-max") - interp.get("patt-min") + 1
    while done < len(order):
        size = CHUNK
        if opt is not None:  # AdamW's rate changes at pass boundaries (age multiple of span)
            size = min(size, span - interp.get("age") % span)
        chunk = order[done: done + size]
        part = slice(done, done + len(chunk))
        extras = modern.extras(interp, shifts[part] if len(shifts) else shifts,
                               keep[part] if len(keep) else keep, modern.cost_kind(interp))
        total, n, bad = K.train_patterns(plan, b, pats, des, chunk, mode, *constants, extras)
        errors += total
        done += n
        interp.set("age", interp.get("age") + n)
        net.weights_version += 1
        if bad >= 0:
            where = _non_finite_layer(interp, plan, b)
            b.w[:], b.delta[:], b.hess[:] = saved
            if saved_opt is not None:
                opt[:] = saved_opt
            interp.set("age", interp.get("age") - done)
            raise SNError(f"{fn}: pattern {int(chunk[bad])} ({done + 1}th of this {what}) made "
                          f"{where} NaN or infinite; the weights from before this {what} "
                          f"are put back")
        if interp.progress is not None:
            interp.progress(done, len(order), time.perf_counter() - start)
    interp.set("local-error", errors / max(len(order), 1))
    return errors


def _non_finite_layer(interp, plan, b):
    names = current(interp).stage_names
    for k, (lo, hi) in enumerate(plan.stages[:, :2]):
        if not np.all(np.isfinite(b.x[lo:hi])):
            return f"the states of {names[k]}"
    return "a weight"


def _checkpointed(learning):
    """Learning calls are counted by `sn train`'s checkpoints: skipped when a
    resumed run replays them, followed by a checkpoint otherwise."""
    def learn(interp, count, newton, fn):
        ckpt = getattr(interp, "checkpointer", None)
        if ckpt is not None and ckpt.before_learning():
            return lisp_list([_count(count, fn)])
        result = learning(interp, count, newton, fn)
        if ckpt is not None:
            ckpt.after_learning()
        return result
    return learn


@_checkpointed
def _learn(interp, count, newton, fn):
    count = _count(count, fn)
    patterns, _ = matrices(interp, fn)
    lo, hi = pattern_range(interp, interp.get("patt-min"), interp.get("patt-max"), fn, len(patterns))
    current = interp.get("current-pattern")
    if fast_path(interp, newton) and count > 0:
        order, after, drawn = _order(interp, int(current) if is_number(current) else lo, count)
        if order is not None:
            train_order(interp, order, newton, fn, "call", drawn)
            interp.set("current-pattern", after)
            return lisp_list([count])
    step = "basic-newton-iteration" if newton else "basic-iteration"
    for _ in range(count):
        current = interp.get("current-pattern")
        _hook(interp, step, current)
        interp.set("current-pattern", _hook(interp, "next-pattern", current))
    return lisp_list([count])


@_checkpointed
def _learn_cycle(interp, count, newton, fn):
    count = _count(count, fn)
    patterns, _ = matrices(interp, fn)
    lo, hi = pattern_range(interp, interp.get("patt-min"), interp.get("patt-max"), fn, len(patterns))
    order = np.arange(lo, hi + 1, dtype=np.int64)
    step = "basic-newton-iteration" if newton else "basic-iteration"
    for _ in range(count):
        if fast_path(interp, newton):
            train_order(interp, order, newton, fn)
        else:
            for p in range(lo, hi + 1):
                _hook(interp, step, p)
    return lisp_list([count])


def _count(count, fn):
    if not is_number(count) or int(count) != count or count < 0:
        raise SNError(f"{fn}: the number of iterations must be a non-negative integer, "
                      f"not {to_string(count)}")
    return int(count)


class _LevMar:
    """Bind lev-mar for the duration of a call, as SN2.8's (let ((lev-mar t)) ...)."""

    def __init__(self, interp, value):
        self.sym, self.value = interp.intern("lev-mar"), value

    def __enter__(self):
        self.saved = self.sym.value
        self.sym.value = self.value

    def __exit__(self, *exc):
        self.sym.value = self.saved


def _define_family(suffix):
    """learn, learn-cycle, run and trun, plain (back-propagation), -newton
    (diagonal Newton) or -lm (Levenberg-Marquardt: lev-mar bound to t)."""
    newton = suffix != ""

    def learn(interp, count):
        if not newton:
            return _learn(interp, count, False, "learn")
        with _LevMar(interp, interp.T if suffix == "-lm" else None):
            return _learn(interp, count, True, "learn" + suffix)

    def learn_cycle(interp, count):
        if not newton:
            return _learn_cycle(interp, count, False, "learn-cycle")
        with _LevMar(interp, interp.T if suffix == "-lm" else None):
            return _learn_cycle(interp, count, True, "learn-cycle" + suffix)

    def run(interp, it, num):
        return _run(interp, it, num, "learn" + suffix, "run" + suffix, test=False)

    def trun(interp, it, num):
        return _run(interp, it, num, "learn" + suffix, "trun" + suffix, test=True)

    builtin("learn" + suffix, interp=True)(learn)
    builtin("learn-cycle" + suffix, interp=True)(learn_cycle)
    builtin("run" + suffix, interp=True)(run)
    builtin("trun" + suffix, interp=True)(trun)


for _suffix in ("", "-newton", "-lm"):
    _define_family(_suffix)


def _run(interp, it, num, learn_name, fn, test):
    """(run it n): n times learn `it` iterations then measure the training set
    (trun: and the test set), after a first measurement."""
    it, num = _count(it, fn), _count(num, fn)
    save_perf(interp, f";;; {fn} {it} {num}\n")
    perf_fn = interp.get("perf")
    interp.call(perf_fn, [interp.get("patt-min"), interp.get("patt-max")])
    if test:
        interp.call(perf_fn, [interp.get("tpatt-min"), interp.get("tpatt-max")])
    for _ in range(num):
        interp.call(interp.get(learn_name), [it])
        interp.call(perf_fn, [interp.get("patt-min"), interp.get("patt-max")])
        if test:
            interp.call(perf_fn, [interp.get("tpatt-min"), interp.get("tpatt-max")])
    return None


# ---- measuring -------------------------------------------------------------

def measure(interp, lo, hi, fn="perf"):
    """Errors and right answers on patterns lo..hi, without learning. Returns
    (per-pattern local errors, per-pattern right answers as booleans)."""
    patterns, desired = matrices(interp, fn)
    lo, hi = pattern_range(interp, lo, hi, fn, len(patterns))
    classify = interp.get("classify")
    if fast_path(interp, False) and classify in (REGISTRY["class-max"], REGISTRY["class-quadrant"],
                                                 REGISTRY["class-nil"]):
        return _measure_fast(interp, patterns, desired, lo, hi, classify)
    errors = np.zeros(hi - lo + 1)
    right = np.zeros(hi - lo + 1, dtype=bool)
    for p in range(lo, hi + 1):
        errors[p - lo] = _hook(interp, "test-pattern", p)
        right[p - lo] = interp.get("good-answer") is not None
    return errors, right


def outputs_on(interp, patterns, desired, lo, hi):
    """Forward patterns lo..hi (no learning, no dropout, no shifts): per
    pattern its local error, its largest output's rank, and whether every
    output has the sign of its desired value."""
    net = interp.net
    b = buffers(net)
    n = len(patterns)
    out_err, out_class, out_sign = np.zeros(n), np.zeros(n, np.int64), np.zeros(n, np.int64)
    pats = np.ascontiguousarray(patterns, dtype=net.dtype)
    des = np.ascontiguousarray(desired, dtype=net.dtype)
    kind = modern.cost_kind(interp)
    K.evaluate(_plan(interp), b.x, b.s, b.w, pats, des, lo, hi + 1, out_err, out_class,
               out_sign, K.COST_LMS if kind is None else kind)
    span = slice(lo, hi + 1)
    return out_err[span], out_class[span], out_sign[span] == 1


def _measure_fast(interp, patterns, desired, lo, hi, classify):
    errors, ranks, signs = outputs_on(interp, patterns, desired, lo, hi)
    if classify is REGISTRY["class-max"]:
        right = ranks == np.argmax(desired[lo:hi + 1], axis=1)
    elif classify is REGISTRY["class-quadrant"]:
        right = signs
    else:
        right = np.ones(hi - lo + 1, dtype=bool)
    net = interp.net
    net.x[units_of(interp.get("desired-layer"), "perf", net)] = desired[hi]
    interp.set("local-error", float(errors[-1]))
    interp.set("good-answer", interp.truth(bool(right[-1])))
    return errors, right


@builtin("performance", interp=True)
def performance(interp, lo, hi):
    errors, right = measure(interp, lo, hi, "performance")
    interp.set("global-error", float(errors.mean()))
    interp.set("good-an-num", int(right.sum()))
    interp.set("good-an-percent", 100.0 * right.sum() / len(right))
    return interp.get("global-error")


@builtin("perf", interp=True)
def perf(interp, *args):
    """(perf [lo hi]): error and performance (% right) on a range of patterns,
    the training set by default, without learning."""
    if len(args) not in (0, 2):
        raise SNError("perf: expects no argument or a range (perf first last)")
    ckpt = getattr(interp, "checkpointer", None)
    if ckpt is not None and ckpt.replaying:
        return interp.get("good-an-percent")  # measured before the run was interrupted
    lo, hi = args if args else (interp.get("patt-min"), interp.get("patt-max"))
    noise = interp.intern("input-noise")
    saved = noise.value
    noise.value = 0
    try:
        performance(interp, lo, hi)
    finally:
        noise.value = saved
    age, err, pct = interp.get("age"), interp.get("global-error"), interp.get("good-an-percent")
    save_perf(interp, f"{age:6d} {err:10.8f} {pct:6.2f} ;{{{lo}-{hi}}}\n")
    interp.write(f"patterns{{{lo}-{hi}}}, age={age}, error={_g(err)}, performance={_g(pct)}\n")
    return pct


def _g(x):
    return "%g" % x


def save_perf(interp, text):
    """Append to the perf-file, when one is set (SN2.8's save-perf)."""
    name = interp.get("perf-file")
    if not name:
        return
    if not isinstance(name, str):
        raise SNError(f"perf-file must be a file name, not {to_string(name)}")
    try:
        with open(interp.resolve(name), "a", encoding="utf-8") as f:
            f.write(text)
    except OSError as err:
        raise SNError(f"cannot write the perf-file {name}: {err.strerror or err}") from None


@builtin("save-perf", interp=True)
def save_perf_(interp, fmt, *args):
    save_perf(interp, sprintf(fmt, *args))
    return None

