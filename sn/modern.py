"""The modern variant: 33 years of tricks as .sn features.

    (set-cost-xent)                  softmax cross-entropy on the output sums
    (set-optimizer 'adamw :lr a :weight-decay w :lr-final b)   AdamW, the learning
                                     rate decayed linearly from a to b over `passes`
    (set-optimizer 'sgd)             SN's own on-line gradient step (the default)
    (dropout layer p)                inverted dropout on a layer while learning
    (augment-shift n [:wrap t])      random translations of up to n pixels of the input

All random draws come from the interpreter's one random state, pattern by
pattern in the order of presentation (a shift, then the dropout masks), so a
seed reproduces a run bit for bit, and the Lisp-loop path draws exactly what
the fast path draws.
"""

import numpy as np

from . import kernels as K
from .datum import Keyword, is_number, to_string
from .errors import SNError
from .netlib import number, units_of
from .registry import REGISTRY, builtin


class Modern:
    """What the modern features have set for an interpreter."""

    def __init__(self):
        self.adamw = None        # float64 [6] kernel numbers, or None for SGD
        self.lr = self.lr_final = 0.0
        self.dropout = []        # (units, p)
        self.shift = 0
        self.wrap = False
        self.fill = -1.0
        self.keep = None         # the dropout factors of the current pattern (slow path)


def setup(interp):
    interp.modern = Modern()


def state(interp):
    return interp.modern


# ---- cost -----------------------------------------------------------------

def layer_cost(interp, kind, output, desired, fn):
    """A cost kernel applied to the output and desired layers given: sets
    the output units' back-sums and squared back-sums; returns the cost."""
    from .netenv import current
    net = interp.net
    out = units_of(output, fn, net)
    des = units_of(desired, fn, net)
    plan = current(interp).plan._replace(output_units=out)
    n = net.nunits
    row = np.ascontiguousarray(net.x[des])
    return K.cost(plan, kind, net.x[:n], net.s[:n], net.b[:n], net.sqb[:n], row) * len(out)


@builtin("init-grad-xent", interp=True)
def init_grad_xent(interp, output, desired):
    """Softmax cross-entropy on the output sums: back-sums t - p (t the desired
    values > 0, normalised; p the softmax); returns -sum t log p."""
    return layer_cost(interp, K.COST_XENT, output, desired, "init-grad-xent")


@builtin("set-cost-xent", interp=True)
def set_cost_xent(interp):
    """Softmax cross-entropy on the output units' weighted sums. Meant for a
    linear output layer: with another nonlinearity it works, but multiplies
    the gradient by the nonlinearity's slope, which is not what is meant."""
    layer = _output_layer(interp)
    if layer is not None:
        from .netlib import current_nlf
        nlf = layer.nlf or current_nlf(interp)
        if nlf.kind != K.NLF_LIN or nlf.A != 1 or nlf.D != 0:
            interp.write(f"set-cost-xent: warning: the output layer {layer.name} is not linear "
                         f"({nlf.source}); cross-entropy is meant on linear outputs, "
                         "e.g. (output 10 (nlf-lin 1 1))\n")
    interp.set("init-grad", REGISTRY["init-grad-xent"])
    return interp.intern("init-grad-xent")


def _output_layer(interp):
    units = units_of(interp.get("output-layer"), "set-cost-xent", interp.net)
    return interp.net.layer_of(units) if len(units) else None


def cost_kind(interp):
    """K.COST_XENT or K.COST_LMS, or None for a cost written in Lisp."""
    cost = interp.get("init-grad")
    if cost is REGISTRY["init-grad-xent"]:
        return K.COST_XENT
    if cost is REGISTRY["init-grad-lms"]:
        return K.COST_LMS
    return None


# ---- optimizer ---------------------------------------------------------------

_ADAMW_OPTIONS = {":lr": 3e-4, ":weight-decay": 0.01, ":lr-final": None, ":beta1": 0.9,
                  ":beta2": 0.999, ":epsilon": 1e-8}


@builtin("set-optimizer", interp=True)
def set_optimizer(interp, name, *options):
    """(set-optimizer 'adamw :lr a :weight-decay w :lr-final b [:beta1 :beta2 :epsilon])
    or (set-optimizer 'sgd). AdamW steps after each pattern, its learning rate
    going linearly from a (first pass) to b (last of `passes` passes); the
    defaults are PyTorch's (weight decay 0.01)."""
    kind = to_string(name, readably=False)
    modern = state(interp)
    if kind == "sgd":
        if options:
            raise SNError("set-optimizer: sgd takes no options (its rates are the epsilons)")
        modern.adamw = None
        return name
    if kind != "adamw":
        raise SNError(f"set-optimizer: unknown optimizer {kind}: known are adamw and sgd")
    if len(options) % 2:
        raise SNError("set-optimizer: options are :keyword value pairs")
    values = dict(_ADAMW_OPTIONS)
    for key, value in zip(options[::2], options[1::2]):
        if not isinstance(key, Keyword) or key.name not in values:
            raise SNError(f"set-optimizer: unknown option {to_string(key)} for adamw (known: "
                          + " ".join(values) + ")")
        values[key.name] = number(value, "set-optimizer")
    for key in (":lr", ":beta1", ":beta2", ":epsilon"):
        if values[key] <= 0 or (key.startswith(":beta") and values[key] >= 1):
            raise SNError(f"set-optimizer: {key} {values[key]:g} is out of range")
    modern.lr = values[":lr"]
    modern.lr_final = values[":lr-final"] if values[":lr-final"] is not None else values[":lr"]
    modern.adamw = np.array([modern.lr, values[":weight-decay"], values[":beta1"],
                             values[":beta2"], values[":epsilon"], 0.0])
    modern.net_weights = interp.net.nweights
    interp.net.delta[: interp.net.nweights] = 0.0   # the moments, kept in delta and hess
    interp.net.hess[: interp.net.nweights] = 0.0
    return name


