"""The core functions of the Lisp: numbers, lists, text, matrices, random
numbers and the rest of SN.md section 2, each registered under its SN name."""

import math
import os
import re
import struct

import numpy as np

from .datum import Cons, Keyword, Symbol, UNBOUND, is_list, is_number, py_list, to_string
from .errors import SNError
from .interpreter import LispExit, Lambda, index_matrix
from .registry import Builtin, Special, builtin

MAX_LIST = 1_000_000


def _num(x, fn):
    if not is_number(x):
        raise SNError(f"{fn}: not a number: {to_string(x)}")
    return x


def _int(x, fn):
    _num(x, fn)
    if int(x) != x:
        raise SNError(f"{fn}: not an integer: {to_string(x)}")
    return int(x)


def _list(x, fn):
    if not is_list(x):
        raise SNError(f"{fn}: not a list: {to_string(x)}")
    return x


def _lisp(items, tail=None):
    result = tail
    for item in reversed(items):
        result = Cons(item, result)
    return result


def _clean(x):
    """numpy scalars become Python numbers."""
    if isinstance(x, np.generic):
        return x.item()
    return x


# ---- numbers -----------------------------------------------------------

@builtin("+")
def add(*xs):
    total = 0
    for x in xs:
        total = total + _num(x, "+")
    return _clean(total)


@builtin("-")
def sub(*xs):
    if not xs:
        raise SNError("-: expects at least 1 argument")
    if len(xs) == 1:
        return -_num(xs[0], "-")
    total = _num(xs[0], "-")
    for x in xs[1:]:
        total = total - _num(x, "-")
    return _clean(total)


@builtin("*")
def mul(*xs):
    total = 1
    for x in xs:
        total = total * _num(x, "*")
    return _clean(total)


@builtin("/")
def div_(*xs):
    if not xs:
        raise SNError("/: expects at least 1 argument")
    if len(xs) == 1:
        xs = (1,) + xs
    total = float(_num(xs[0], "/"))
    for x in xs[1:]:
        if _num(x, "/") == 0:
            raise SNError("/: division by zero")
        total = total / x
    return total


def _c_div(a, b, fn):
    a, b = _int(a, fn), _int(b, fn)
    if b == 0:
        raise SNError(f"{fn}: division by zero")
    q = abs(a) // abs(b)
    return q if (a >= 0) == (b >= 0) else -q


@builtin("div")
def int_div(a, b):
    """Integer quotient, truncated toward zero as in C."""
    return _c_div(a, b, "div")


@builtin("mod")
def int_mod(a, b):
    """Remainder of `div`, with the sign of the dividend as in C."""
    return _int(a, "mod") - _int(b, "mod") * _c_div(a, b, "mod")


@builtin("1+")
def one_plus(x):
    return _num(x, "1+") + 1


@builtin("1-")
def one_minus(x):
    return _num(x, "1-") - 1


@builtin("2*")
def two_times(x):
    return _num(x, "2*") * 2


@builtin("2/")
def two_div(x):
    return _num(x, "2/") / 2


@builtin("0=", interp=True)
def zero_p(interp, x):
    return interp.truth(_num(x, "0=") == 0)


@builtin("0<>", interp=True)
def nonzero_p(interp, x):
    return interp.truth(_num(x, "0<>") != 0)


def _compare(name, test):
    def compare(interp, *xs):
        if len(xs) < 2:
            raise SNError(f"{name}: expects at least 2 arguments")
        for a, b in zip(xs, xs[1:]):
            if not test(*_comparable(name, a, b)):
                return None
        return interp.T
    return compare


def _comparable(name, a, b):
    if (is_number(a) and is_number(b)) or (isinstance(a, str) and isinstance(b, str)):
        return a, b
    if name in ("=", "<>"):
        return (0, 0) if equal(a, b) else (0, 1)
    raise SNError(f"{name}: cannot compare {to_string(a)} and {to_string(b)}")


for _name, _test in [("=", lambda a, b: a == b), ("<>", lambda a, b: a != b),
                     ("<", lambda a, b: a < b), (">", lambda a, b: a > b),
                     ("<=", lambda a, b: a <= b), (">=", lambda a, b: a >= b)]:
    builtin(_name, interp=True)(_compare(_name, _test))


@builtin("abs")
def abs_(x):
    return abs(_num(x, "abs"))


@builtin("sgn")
def sgn(x):
    x = _num(x, "sgn")
    return (x > 0) - (x < 0)


