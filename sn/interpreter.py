"""The Lisp: a small dynamically scoped TLisp, with SN2.8's special forms.

Values of symbols live in the symbols themselves (shallow binding): binding a
variable saves its old value and restores it on the way out, so a function sees
the bindings of its callers, as in TLisp.
"""

import importlib
import os
import sys
import time

import numpy as np

from .datum import UNBOUND, Cons, Deferred, Keyword, Symbol, force, is_number, py_list, to_string
from .errors import SNError
from .reader import read_all
from .registry import LIBRARY_MODULES, REGISTRY, Builtin, Special, special

MAX_DEPTH = 10000     # nested forms being evaluated before "recursion too deep"

# Each nested form takes a few Python frames; Python 3.11 frames of pure Python
# calls do not use the C stack, so a high limit is safe.
if sys.getrecursionlimit() < 6 * MAX_DEPTH:
    sys.setrecursionlimit(6 * MAX_DEPTH)


class LispExit(Exception):
    """Raised by (exit): leave the REPL or the program."""

    def __init__(self, code=0):
        super().__init__(code)
        self.code = code


class Lambda:
    """A function defined in Lisp. `kind` is 'de' (evaluated arguments),
    'df' (unevaluated arguments) or 'dmd' (a macro: the result is evaluated)."""

    __slots__ = ("name", "kind", "params", "body", "loc")

    def __init__(self, name, kind, params, body, loc):
        self.name = name
        self.kind = kind
        self.params = params
        self.body = body
        self.loc = loc

    def __repr__(self):
        return f"::{self.kind}:{self.name or 'lambda'}"


class Params:
    """A parsed argument list: required patterns, (pattern, default) optionals
    and a rest symbol. Patterns may be lists that destructure (TLisp)."""

    __slots__ = ("required", "optional", "rest")

    def __init__(self, spec, interp):
        self.required, self.optional, self.rest = [], [], None
        optional_sym = interp.intern("&optional")
        in_optional = False
        cell = spec
        while isinstance(cell, Cons):
            item = cell.car
            if item is optional_sym:
                in_optional = True
            elif in_optional:
                if isinstance(item, Cons):
                    self.optional.append((_check_pattern(item.car), item.cdr.car if item.cdr else None))
                else:
                    self.optional.append((_check_pattern(item), None))
            else:
                self.required.append(_check_pattern(item))
            cell = cell.cdr
        if cell is not None:
            if not isinstance(cell, Symbol):
                raise SNError(f"bad argument list: {to_string(spec)}")
            self.rest = cell


def _check_pattern(p):
    if p is None or (isinstance(p, Symbol) and not isinstance(p, Keyword)) or isinstance(p, Cons):
        return p
    raise SNError(f"not a variable name: {to_string(p)}")


