"""The network model seen from Lisp: units, connections, field accessors,
nonlinearities, initialisation (forget*) and learning rates (epsi*).

Every interpreter has one network, `interp.net`. Layers are Lisp lists of
unit numbers, as in SN2.8.
"""

import numpy as np

from .datum import Cons, is_number, to_string
from .errors import SNError
from .net import Net
from .nlf import SN_DEFAULT, Nlf, nlf_bin, nlf_lin, nlf_relu, nlf_tanh
from .registry import builtin

GLOBALS = {
    "alpha": 0, "decay": 0, "gamma": 0.05, "mu": 0.05, "theta": 0, "input-noise": 0,
    "lev-mar": None, "age": 0, "eps": 0, "nnum": 1, "snum": 0, "wnum": 0,
    "input-layer": None, "output-layer": None, "desired-layer": None, "net-struc": None,
    "layer-names": None,
}


def setup(interp):
    interp.net = Net()
    for name, value in GLOBALS.items():
        interp.set(name, value)
    interp.set("nlf", SN_DEFAULT)


def lisp_list(items):
    result = None
    for item in reversed(list(items)):
        result = Cons(item, result)
    return result


def units_of(x, fn, net=None):
    """Unit numbers from a number or a (nested) list of numbers, as an int array."""
    flat = []
    stack = [x]
    while stack:
        item = stack.pop()
        if item is None:
            continue
        if isinstance(item, Cons):
            cell = item
            items = []
            while isinstance(cell, Cons):
                items.append(cell.car)
                cell = cell.cdr
            stack.extend(reversed(items))
        elif is_number(item) and int(item) == item:
            flat.append(int(item))
        else:
            raise SNError(f"{fn}: not a unit number: {to_string(item)}")
    units = np.asarray(flat, dtype=np.int64)
    if net is not None and len(units):
        bad = units[(units < 0) | (units >= net.nunits)]
        if len(bad):
            raise SNError(f"{fn}: unit {int(bad[0])} does not exist (units are 0..{net.nunits - 1})")
    return units


def unit(interp, x, fn):
    if not is_number(x) or int(x) != x:
        raise SNError(f"{fn}: not a unit number: {to_string(x)}")
    return interp.net.check_unit(int(x))


def sync_counts(interp):
    net = interp.net
    interp.set("nnum", net.nunits)
    interp.set("snum", int(net.calive[: net.nconn].sum()))
    interp.set("wnum", net.nweights)


def number(x, fn):
    if not is_number(x):
        raise SNError(f"{fn}: not a number: {to_string(x)}")
    return float(x)


# ---- building ------------------------------------------------------------

@builtin("newneurons", interp=True)
def newneurons(interp, n):
    if not is_number(n) or int(n) != n:
        raise SNError(f"newneurons: not a number of units: {to_string(n)}")
    lo = interp.net.newneurons(int(n))
    sync_counts(interp)
    return lisp_list(range(lo, lo + int(n)))


@builtin("connect", interp=True)
def connect(interp, src, dst, value=None, eps=None):
    """(connect i j [value [eps]]): i and j may be lists, meaning every pair."""
    net = interp.net
    if value is not None:
        net.connect([unit(interp, src, "connect")], [unit(interp, dst, "connect")],
                    number(value, "connect"), number(eps, "connect") if eps is not None else 0.0)
    else:
        net.connect(units_of(src, "connect", net), units_of(dst, "connect", net))
    sync_counts(interp)
    return None


@builtin("dup-connection", interp=True)
def dup_connection(interp, ref_src, ref_dst, src, dst, value=None, eps=None):
    """(dup-connection i j k l): k -> l shares the weight of i -> j; lists are
    taken pairwise (i with k, j with l)."""
    net = interp.net
    rs, rd = units_of(ref_src, "dup-connection", net), units_of(ref_dst, "dup-connection", net)
    s, d = units_of(src, "dup-connection", net), units_of(dst, "dup-connection", net)
    if len(rs) != len(s) or len(rd) != len(d):
        raise SNError("dup-connection: source and target lists should have the same length")
    pairs_ref_src = np.repeat(rs, len(rd))
    pairs_ref_dst = np.tile(rd, len(rs))
    net.dup_connection(pairs_ref_src, pairs_ref_dst, np.repeat(s, len(d)), np.tile(d, len(s)),
                       number(eps, "dup-connection") if eps is not None else 0.0)
    if value is not None:
        if len(s) * len(d) != 1:
            raise SNError("dup-connection: a value may be given for a single connection only")
        c = net.find(int(s[0]), int(d[0]))
        k = net.cw[c]
        n = net.count[k]
        net.w[k] = (number(value, "dup-connection") + (n - 1) * net.w[k]) / n
    sync_counts(interp)
    return None