@builtin("sqrt")
def sqrt(x):
    if _num(x, "sqrt") < 0:
        raise SNError(f"sqrt: negative argument {to_string(x)}")
    return math.sqrt(x)


@builtin("exp")
def exp(x):
    return math.exp(_num(x, "exp"))


@builtin("log")
def log(x):
    if _num(x, "log") <= 0:
        raise SNError(f"log: argument must be positive, not {to_string(x)}")
    return math.log(x)


@builtin("tanh")
def tanh(x):
    return math.tanh(_num(x, "tanh"))


@builtin("sin")
def sin(x):
    return math.sin(_num(x, "sin"))


@builtin("cos")
def cos(x):
    return math.cos(_num(x, "cos"))


@builtin("atan")
def atan(x):
    return math.atan(_num(x, "atan"))


@builtin("**", "power")
def power(x, y):
    try:
        return _clean(_num(x, "**") ** _num(y, "**"))
    except ZeroDivisionError:
        raise SNError("**: zero to a negative power") from None


def _extreme(pick, name, items):
    if not items:
        raise SNError(f"{name}: expects at least one number")
    return pick(_num(x, name) for x in items)


@builtin("min")
def min_(*xs):
    return _extreme(min, "min", xs)


@builtin("max")
def max_(*xs):
    return _extreme(max, "max", xs)


@builtin("sup")
def sup(lst):
    """The largest number of a list."""
    return _extreme(max, "sup", py_list(_list(lst, "sup")))


@builtin("inf")
def inf(lst):
    """The smallest number of a list."""
    return _extreme(min, "inf", py_list(_list(lst, "inf")))


@builtin("int")
def int_(x):
    """The integer part (truncation toward zero)."""
    x = _num(x, "int")
    if isinstance(x, float) and not math.isfinite(x):
        raise SNError(f"int: {to_string(x)} has no integer part")
    return int(x)


@builtin("round")
def round_(x):
    x = _num(x, "round")
    if isinstance(x, float) and not math.isfinite(x):
        raise SNError(f"round: cannot round {to_string(x)}")
    return int(math.floor(x + 0.5))


@builtin("floor")
def floor(x):
    return math.floor(_num(x, "floor"))


@builtin("ceil")
def ceil(x):
    return math.ceil(_num(x, "ceil"))


# ---- predicates --------------------------------------------------------

@builtin("null", "not", interp=True)
def null(interp, x):
    return interp.truth(x is None)


@builtin("consp", interp=True)
def consp(interp, x):
    return interp.truth(isinstance(x, Cons))


@builtin("listp", interp=True)
def listp(interp, x):
    return interp.truth(is_list(x))


@builtin("atom", interp=True)
def atom(interp, x):
    return interp.truth(not isinstance(x, Cons))


@builtin("numberp", interp=True)
def numberp(interp, x):
    return interp.truth(is_number(x))


@builtin("stringp", interp=True)
def stringp(interp, x):
    return interp.truth(isinstance(x, str))


@builtin("symbolp", interp=True)
def symbolp(interp, x):
    return interp.truth(isinstance(x, Symbol))


@builtin("matrixp", interp=True)
def matrixp(interp, x):
    return interp.truth(isinstance(x, np.ndarray))


@builtin("functionp", interp=True)
def functionp(interp, x):
    return interp.truth(isinstance(x, (Lambda, Builtin, Special)))


@builtin("eq", "==", interp=True)
def eq(interp, a, b):
    same = a is b or (is_number(a) and is_number(b) and a == b)
    return interp.truth(same)


def equal(a, b):
    if a is b:
        return True
    if is_number(a) and is_number(b):
        return a == b
    if isinstance(a, str) and isinstance(b, str):
        return a == b
    if isinstance(a, Cons) and isinstance(b, Cons):
        while isinstance(a, Cons) and isinstance(b, Cons):
            if not equal(a.car, b.car):
                return False
            a, b = a.cdr, b.cdr
        return equal(a, b)
    if isinstance(a, np.ndarray) and isinstance(b, np.ndarray):
        return a.shape == b.shape and bool(np.all(a == b))
    return False


@builtin("equal", interp=True)
def equal_(interp, a, b):
    return interp.truth(equal(a, b))


@builtin("boundp", interp=True)
def boundp(interp, x):
    if not isinstance(x, Symbol):
        raise SNError(f"boundp: not a symbol: {to_string(x)}")
    return interp.truth(x.value is not UNBOUND)


