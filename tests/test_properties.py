"""Any text at all gives a value or an sn error: never a Python exception,
never a crash. Long computations are cut by a timer standing in for Ctrl-C."""

import io
import signal
from contextlib import contextmanager

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sn.errors import SNError
from sn.interpreter import Interpreter, LispExit

NAMES = ["+", "-", "*", "/", "div", "mod", "1+", "0=", "=", "<", "abs", "sqrt", "log", "exp",
         "int", "round", "min", "max", "list", "cons", "car", "cdr", "cadr", "nth", "length",
         "append", "reverse", "last", "lasta", "range", "mapcar", "apply", "funcall", "member",
         "assoc", "rplaca", "rplacd", "nthcdr", "print", "prin", "printf", "sprintf", "pname",
         "concat", "matrix", "bound", "seed", "rand", "gauss", "eval", "boundp", "quote",
         "setq", "let", "let*", "if", "when", "unless", "cond", "progn", "and", "or", "not",
         "null", "while", "repeat", "for", "each", "all", "de", "df", "dmd", "lambda", "incr",
         "defvar", "error", "time", "x", "y", "f", "t", "&optional", "equal", "1-", "sup"]


class Timeout(Exception):
    pass


@contextmanager
def time_limit(seconds):
    def expire(signum, frame):
        raise Timeout()
    old = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def evaluate(text):
    interp = Interpreter(out=io.StringIO())
    try:
        with time_limit(2.0):
            interp.eval_text(text, "random.sn")
    except (SNError, LispExit, Timeout):
        pass


atoms = st.one_of(
    st.sampled_from(NAMES),
    st.integers(-12, 12).map(str),
    st.floats(-5, 5, allow_nan=False).map(lambda x: f"{x:.3g}"),
    st.sampled_from(['"s"', '"%d"', '"%l %s"', "()", "'a", "[1 2]", "[[1][2]]", ":k", "'(1 2)"]),
)

sexprs = st.recursive(
    atoms,
    lambda inner: st.lists(inner, max_size=5).map(lambda xs: "(" + " ".join(xs) + ")"),
    max_leaves=25,
)


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(max_size=200))
def test_random_text_gives_a_value_or_an_sn_error(text):
    evaluate(text)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(alphabet="()[]'`,@~\";. \n\tab1-:", max_size=80))
def test_random_brackets_and_quotes(text):
    evaluate(text)


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(sexprs, min_size=1, max_size=4))
def test_random_sexpressions_give_a_value_or_an_sn_error(forms):
    evaluate("\n".join(forms))