@builtin("cut-connection", interp=True)
def cut_connection(interp, src, dst):
    interp.net.cut(unit(interp, src, "cut-connection"), unit(interp, dst, "cut-connection"))
    sync_counts(interp)
    return None


@builtin("clear-net", interp=True)
def clear_net(interp):
    interp.net.clear()
    for name in ("input-layer", "output-layer", "desired-layer", "net-struc", "layer-names"):
        interp.set(name, None)
    interp.set("age", 0)
    sync_counts(interp)
    return None


@builtin("alloc-net", interp=True)
def alloc_net(interp, units, conns, weights=None):
    """Accepted for SN2.8 scripts: the network grows as needed anyway."""
    sizes = [units, conns] + ([weights] if weights is not None else [])
    for n in sizes:
        if not is_number(n) or n < 0:
            raise SNError(f"alloc-net: illegal size {to_string(n)}")
    interp.net.clear()
    interp.net.reserve(int(units), int(conns), int(weights if weights is not None else conns))
    sync_counts(interp)
    return int(units)


@builtin("set-float", interp=True)
def set_float(interp, kind):
    """(set-float 'float32) or (set-float 'float64): the network's number type."""
    name = to_string(kind, readably=False)
    if name not in ("float32", "float64"):
        raise SNError(f"set-float: expects float32 or float64, not {name}")
    interp.net.set_dtype(np.float32 if name == "float32" else np.float64)
    return kind


# ---- unit and connection fields -------------------------------------------

def _unit_field(name, field):
    def access(interp, i, value=None):
        u = unit(interp, i, name)
        array = getattr(interp.net, field)
        if value is not None:
            if u == 0 and field == "x":
                raise SNError(f"{name}: the bias unit's state is always 1")
            array[u] = number(value, name)
        return float(array[u])
    builtin(name, interp=True)(access)


for _name, _field in [("nval", "x"), ("nsum", "s"), ("ngrad", "g"), ("nbacksum", "b"),
                      ("nggrad", "gg"), ("nsqbacksum", "sqb")]:
    _unit_field(_name, _field)


@builtin("nfanin", interp=True)
def nfanin(interp, i):
    return int(interp.net.fanin[unit(interp, i, "nfanin")])


@builtin("nepsilon", interp=True)
def nepsilon(interp, i, value=None):
    """The average epsilon of a unit's incoming connections; setting it sets them all."""
    net = interp.net
    conns = net.incoming(unit(interp, i, "nepsilon"))
    if value is not None:
        net.ceps[conns] = number(value, "nepsilon")
        net.version += 1
    return _average(net.ceps[conns])


@builtin("nsigma", interp=True)
def nsigma(interp, i):
    """The average curvature of the weights of a unit's incoming connections."""
    net = interp.net
    conns = net.incoming(unit(interp, i, "nsigma"))
    return _average(net.hess[net.cw[conns]])


def _average(values):
    if len(values) == 0:
        return 0.0
    return float(values[0]) if (values == values[0]).all() else float(values.mean())


@builtin("amont", interp=True)
def amont(interp, i):
    net = interp.net
    return lisp_list(net.csrc[net.incoming(unit(interp, i, "amont"))].tolist())


@builtin("aval", interp=True)
def aval(interp, i):
    net = interp.net
    return lisp_list(net.cdst[net.outgoing(unit(interp, i, "aval"))].tolist())


def _connection(interp, i, j, fn, setting=False):
    """The connection i -> j, or None; setting a field of a missing one is an error."""
    c = interp.net.find(unit(interp, i, fn), unit(interp, j, fn))
    if c is None and setting:
        raise SNError(f"{fn}: no connection {to_string(i)} -> {to_string(j)}")
    return c