class Interpreter:
    def __init__(self, out=None):
        self.symbols = {}
        self.depth = 0
        self.out = out
        self.loading = []          # files being loaded, innermost last
        self.rng = np.random.default_rng(0)
        self.T = self.intern("t")
        self.T.value = self.T
        for name in LIBRARY_MODULES:
            importlib.import_module(name)
        for name, fn in REGISTRY.items():
            self.intern(name).value = fn
        for module in [sys.modules[n] for n in LIBRARY_MODULES]:
            setup = getattr(module, "setup", None)
            if setup is not None:
                setup(self)

    # ---- symbols and values -------------------------------------------
    def intern(self, name):
        sym = self.symbols.get(name)
        if sym is None:
            sym = Keyword(name) if name.startswith(":") and len(name) > 1 else Symbol(name)
            self.symbols[name] = sym
        return sym

    def get(self, name, default=UNBOUND):
        value = force(self.intern(name))
        if value is UNBOUND:
            if default is UNBOUND:
                raise SNError(f"unbound variable: {name}")
            return default
        return value

    def set(self, name, value):
        self.intern(name).value = value

    def write(self, text):
        (self.out or sys.stdout).write(text)

    def truth(self, flag):
        return self.T if flag else None

    # ---- reading and loading ------------------------------------------
    def read(self, text, filename="<input>"):
        """The forms of `text` with their locations: [(form, Location)]."""
        return read_all(text, filename, self.intern, locations=True)

    def eval_text(self, text, filename="<input>"):
        """Evaluate every form of `text`; return the last value."""
        result = None
        for form, loc in self.read(text, filename):
            result = self.eval_toplevel(form, loc)
        return result

    def eval_toplevel(self, form, loc=None):
        """Evaluate a form read at top level; errors without a location get `loc`."""
        self.depth = 0
        try:
            return self.eval(form)
        except SNError as err:
            if err.where is None:
                err.where = loc
            raise

    def resolve(self, name):
        """A file named by a program: relative to the file being loaded."""
        name = os.path.expanduser(name)
        if not os.path.isabs(name) and self.loading:
            name = os.path.join(os.path.dirname(self.loading[-1]), name)
        return name

    def load(self, name):
        path = self.resolve(name)
        if not os.path.exists(path) and os.path.exists(path + ".sn"):
            path += ".sn"
        if path in self.loading:
            raise SNError(f"load: {name} is already being loaded (a file loads itself)")
        try:
            with open(path, encoding="utf-8") as f:
                text = f.read()
        except OSError as err:
            raise SNError(f"load: cannot read {path}: {err.strerror or err}") from None
        except UnicodeDecodeError:
            raise SNError(f"load: {path} is not a text file (not UTF-8)") from None
        self.loading.append(path)
        saved_depth = self.depth
        try:
            result = None
            for form, loc in self.read(text, path):
                try:
                    result = self.eval(form)
                except SNError as err:
                    if err.where is None:
                        err.where = loc
                    raise
            return result
        finally:
            self.loading.pop()
            self.depth = saved_depth

    # ---- evaluation ------------------------------------------------------
    def eval(self, x):
        if type(x) is Cons:
            return self.eval_form(x)
        if isinstance(x, Symbol):
            value = x.value
            if value is UNBOUND:
                raise SNError(f"unbound variable: {x.name}")
            if type(value) is Deferred:
                return force(x)
            return value
        return x

    def eval_form(self, form):
        head = form.car
        if isinstance(head, Symbol):
            fn = head.value
            if fn is UNBOUND:
                raise SNError(f"undefined function: {head.name}", form.loc)
        else:
            fn = self.eval(head)
        self.depth += 1
        try:
            if self.depth > MAX_DEPTH:
                raise SNError(f"recursion too deep: more than {MAX_DEPTH} nested forms")
            kind = type(fn)
            if kind is Special:
                return fn.fn(self, form.cdr)
            if kind is Builtin:
                args = self.eval_args(form.cdr)
                return fn.fn(self, *args) if fn.wants_interp else fn.fn(*args)
            if kind is Lambda:
                if fn.kind == "de":
                    return self.apply_lambda(fn, self.eval_args(form.cdr))
                args = py_list(form.cdr, "argument list")
                if fn.kind == "df":
                    return self.apply_lambda(fn, args)
                return self.eval(self.apply_lambda(fn, args))
            if isinstance(fn, np.ndarray):
                return index_matrix(fn, self.eval_args(form.cdr))
            if hasattr(fn, "lisp_call"):
                return fn.lisp_call(*self.eval_args(form.cdr))
            if isinstance(head, Symbol):
                raise SNError(f"{head.name} is not a function: its value is {_short(fn)}")
            raise SNError(f"not a function: {_short(fn)}")
        except SNError as err:
            self.annotate(err, form, fn)
            raise
        except (KeyboardInterrupt, LispExit):
            raise
        except RecursionError:
            err = SNError("recursion too deep (the Python stack is exhausted)")
            self.annotate(err, form, fn)
            raise err from None
        except Exception as exc:  # a Python error inside a builtin
            err = SNError(f"{_name_of(fn, head)}: {_describe(exc)}")
            self.annotate(err, form, fn)
            raise err from None
        finally:
            self.depth -= 1

    def eval_args(self, cell):
        args = []
        while type(cell) is Cons:
            arg = cell.car
            if type(arg) is Cons:
                args.append(self.eval_form(arg))
            elif isinstance(arg, Symbol):
                value = arg.value
                if value is UNBOUND:
                    raise SNError(f"unbound variable: {arg.name}", cell.loc)
                if type(value) is Deferred:
                    value = force(arg)
                args.append(value)
            else:
                args.append(arg)
            cell = cell.cdr
        if cell is not None:
            raise SNError("dotted argument list in a call")
        return args

    def annotate(self, err, form, fn):
        """Record where an error happened: the innermost located form, then
        each enclosing call of a Lisp function."""
        if form.loc is None:
            return
        if err.where is None:
            err.where = form.loc
            err.form = form
        elif type(fn) is Lambda:
            err.add_frame(_short(form), form.loc)

    def progn(self, body):
        result = None
        while type(body) is Cons:
            result = self.eval(body.car)
            body = body.cdr
        return result

    # ---- calling functions -------------------------------------------
    def call(self, fn, args):
        """Apply a function value to already evaluated arguments."""
        kind = type(fn)
        if kind is Builtin:
            return fn.fn(self, *args) if fn.wants_interp else fn.fn(*args)
        if kind is Lambda:
            result = self.apply_lambda(fn, args)
            return self.eval(result) if fn.kind == "dmd" else result
        if kind is Special:
            quote = self.intern("quote")
            return fn.fn(self, _list_of(Cons(quote, Cons(a)) for a in args))
        if isinstance(fn, Symbol) and fn.value is not UNBOUND:
            return self.call(fn.value, args)
        if isinstance(fn, np.ndarray):
            return index_matrix(fn, args)
        if hasattr(fn, "lisp_call"):
            return fn.lisp_call(*args)
        raise SNError(f"not a function: {to_string(fn)}")

    def apply_lambda(self, fn, args):
        saved = []
        try:
            self.bind_params(fn, args, saved)
            result = None
            body = fn.body
            while type(body) is Cons:
                result = self.eval(body.car)
                body = body.cdr
            return result
        finally:
            unbind(saved)

    def bind_params(self, fn, args, saved):
        params = fn.params
        nreq = len(params.required)
        if len(args) < nreq:
            raise SNError(f"{fn.name or 'lambda'}: too few arguments "
                          f"(expects {_arity(params)}, got {len(args)})")
        if params.rest is None and len(args) > nreq + len(params.optional):
            raise SNError(f"{fn.name or 'lambda'}: too many arguments "
                          f"(expects {_arity(params)}, got {len(args)})")
        for pattern, value in zip(params.required, args):
            self.bind(pattern, value, saved)
        i = nreq
        for pattern, default in params.optional:
            value = args[i] if i < len(args) else self.eval(default)
            self.bind(pattern, value, saved)
            i += 1
        if params.rest is not None:
            self.bind(params.rest, _list_of(args[i:]), saved)

    def bind(self, pattern, value, saved):
        """Bind a variable, or destructure a list against a list pattern."""
        if isinstance(pattern, Symbol):
            saved.append((pattern, pattern.value))
            pattern.value = value
        elif type(pattern) is Cons:
            while type(pattern) is Cons:
                if value is not None and type(value) is not Cons:
                    raise SNError(f"cannot destructure {to_string(value)} "
                                  f"against the pattern {to_string(pattern)}")
                self.bind(pattern.car, value.car if value is not None else None, saved)
                pattern = pattern.cdr
                value = value.cdr if value is not None else None
            if pattern is not None:
                self.bind(pattern, value, saved)


