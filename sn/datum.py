"""Lisp data: symbols, cons cells, source locations, and the printer.

The empty list () is Python's None; t is the symbol `t`; numbers are Python
ints and floats; strings are Python str; matrices are numpy arrays.
"""

import numpy as np


class Location:
    """Where a datum was read: file, line and column (both 1-based)."""

    __slots__ = ("file", "line", "col", "lines")

    def __init__(self, file, line, col, lines=None):
        self.file = file
        self.line = line
        self.col = col
        self.lines = lines  # the source split in lines, shared by all locations of a file

    def __str__(self):
        return f"{self.file}:{self.line}:{self.col}"

    def source_line(self):
        if self.lines is None or not 0 < self.line <= len(self.lines):
            return None
        return self.lines[self.line - 1]

    def caret(self):
        """The source line and a caret under the column, or '' when unknown."""
        text = self.source_line()
        if text is None:
            return ""
        pad = "".join("\t" if ch == "\t" else " " for ch in text[: self.col - 1])
        return f"    {text}\n    {pad}^"


class Symbol:
    """An interned symbol. Its dynamic value lives in the slot `value`
    (shallow binding, as in TLisp): binding saves and restores it."""

    __slots__ = ("name", "value")

    def __init__(self, name):
        self.name = name
        self.value = UNBOUND

    def __repr__(self):
        return self.name


class Keyword(Symbol):
    """A symbol written `:name`; it evaluates to itself."""

    __slots__ = ()

    def __init__(self, name):
        super().__init__(name)
        self.value = self


class _Unbound:
    def __repr__(self):
        return "#unbound"


UNBOUND = _Unbound()


class Deferred:
    """A value computed on first use (a data set read only when a program
    touches it). Reading a variable that holds one forces it and stores the
    result in the variable."""

    __slots__ = ("what", "compute")

    def __init__(self, what, compute):
        self.what = what
        self.compute = compute

    def __repr__(self):
        return f"::deferred:{self.what}"


def force(sym):
    """The value of `sym`, computing it first if it is Deferred."""
    value = sym.value
    if type(value) is Deferred:
        value = sym.value = value.compute()
    return value


class Cons:
    """A pair. `loc` is set by the reader: on the first cell of a list it is
    the location of the opening bracket, on the others that of their car."""

    __slots__ = ("car", "cdr", "loc")

    def __init__(self, car, cdr=None, loc=None):
        self.car = car
        self.cdr = cdr
        self.loc = loc

    def __iter__(self):
        cell = self
        while isinstance(cell, Cons):
            yield cell.car
            cell = cell.cdr

    def __repr__(self):
        return to_string(self)


def lisp_list(items, tail=None):
    """A Lisp list of the Python iterable `items`, ending in `tail`."""
    result = tail
    for item in reversed(list(items)):
        result = Cons(item, result)
    return result


def py_list(lst, what="list"):
    """The elements of a proper Lisp list as a Python list."""
    items = []
    cell = lst
    while isinstance(cell, Cons):
        items.append(cell.car)
        cell = cell.cdr
    if cell is not None:
        from .errors import SNError
        raise SNError(f"not a proper {what}: {to_string(lst)}")
    return items


def is_list(x):
    return x is None or isinstance(x, Cons)


def is_number(x):
    return isinstance(x, (int, float, np.integer, np.floating)) and not isinstance(x, bool)


def format_number(x):
    if isinstance(x, (int, np.integer)):
        return str(int(x))
    x = float(x)
    if x != x:
        return "nan"
    if x in (float("inf"), float("-inf")):
        return "inf" if x > 0 else "-inf"
    if x.is_integer() and abs(x) < 1e15:
        return str(int(x))  # TLisp numbers are all floats and print this way
    return repr(x)


_ESCAPES = {"\n": "\\n", "\t": "\\t", '"': '\\"', "\\": "\\\\"}


def format_string(s):
    return '"' + "".join(_ESCAPES.get(ch, ch) for ch in s) + '"'


def to_string(x, readably=True, depth=0):
    """Print `x` the way the REPL shows values; strings are quoted when
    `readably`, as `print` does, and bare otherwise, as `prin`/`%s` do."""
    if depth > 200:
        return "..."
    if x is None:
        return "()"
    if isinstance(x, bool):
        return "t" if x else "()"
    if is_number(x):
        return format_number(x)
    if isinstance(x, str):
        return format_string(x) if readably else x
    if isinstance(x, Symbol):
        return x.name
    if isinstance(x, Cons):
        return _list_to_string(x, readably, depth)
    if isinstance(x, np.ndarray):
        return _matrix_to_string(x)
    return str(x)


def _list_to_string(x, readably, depth):
    head = x.car
    if isinstance(head, Symbol) and isinstance(x.cdr, Cons) and x.cdr.cdr is None:
        prefix = {"quote": "'", "backquote": "`", "unquote": ",",
                  "unquote-splicing": ",@"}.get(head.name)
        if prefix:
            return prefix + to_string(x.cdr.car, readably, depth + 1)
    parts = []
    cell = x
    count = 0
    while isinstance(cell, Cons):
        if count >= 10000:
            parts.append("...")
            cell = None
            break
        parts.append(to_string(cell.car, readably, depth + 1))
        cell = cell.cdr
        count += 1
    if cell is not None:
        parts.append(".")
        parts.append(to_string(cell, readably, depth + 1))
    return "(" + " ".join(parts) + ")"


def _matrix_to_string(m):
    if m.ndim == 0:
        return "[" + format_number(m.item()) + "]"
    if m.size > 1000:
        return "::matrix:" + "x".join(str(d) for d in m.shape)
    if m.ndim == 1:
        return "[" + " ".join(format_number(v) for v in m.tolist()) + "]"
    return "[" + "".join(_matrix_to_string(row) for row in m) + "]"