# ---- lists -------------------------------------------------------------

@builtin("list")
def list_(*xs):
    return _lisp(list(xs))


@builtin("cons")
def cons(a, b):
    return Cons(a, b)


@builtin("car")
def car(x):
    if x is None:
        return None
    if not isinstance(x, Cons):
        raise SNError(f"car: not a list: {to_string(x)}")
    return x.car


@builtin("cdr")
def cdr(x):
    if x is None:
        return None
    if not isinstance(x, Cons):
        raise SNError(f"cdr: not a list: {to_string(x)}")
    return x.cdr


def _cxr(path, name):
    def cxr(x):
        for step in reversed(path):
            x = car(x) if step == "a" else cdr(x)
        return x
    builtin(name)(cxr)


for _path in ["aa", "ad", "da", "dd", "add", "ddd"]:
    _cxr(_path, f"c{_path}r")


@builtin("nth")
def nth(n, lst):
    n = _int(n, "nth")
    cell = _list(lst, "nth")
    for _ in range(n):
        if not isinstance(cell, Cons):
            return None
        cell = cell.cdr
    return cell.car if isinstance(cell, Cons) else None


@builtin("nthcdr")
def nthcdr(n, lst):
    n = _int(n, "nthcdr")
    cell = _list(lst, "nthcdr")
    for _ in range(n):
        if not isinstance(cell, Cons):
            return None
        cell = cell.cdr
    return cell


@builtin("length")
def length(x):
    if isinstance(x, str):
        return len(x)
    if isinstance(x, np.ndarray):
        return int(x.shape[0]) if x.ndim else 1
    n = 0
    cell = _list(x, "length")
    while isinstance(cell, Cons):
        n += 1
        cell = cell.cdr
    return n


@builtin("append")
def append(*lists):
    if not lists:
        return None
    items = []
    for lst in lists[:-1]:
        items.extend(py_list(_list(lst, "append")))
    return _lisp(items, lists[-1])


@builtin("nconc")
def nconc(*lists):
    result = None
    last = None
    for lst in lists:
        if lst is None:
            continue
        _list(lst, "nconc")
        if last is None:
            result = lst
        else:
            last.cdr = lst
        last = lst
        while isinstance(last.cdr, Cons):
            last = last.cdr
    return result


@builtin("nconc1")
def nconc1(lst, x):
    return nconc(lst, Cons(x))


@builtin("reverse")
def reverse(lst):
    return _lisp(list(reversed(py_list(_list(lst, "reverse")))))


@builtin("last")
def last(lst, n=1):
    items = []
    cell = _list(lst, "last")
    while isinstance(cell, Cons):
        items.append(cell)
        cell = cell.cdr
    n = _int(n, "last")
    if n <= 0:
        return None
    return items[-n] if len(items) >= n else lst


@builtin("lasta")
def lasta(lst):
    cell = _list(lst, "lasta")
    if cell is None:
        return None
    while isinstance(cell.cdr, Cons):
        cell = cell.cdr
    return cell.car if cell.cdr is None else cell.cdr


@builtin("range")
def range_(a, b=None, step=1):
    """(range n) is 1..n; (range a b [step]) is a..b inclusive."""
    if b is None:
        a, b = 1, a
    _num(a, "range"), _num(b, "range"), _num(step, "range")
    if step == 0:
        raise SNError("range: the step is 0")
    count = math.floor((b - a) / step) + 1
    if count > MAX_LIST:
        raise SNError(f"range: {count} elements is too many")
    return _lisp([a + i * step for i in range(max(count, 0))])


@builtin("member")
def member(x, lst):
    cell = _list(lst, "member")
    while isinstance(cell, Cons):
        if equal(x, cell.car):
            return cell
        cell = cell.cdr
    return None


@builtin("assoc")
def assoc(key, alist):
    for item in py_list(_list(alist, "assoc")):
        if isinstance(item, Cons) and equal(key, item.car):
            return item
    return None


@builtin("rplaca")
def rplaca(cell, value):
    if not isinstance(cell, Cons):
        raise SNError(f"rplaca: not a pair: {to_string(cell)}")
    cell.car = value
    return cell


@builtin("rplacd")
def rplacd(cell, value):
    if not isinstance(cell, Cons):
        raise SNError(f"rplacd: not a pair: {to_string(cell)}")
    cell.cdr = value
    return cell