# ---- helpers ----------------------------------------------------------

def unbind(saved):
    """Undo the bindings recorded by Interpreter.bind, innermost first."""
    for sym, old in reversed(saved):
        sym.value = old


def _list_of(items):
    result = None
    for item in reversed(list(items)):
        result = Cons(item, result)
    return result


def _arity(params):
    n = len(params.required)
    if params.rest is not None:
        return f"at least {n}"
    if params.optional:
        return f"{n} to {n + len(params.optional)}"
    return str(n)


def _name_of(fn, head):
    name = getattr(fn, "name", None)
    return name or to_string(head)


def _describe(exc):
    if isinstance(exc, ZeroDivisionError):
        return "division by zero"
    if isinstance(exc, OverflowError):
        return "number too large"
    if isinstance(exc, MemoryError):
        return "out of memory"
    if isinstance(exc, TypeError) and "positional argument" in str(exc):
        return "wrong number of arguments"
    return str(exc) or type(exc).__name__


def _short(form, width=60):
    text = to_string(form)
    return text if len(text) <= width else text[: width - 3] + "..."


def index_matrix(m, args):
    """(m i j) reads an element, (m i j v) writes it; fewer indices give a row."""
    if len(args) > m.ndim + 1:
        raise SNError(f"matrix of {m.ndim} dimensions given {len(args)} arguments")
    idx = []
    for a, size in zip(args[: m.ndim], m.shape):
        if not is_number(a) or int(a) != a:
            raise SNError(f"matrix index must be an integer, not {to_string(a)}")
        if not 0 <= a < size:
            raise SNError(f"matrix index {int(a)} out of range 0..{size - 1}")
        idx.append(int(a))
    if len(args) == m.ndim + 1:
        value = args[-1]
        if not is_number(value):
            raise SNError(f"a matrix holds numbers, not {to_string(value)}")
        m[tuple(idx)] = value
        return value
    item = m[tuple(idx)]
    return item.item() if np.ndim(item) == 0 else item