def adamw(interp):
    """The AdamW numbers for the pass about to be learnt, or None (SGD)."""
    modern = state(interp)
    if modern.adamw is None:
        return None
    passes = interp.get("passes", None)
    lo, hi = interp.get("patt-min"), interp.get("patt-max")
    if is_number(passes) and passes > 1 and lo is not None:
        done = interp.get("age") // (hi - lo + 1)
        frac = min(done / (passes - 1), 1.0)
        modern.adamw[K.OPT_LR] = modern.lr + (modern.lr_final - modern.lr) * frac
    return modern.adamw


def adamw_update(interp):
    net = interp.net
    m = net.nweights
    return K.update_adamw(net.w[:m], net.delta[:m], net.hess[:m], net.acc[:m], adamw(interp))


# ---- dropout and shifts ----------------------------------------------------------

@builtin("dropout", interp=True)
def dropout(interp, layer, p):
    """(dropout layer p): while learning, each unit of the layer is dropped
    (state 0) with probability p and the others scaled by 1/(1-p); measures
    (perf, test-pattern) see the whole layer. p = 0 turns it off."""
    units = units_of(layer, "dropout", interp.net)
    p = number(p, "dropout")
    if not 0 <= p < 1:
        raise SNError(f"dropout: the probability must be in [0, 1), not {p:g}")
    if len(units) == 0:
        raise SNError("dropout: the layer is empty")
    modern = state(interp)
    modern.dropout = [(u, q) for u, q in modern.dropout if not np.array_equal(u, units)]
    if p > 0:
        modern.dropout.append((units, p))
    return p


@builtin("augment-shift", interp=True)
def augment_shift(interp, n, *options):
    """(augment-shift n [:wrap t] [:fill v]): while learning, each pattern is
    translated by a random number of rows and of columns in -n..n (uniform),
    its planes wrapping around with :wrap, else filled with v (default -1).
    n = 0 turns it off."""
    if not is_number(n) or int(n) != n or n < 0:
        raise SNError(f"augment-shift: the shift must be a whole number >= 0, not {to_string(n)}")
    modern = state(interp)
    wrap, fill = False, -1.0
    if len(options) % 2:
        raise SNError("augment-shift: options are :wrap t or :fill v")
    for key, value in zip(options[::2], options[1::2]):
        if not isinstance(key, Keyword) or key.name not in (":wrap", ":fill"):
            raise SNError(f"augment-shift: unknown option {to_string(key)} (known: :wrap, :fill)")
        if key.name == ":wrap":
            wrap = value is not None
        else:
            fill = number(value, "augment-shift")
    shape = input_shape(interp)
    if n > 0 and (n >= shape[1] or n >= shape[2]):
        raise SNError(f"augment-shift: a shift of {int(n)} is not smaller than the "
                      f"{shape[1]}x{shape[2]} input planes")
    modern.shift, modern.wrap, modern.fill = int(n), wrap, fill
    return n


def input_shape(interp):
    """(planes, rows, cols) of the input layer: its recorded shape, or one square plane."""
    units = units_of(interp.get("input-layer"), "augment-shift", interp.net)
    layer = interp.net.layer_of(units) if len(units) else None
    if layer is not None and layer.shape:
        return layer.shape
    side = int(round(np.sqrt(len(units))))
    if side * side != len(units) or side == 0:
        raise SNError(f"augment-shift: the input layer has {len(units)} units and no plane "
                      "shape: give it one in build-net, e.g. (input (1 16 16))")
    return (1, side, side)


def draw_shift(interp):
    n = state(interp).shift
    return interp.rng.integers(-n, n + 1, size=2)


def draw_keep(interp):
    """Dropout factors of every dropout unit for one pattern, in layer order."""
    parts = []
    for units, p in state(interp).dropout:
        parts.append(np.where(interp.rng.random(len(units)) >= p, 1.0 / (1.0 - p), 0.0))
    return np.concatenate(parts) if parts else np.zeros(0)


def draws(interp, count, start=None, choose=None):
    """The random draws of `count` learning iterations, in the order the
    Lisp-loop path makes them: for each pattern its shift, its dropout masks,
    then (with `choose`, a random choice of the next pattern) the next pattern.
    Returns (order or None, the pattern after them, shifts, keep)."""
    modern = state(interp)
    nd = sum(len(u) for u, _ in modern.dropout)
    shifts = np.zeros((count if modern.shift > 0 else 0, 2), np.int64)
    keep = np.zeros((count if nd else 0, nd))
    order = None
    if choose is not None:
        order = np.zeros(count, np.int64)
        current = start
    for i in range(count if (len(shifts) or nd or choose is not None) else 0):
        if len(shifts):
            shifts[i] = draw_shift(interp)
        if nd:
            keep[i] = draw_keep(interp)
        if choose is not None:
            order[i] = current
            current = choose(current)
    return order, (current if choose is not None else None), shifts, keep


def extras(interp, shifts, keep, kind):
    """The kernels' Extras for patterns with these draws (see `draws`)."""
    modern = state(interp)
    drop_units = (np.concatenate([u for u, _ in modern.dropout]) if modern.dropout
                  else np.zeros(0, np.int64))
    opt = adamw(interp)
    shape = np.asarray(input_shape(interp) if len(shifts) else (1, 1, 1), dtype=np.int64)
    return K.Extras(kind, opt if opt is not None else np.zeros(6), keep,
                    drop_units.astype(np.int64), shifts, shape, int(modern.wrap),
                    float(modern.fill))