@builtin("mapcar", interp=True)
def mapcar(interp, fn, *lists):
    if not lists:
        raise SNError("mapcar: expects a function and at least one list")
    columns = [py_list(_list(lst, "mapcar")) for lst in lists]
    return _lisp([interp.call(fn, list(args)) for args in zip(*columns)])


@builtin("mapc", interp=True)
def mapc(interp, fn, *lists):
    columns = [py_list(_list(lst, "mapc")) for lst in lists]
    for args in zip(*columns):
        interp.call(fn, list(args))
    return lists[0] if lists else None


@builtin("apply", interp=True)
def apply(interp, fn, *args):
    """(apply f a ... list): call f on the a's and the elements of the list."""
    if not args:
        return interp.call(fn, [])
    spread = py_list(_list(args[-1], "apply"))
    return interp.call(fn, list(args[:-1]) + spread)


@builtin("funcall", interp=True)
def funcall(interp, fn, *args):
    return interp.call(fn, list(args))


@builtin("eval", interp=True)
def eval_(interp, x):
    return interp.eval(x)


@builtin("set", interp=True)
def set_(interp, sym, value):
    if not isinstance(sym, Symbol) or isinstance(sym, Keyword) or sym is interp.T:
        raise SNError(f"set: not a variable: {to_string(sym)}")
    sym.value = value
    return value


# ---- text ------------------------------------------------------------------

_FORMAT = re.compile(r"%([-+ #0]*)(\*|\d+)?(?:\.(\d+))?([diouxXeEfFgGcslp%])")


def sprintf(fmt, *args):
    """C's printf formats; %l prints any Lisp value as `print` does."""
    if not isinstance(fmt, str):
        raise SNError(f"printf: the format must be a string, not {to_string(fmt)}")
    out, pos, i = [], 0, 0
    for m in _FORMAT.finditer(fmt):
        out.append(fmt[pos:m.start()])
        pos = m.end()
        flags, width, prec, conv = m.groups()
        if conv == "%":
            out.append("%")
            continue
        if i >= len(args):
            raise SNError(f"printf: not enough arguments for the format {fmt!r}")
        arg = args[i]
        i += 1
        spec = "%" + flags + (width or "") + (f".{prec}" if prec is not None else "")
        out.append(_format_one(spec, conv, arg))
    out.append(fmt[pos:])
    if i < len(args):
        raise SNError(f"printf: {len(args) - i} argument(s) more than the format {fmt!r} uses")
    return "".join(out)


def _format_one(spec, conv, arg):
    if conv in "diouxX":
        if not is_number(arg):
            raise SNError(f"printf: %{conv} needs a number, not {to_string(arg)}")
        if isinstance(arg, float) and not math.isfinite(arg):
            return (spec + "s") % to_string(arg)
        return (spec + ("d" if conv == "i" else conv)) % int(arg)
    if conv in "eEfFgG":
        if not is_number(arg):
            raise SNError(f"printf: %{conv} needs a number, not {to_string(arg)}")
        return (spec + conv) % float(arg)
    if conv == "c":
        return (spec + "c") % (chr(int(arg)) if is_number(arg) else str(arg)[:1])
    if conv == "s":
        return (spec + "s") % to_string(arg, readably=False)
    return (spec + "s") % to_string(arg)  # %l and %p


@builtin("printf", interp=True)
def printf(interp, fmt, *args):
    interp.write(sprintf(fmt, *args))
    return None


builtin("sprintf")(sprintf)


@builtin("print", interp=True)
def print_(interp, *xs):
    interp.write(" ".join(to_string(x) for x in xs) + "\n")
    return xs[-1] if xs else None


@builtin("prin", interp=True)
def prin(interp, *xs):
    interp.write(" ".join(to_string(x) for x in xs))
    return xs[-1] if xs else None


@builtin("pname")
def pname(x):
    return to_string(x, readably=False)


@builtin("concat")
def concat(*xs):
    for x in xs:
        if not isinstance(x, str):
            raise SNError(f"concat: not a string: {to_string(x)}")
    return "".join(xs)


@builtin("str")
def str_(x):
    return to_string(_num(x, "str"))


@builtin("val")
def val(s):
    if not isinstance(s, str):
        raise SNError(f"val: not a string: {to_string(s)}")
    try:
        number = float(s)
    except ValueError:
        raise SNError(f"val: not a number: {s!r}") from None
    return int(number) if number.is_integer() and re.fullmatch(r"\s*[+-]?\d+\s*", s) else number