# ---- special forms ---------------------------------------------------

def _args(args, n_min, n_max, name):
    items = py_list(args, "argument list")
    if len(items) < n_min or (n_max is not None and len(items) > n_max):
        want = str(n_min) if n_min == n_max else (
            f"at least {n_min}" if n_max is None else f"{n_min} to {n_max}")
        raise SNError(f"{name}: expects {want} arguments, got {len(items)}")
    return items


@special("quote")
def _quote(interp, args):
    return _args(args, 1, 1, "quote")[0]


def _define(interp, args, kind, name):
    items = _args(args, 2, None, name)
    sym = items[0]
    if not isinstance(sym, Symbol) or isinstance(sym, Keyword) or sym is interp.T:
        raise SNError(f"{name}: not a function name: {to_string(sym)}")
    fn = Lambda(sym.name, kind, Params(items[1], interp), args.cdr.cdr, args.loc)
    sym.value = fn
    return sym


@special("de")
def _de(interp, args):
    return _define(interp, args, "de", "de")


@special("df")
def _df(interp, args):
    return _define(interp, args, "df", "df")


@special("dmd")
def _dmd(interp, args):
    return _define(interp, args, "dmd", "dmd")


@special("lambda")
def _lambda(interp, args):
    items = _args(args, 1, None, "lambda")
    return Lambda(None, "de", Params(items[0], interp), args.cdr, args.loc)


@special("flambda")
def _flambda(interp, args):
    items = _args(args, 1, None, "flambda")
    return Lambda(None, "df", Params(items[0], interp), args.cdr, args.loc)


@special("mlambda")
def _mlambda(interp, args):
    items = _args(args, 1, None, "mlambda")
    return Lambda(None, "dmd", Params(items[0], interp), args.cdr, args.loc)


def _variable(x, name):
    if not isinstance(x, Symbol) or isinstance(x, Keyword):
        raise SNError(f"{name}: not a variable: {to_string(x)}")
    return x