def _weight_field(name, field):
    def access(interp, i, j, value=None):
        c = _connection(interp, i, j, name, value is not None)
        if c is None:
            return None
        array = getattr(interp.net, field)
        k = interp.net.cw[c]
        if value is not None:
            array[k] = number(value, name)
            interp.net.weights_version += 1
        return float(array[k])
    builtin(name, interp=True)(access)


for _name, _field in [("sval", "w"), ("sdelta", "delta"), ("sacc", "acc"), ("ssigma", "hess"),
                      ("shess", "hess")]:
    _weight_field(_name, _field)


@builtin("sepsilon", interp=True)
def sepsilon(interp, i, j, value=None):
    c = _connection(interp, i, j, "sepsilon", value is not None)
    if c is None:
        return None
    if value is not None:
        interp.net.ceps[c] = number(value, "sepsilon")
        interp.net.version += 1
    return float(interp.net.ceps[c])


@builtin("scounter", interp=True)
def scounter(interp, i, j):
    """How many connections share the weight of i -> j (0 if there is no connection)."""
    c = _connection(interp, i, j, "scounter")
    return 0 if c is None else int(interp.net.count[interp.net.cw[c]])


@builtin("sindex", interp=True)
def sindex(interp, i, j, k=None):
    """The weight number of i -> j; with k, make the connection use weight k."""
    c = _connection(interp, i, j, "sindex", k is not None)
    if c is None:
        return None
    if k is not None:
        if not is_number(k) or int(k) != k:
            raise SNError(f"sindex: not a weight number: {to_string(k)}")
        interp.net.set_weight_index(c, int(k))
    return int(interp.net.cw[c])


# ---- layer-wise fields (SN2.8's mapncar family) --------------------------

def _layer_field(name, accessor):
    """(f) all units; (f l) the list of values of l; (f v) set every unit but
    the bias; (f l v) set the units of l; (f l lv) set them one by one."""
    def access(interp, *args):
        getter = interp.intern(accessor).value
        net = interp.net
        if not args:
            return lisp_list(interp.call(getter, [u]) for u in range(net.nunits))
        if len(args) == 1:
            if args[0] is None or isinstance(args[0], Cons):
                return lisp_list(interp.call(getter, [int(u)]) for u in units_of(args[0], name, net))
            for u in range(1, net.nunits):
                interp.call(getter, [u, args[0]])
            return args[0]
        if len(args) == 2:
            units = units_of(args[0], name, net)
            if is_number(args[1]):
                for u in units:
                    interp.call(getter, [int(u), args[1]])
                return args[1]
            values = []
            cell = args[1]
            while isinstance(cell, Cons):
                values.append(cell.car)
                cell = cell.cdr
            return lisp_list(interp.call(getter, [int(u), v]) for u, v in zip(units, values))
        raise SNError(f"{name}: bad arguments")
    builtin(name, interp=True)(access)


for _name, _accessor in [("state", "nval"), ("gradient", "ngrad"), ("weighted-sum", "nsum"),
                         ("back-sum", "nbacksum"), ("epsilon", "nepsilon"),
                         ("sqback-sum", "nsqbacksum"), ("ggradient", "nggrad"),
                         ("sigma", "nsigma")]:
    _layer_field(_name, _accessor)


@builtin("weight", interp=True)
def weight(interp, c, layer=None):
    """The values of the connections into unit c (from `layer`, or from all its sources)."""
    net = interp.net
    dst = unit(interp, c, "weight")
    sources = units_of(layer, "weight", net) if layer is not None else net.csrc[net.incoming(dst)]
    values = []
    for s in sources:
        k = net.find(int(s), dst)
        values.append(float(net.w[net.cw[k]]) if k is not None else None)
    return lisp_list(values)


@builtin("set-weight", interp=True)
def set_weight(interp, c, values):
    net = interp.net
    conns = net.incoming(unit(interp, c, "set-weight"))
    items = []
    cell = values
    while isinstance(cell, Cons):
        items.append(number(cell.car, "set-weight"))
        cell = cell.cdr
    for k, v in zip(conns, items):
        net.w[net.cw[k]] = v
    net.weights_version += 1
    return values


# ---- nonlinearities --------------------------------------------------------

def _set_nlf(interp, nlf):
    interp.set("nlf", nlf)
    return nlf


@builtin("nlf-tanh", interp=True)
def nlf_tanh_(interp, mx, dmin, scale=None, offset=0.0):
    return _set_nlf(interp, nlf_tanh(mx, dmin, scale, offset))