@builtin("upcase")
def upcase(s):
    return _string(s, "upcase").upper()


@builtin("downcase")
def downcase(s):
    return _string(s, "downcase").lower()


@builtin("left")
def left(s, n):
    return _string(s, "left")[: max(_int(n, "left"), 0)]


@builtin("right")
def right(s, n):
    n = max(_int(n, "right"), 0)
    return _string(s, "right")[-n:] if n else ""


def _string(s, fn):
    if not isinstance(s, str):
        raise SNError(f"{fn}: not a string: {to_string(s)}")
    return s


# ---- matrices -----------------------------------------------------------

MAX_MATRIX = 100_000_000


@builtin("matrix")
def matrix(*dims):
    if not dims:
        raise SNError("matrix: expects at least one dimension")
    shape = tuple(_int(d, "matrix") for d in dims)
    if any(d < 0 for d in shape):
        raise SNError(f"matrix: negative dimension in {list(shape)}")
    if math.prod(shape) > MAX_MATRIX:
        raise SNError(f"matrix: {list(shape)} is too large")
    return np.zeros(shape)


@builtin("bound")
def bound(m, dim=None):
    """(bound m) is the list of dimensions; (bound m d) the last index of the
    d-th dimension (1-based), as SN2.8 scripts use it; (bound m 0) the rank."""
    if not isinstance(m, np.ndarray):
        raise SNError(f"bound: not a matrix: {to_string(m)}")
    if dim is None:
        return _lisp([int(d) for d in m.shape])
    d = _int(dim, "bound")
    if d == 0:
        return m.ndim
    if not 1 <= d <= m.ndim:
        raise SNError(f"bound: the matrix has {m.ndim} dimensions, not {d}")
    return int(m.shape[d - 1]) - 1


@builtin("matrix-ref")
def matrix_ref(m, *idx):
    return index_matrix(m, list(idx))


# ---- random numbers ------------------------------------------------------

def seed_value(x):
    """An integer seed from any number (SN scripts seed with floats like 0.87)."""
    _num(x, "seed")
    if float(x).is_integer():
        return abs(int(x))
    return int.from_bytes(struct.pack("<d", float(x)), "little")


@builtin("seed", interp=True)
def seed(interp, x):
    interp.rng = np.random.default_rng(seed_value(x))
    return x


@builtin("rand", interp=True)
def rand(interp, a=None, b=None):
    """(rand) in [0,1); (rand b) in [-b,b); (rand a b) in [a,b)."""
    if a is None:
        return float(interp.rng.random())
    if b is None:
        a, b = -_num(a, "rand"), a
    return float(_num(a, "rand") + (_num(b, "rand") - a) * interp.rng.random())


@builtin("gauss", interp=True)
def gauss(interp, m=None, s=None):
    """(gauss) N(0,1); (gauss s) N(0,s); (gauss m s) N(m,s)."""
    if m is None:
        m, s = 0.0, 1.0
    elif s is None:
        m, s = 0.0, m
    return float(_num(m, "gauss") + _num(s, "gauss") * interp.rng.standard_normal())


# ---- misc ----------------------------------------------------------------

@builtin("load", interp=True)
def load(interp, name):
    if not isinstance(name, str):
        raise SNError(f"load: the file name must be a string, not {to_string(name)}")
    interp.load(name)
    return name


@builtin("libload")
def libload(*names):
    """SN2.8 library names are accepted and ignored: their functions are built in."""
    return names[0] if names else None


@builtin("error", interp=True)
def error(interp, *args):
    """(error "message") or SN2.8's (error 'function "message" object)."""
    if len(args) >= 2 and isinstance(args[0], Symbol) and isinstance(args[1], str):
        message = f"{args[0].name}: {args[1]}"
        if len(args) > 2 and args[2] is not None:
            message += f": {to_string(args[2])}"
    else:
        message = " ".join(to_string(a, readably=False) for a in args) or "error"
    raise SNError(message)


@builtin("getenv")
def getenv(name):
    """(getenv "NAME"): an environment variable's value, or () when unset."""
    if not isinstance(name, str):
        raise SNError(f"getenv: the name must be a string, not {to_string(name)}")
    return os.environ.get(name)


@builtin("exit")
def exit_(code=0):
    raise LispExit(_int(code, "exit"))