@special("setq")
def _setq(interp, args):
    items = py_list(args, "argument list")
    if len(items) % 2:
        raise SNError("setq: expects pairs of a variable and a value")
    result = None
    cell = args
    while cell is not None:
        sym = _variable(cell.car, "setq")
        if sym is interp.T:
            raise SNError("setq: t cannot be changed")
        result = interp.eval(cell.cdr.car)
        sym.value = result
        cell = cell.cdr.cdr
    return result


@special("defvar")
def _defvar(interp, args):
    items = _args(args, 1, 2, "defvar")
    sym = _variable(items[0], "defvar")
    if sym.value is UNBOUND:
        sym.value = interp.eval(items[1]) if len(items) == 2 else None
    return sym


@special("incr")
def _incr(interp, args):
    items = _args(args, 1, 2, "incr")
    sym = _variable(items[0], "incr")
    step = interp.eval(items[1]) if len(items) == 2 else 1
    value = interp.eval(sym)
    if not is_number(value) or not is_number(step):
        raise SNError(f"incr: not a number: {to_string(value if not is_number(value) else step)}")
    sym.value = value + step
    return sym.value


def _bindings(interp, spec, name):
    pairs = []
    for item in py_list(spec, f"{name} binding list"):
        if isinstance(item, Symbol):
            pairs.append((item, None))
        elif type(item) is Cons:
            rest = py_list(item.cdr, f"{name} binding")
            if len(rest) > 1:
                raise SNError(f"{name}: a binding is (variable value): {to_string(item)}")
            pairs.append((_check_pattern(item.car), rest[0] if rest else None))
        else:
            raise SNError(f"{name}: bad binding {to_string(item)}")
    return pairs


@special("let")
def _let(interp, args):
    items = _args(args, 1, None, "let")
    pairs = _bindings(interp, items[0], "let")
    values = [interp.eval(form) for _, form in pairs]
    saved = []
    try:
        for (pattern, _), value in zip(pairs, values):
            interp.bind(pattern, value, saved)
        return interp.progn(args.cdr)
    finally:
        unbind(saved)


@special("let*")
def _let_star(interp, args):
    items = _args(args, 1, None, "let*")
    saved = []
    try:
        for pattern, form in _bindings(interp, items[0], "let*"):
            interp.bind(pattern, interp.eval(form), saved)
        return interp.progn(args.cdr)
    finally:
        unbind(saved)


@special("progn")
def _progn(interp, args):
    return interp.progn(args)


@special("prog1")
def _prog1(interp, args):
    _args(args, 1, None, "prog1")
    result = interp.eval(args.car)
    interp.progn(args.cdr)
    return result


@special("if")
def _if(interp, args):
    _args(args, 2, None, "if")
    if interp.eval(args.car) is not None:
        return interp.eval(args.cdr.car)
    return interp.progn(args.cdr.cdr)


@special("when")
def _when(interp, args):
    _args(args, 1, None, "when")
    if interp.eval(args.car) is not None:
        return interp.progn(args.cdr)
    return None


@special("unless")
def _unless(interp, args):
    _args(args, 1, None, "unless")
    if interp.eval(args.car) is None:
        return interp.progn(args.cdr)
    return None


@special("cond")
def _cond(interp, args):
    for clause in py_list(args, "cond clause list"):
        if type(clause) is not Cons:
            raise SNError(f"cond: a clause is (test body...), not {to_string(clause)}")
        value = interp.eval(clause.car)
        if value is not None:
            return interp.progn(clause.cdr) if clause.cdr is not None else value
    return None


@special("and")
def _and(interp, args):
    value = interp.T
    for form in py_list(args, "argument list"):
        value = interp.eval(form)
        if value is None:
            return None
    return value


@special("or")
def _or(interp, args):
    for form in py_list(args, "argument list"):
        value = interp.eval(form)
        if value is not None:
            return value
    return None