@builtin("nlf-bin", interp=True)
def nlf_bin_(interp, mx, dmin, scale=None, offset=0.0):
    return _set_nlf(interp, nlf_bin(mx, dmin, scale, offset))


@builtin("nlf-lin", interp=True)
def nlf_lin_(interp, dmin, dmax, th=None):
    return _set_nlf(interp, nlf_lin(dmin, dmax, th))


@builtin("nlf-relu", interp=True)
def nlf_relu_(interp):
    return _set_nlf(interp, nlf_relu())


def current_nlf(interp):
    nlf = interp.get("nlf")
    if not isinstance(nlf, Nlf):
        raise SNError(f"the variable nlf is not a nonlinear function: {to_string(nlf)}")
    return nlf


# ---- initial weights -------------------------------------------------------

def _layer_conns(interp, layer, fn):
    """Live connections into the units of `layer` (all units when None)."""
    net = interp.net
    live = net.alive()
    if layer is None:
        return live
    units = units_of(layer, fn, net)
    return live[np.isin(net.cdst[live], units)]


def _forget(interp, conns, bound):
    """Each connection draws a value uniform in [-bound, bound); a weight
    shared by several connections keeps the draw of its last connection, as
    SN2.8's loop over connections leaves it."""
    net = interp.net
    draws = interp.rng.uniform(-1.0, 1.0, size=len(conns)) * bound
    w = net.cw[conns]
    last = {}
    for k, value in zip(w.tolist(), draws.tolist()):
        last[k] = value
    keys = np.fromiter(last.keys(), dtype=np.int64, count=len(last))
    net.w[keys] = np.fromiter(last.values(), dtype=np.float64, count=len(last))
    net.delta[keys] = 0.0
    net.hess[keys] = 0.0
    net.weights_version += 1
    interp.set("age", 0)
    interp.set("current-pattern", 0)


def _forget_kind(name, scale):
    def forget(interp, x):
        x = number(x, name)
        conns = _layer_conns(interp, None, name)
        _forget(interp, conns, x * scale(interp.net.fanin[interp.net.cdst[conns]]))
        return None

    def forget_layer(interp, x, layer):
        x = number(x, name + "-layer")
        conns = _layer_conns(interp, layer, name + "-layer")
        _forget(interp, conns, x * scale(interp.net.fanin[interp.net.cdst[conns]]))
        return None
    builtin(name, interp=True)(forget)
    builtin(name + "-layer", interp=True)(forget_layer)


_forget_kind("forget", lambda fanin: np.ones(len(fanin)))
_forget_kind("forget-inv", lambda fanin: 1.0 / fanin)
_forget_kind("forget-sqrt", lambda fanin: 1.0 / np.sqrt(fanin))


@builtin("smartforget", interp=True)
def smartforget(interp):
    """SN2.8's recommended initialisation: (forget-sqrt 1)."""
    return interp.call(interp.get("forget-sqrt"), [1])


# ---- learning rates ----------------------------------------------------------

def _epsi_kind(name, rate):
    """Epsilon of every connection into a unit: rate(x, fan-in, sharing)."""
    def set_eps(interp, x, layer):
        net = interp.net
        x = number(x, name)
        conns = _layer_conns(interp, layer, name)
        dst = net.cdst[conns]
        net.ceps[conns] = rate(x, net.fanin[dst].astype(float), _sharing(net, conns))
        net.version += 1
        interp.set("eps", x)
        return None

    builtin(name, interp=True)(lambda interp, x: set_eps(interp, x, None))
    builtin(name + "-layer", interp=True)(set_eps)


def _sharing(net, conns):
    """For each connection, how many connections share the weight of the last
    connection into the same unit (SN2.8's mask-epsi reads that one)."""
    last_weight = {}
    for c in conns.tolist():
        last_weight[int(net.cdst[c])] = int(net.cw[c])
    return np.array([net.count[last_weight[int(d)]] for d in net.cdst[conns]], dtype=float)


_epsi_kind("epsi", lambda x, fanin, share: x / fanin)
_epsi_kind("epsi-sqrt", lambda x, fanin, share: x / np.sqrt(fanin))
_epsi_kind("mask-epsi", lambda x, fanin, share: x / np.sqrt(fanin) / np.sqrt(share))

