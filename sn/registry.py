"""The one registry of functions written in Python, under their SN names.

Library modules register with the decorators below when imported; every new
Interpreter installs everything registered. A new library plugs in by being
listed in LIBRARY_MODULES, without touching the evaluator.
"""

REGISTRY = {}

LIBRARY_MODULES = [
    "sn.builtins",
    "sn.netlib",
    "sn.connect",
    "sn.modern",
    "sn.netenv",
    "sn.weights",
    "sn.display",
    "sn.plot",
]


class Builtin:
    """A function written in Python. Its arguments are evaluated first;
    `wants_interp` functions receive the interpreter as first argument."""

    __slots__ = ("name", "fn", "wants_interp")

    def __init__(self, name, fn, wants_interp):
        self.name = name
        self.fn = fn
        self.wants_interp = wants_interp

    def __repr__(self):
        return f"::dx:{self.name}"


class Special:
    """A special form: receives the interpreter and its unevaluated arguments."""

    __slots__ = ("name", "fn")

    def __init__(self, name, fn):
        self.name = name
        self.fn = fn

    def __repr__(self):
        return f"::dy:{self.name}"


def builtin(*names, interp=False):
    """Register a Python function under one or more SN names."""
    def register(fn):
        for name in names:
            REGISTRY[name] = Builtin(name, fn, interp)
        return fn
    return register


def special(*names):
    """Register a special form (unevaluated arguments, a Lisp list)."""
    def register(fn):
        for name in names:
            REGISTRY[name] = Special(name, fn)
        return fn
    return register