@special("while")
def _while(interp, args):
    _args(args, 1, None, "while")
    result = None
    while interp.eval(args.car) is not None:
        result = interp.progn(args.cdr)
    return result


@special("repeat")
def _repeat(interp, args):
    _args(args, 1, None, "repeat")
    n = interp.eval(args.car)
    if not is_number(n):
        raise SNError(f"repeat: not a number: {to_string(n)}")
    result = None
    for _ in range(int(n)):
        result = interp.progn(args.cdr)
    return result


@special("for")
def _for(interp, args):
    items = _args(args, 1, None, "for")
    spec = py_list(items[0], "for specification") if is_list(items[0]) else None
    if not spec or len(spec) not in (3, 4):
        raise SNError("for: the loop is written (for (i start end [step]) body...)")
    sym = _variable(spec[0], "for")
    start, end = interp.eval(spec[1]), interp.eval(spec[2])
    step = interp.eval(spec[3]) if len(spec) == 4 else 1
    for v in (start, end, step):
        if not is_number(v):
            raise SNError(f"for: not a number: {to_string(v)}")
    if step == 0:
        raise SNError("for: the step is 0")
    old = sym.value
    result = None
    try:
        i = start
        while (i <= end) if step > 0 else (i >= end):
            sym.value = i
            result = interp.progn(args.cdr)
            i = i + step
    finally:
        sym.value = old
    return result


def _iterate(interp, args, name, collect):
    items = _args(args, 1, None, name)
    specs = []
    for spec in py_list(items[0], f"{name} specification"):
        parts = py_list(spec, f"{name} specification") if type(spec) is Cons else []
        if len(parts) != 2:
            raise SNError(f"{name}: the loop is written ({name} ((x list) ...) body...)")
        seq = interp.eval(parts[1])
        if not is_list(seq):
            raise SNError(f"{name}: not a list: {to_string(seq)}")
        specs.append((_check_pattern(parts[0]), seq))
    results = []
    result = None
    cursors = [seq for _, seq in specs]
    while all(c is not None for c in cursors):
        saved = []
        try:
            for (pattern, _), cell in zip(specs, cursors):
                interp.bind(pattern, cell.car, saved)
            result = interp.progn(args.cdr)
        finally:
            unbind(saved)
        if collect:
            results.append(result)
        cursors = [c.cdr if type(c.cdr) is Cons else None for c in cursors]
    return _list_of(results) if collect else result


@special("each")
def _each(interp, args):
    return _iterate(interp, args, "each", False)


@special("all")
def _all(interp, args):
    return _iterate(interp, args, "all", True)


@special("backquote")
def _backquote(interp, args):
    return _expand_backquote(interp, _args(args, 1, 1, "backquote")[0])


def _expand_backquote(interp, x):
    if type(x) is not Cons:
        return x
    unquote, splice = interp.intern("unquote"), interp.intern("unquote-splicing")
    if x.car is unquote:
        return interp.eval(x.cdr.car)
    out = []
    tail = None
    cell = x
    while type(cell) is Cons:
        if cell.car is unquote and cell is not x:  # `(a . ,b)
            tail = interp.eval(cell.cdr.car)
            break
        item = cell.car
        if type(item) is Cons and item.car is splice:
            spliced = interp.eval(item.cdr.car)
            if not is_list(spliced):
                raise SNError(f",@ needs a list, not {to_string(spliced)}")
            out.extend(py_list(spliced))
        else:
            out.append(_expand_backquote(interp, item))
        cell = cell.cdr
    else:
        tail = cell
    result = tail
    for item in reversed(out):
        result = Cons(item, result)
    return result


@special("time")
def _time(interp, args):
    _args(args, 1, None, "time")
    start = time.perf_counter()
    interp.progn(args)
    return time.perf_counter() - start


def is_list(x):
    return x is None or type(x) is Cons
