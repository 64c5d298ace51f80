"""The Lisp of SN.md section 2, as a table of (source, expected printed value
or expected error). Each row runs in a fresh interpreter."""

import io

import pytest

from sn.datum import to_string
from sn.errors import SNError
from sn.interpreter import Interpreter, LispExit


class Err:
    """An expected error: a fragment of its message, and optionally where."""

    def __init__(self, fragment, line=None, col=None):
        self.fragment, self.line, self.col = fragment, line, col

    def __repr__(self):
        return f"Err({self.fragment!r}, {self.line}, {self.col})"


TABLE = [
    # definition
    ("(de sq (x) (* x x)) (sq 7)", "49"),
    ("(de fact (n) (if (< n 2) 1 (* n (fact (1- n))))) (fact 20)", "2432902008176640000"),
    ("(de f (a &optional b) (list a b)) (f 1)", "(1 ())"),
    ("(de f (a &optional (b 10) (c (* b 2))) (list a b c)) (f 1)", "(1 10 20)"),
    ("(de f (a &optional (b 10)) (list a b)) (f 1 2)", "(1 2)"),
    ("(de perf l l) (perf 1 2 3)", "(1 2 3)"),
    ("(de perf l l) (perf)", "()"),
    ("(de f (a . rest) (list a rest)) (f 1 2 3)", "(1 (2 3))"),
    ("(de f ((a b) c) (list b a c)) (f '(1 2) 3)", "(2 1 3)"),
    ("(df q (x) x) (q (+ 1 2))", "(+ 1 2)"),
    ("(dmd my-inc (v) `(setq ,v (+ ,v 1))) (setq z 5) (my-inc z) z", "6"),
    ("(dmd my-list args `(list ,@args)) (my-list 1 2 3)", "(1 2 3)"),
    ("((lambda (x y) (+ x y)) 2 3)", "5"),
    ("(setq g (lambda (x) (* 10 x))) (g 4)", "40"),
    ("(de f (x) x) (f)", Err("too few arguments", 1, 14)),
    ("(de f (x) x) (f 1 2)", Err("too many arguments", 1, 14)),
    ("(de 3 (x) x)", Err("not a function name")),
    # binding and dynamic scope
    ("(setq a 1 b 2) (+ a b)", "3"),
    ("(setq a 1 b)", Err("pairs")),
    ("(defvar dv 4) (defvar dv 5) dv", "4"),
    ("(defvar dv2) dv2", "()"),
    ("(let ((x 1) (y 2)) (list x y))", "(1 2)"),
    ("(setq x 10) (let ((x 1) (y x)) y)", "10"),
    ("(setq x 10) (let* ((x 1) (y x)) y)", "1"),
    ("(setq x 10) (let ((x 1)) (setq x 2)) x", "10"),
    ("(let (((a . b) '(1 2 3))) b)", "(2 3)"),
    ("(de show () v) (de outer (v) (show)) (outer 42)", "42"),
    ("(setq v 1) (de show () v) (let ((v 2)) (show))", "2"),
    ("(setq n 1) (incr n) (incr n 10) n", "12"),
    ("(setq n 1.5) (incr n -0.5)", "1"),
    ("(incr undefined-counter)", Err("unbound variable: undefined-counter")),
    # control
    ("(if () 1 2 3)", "3"),
    ("(if 0 'yes 'no)", "yes"),
    ("(if () 1)", "()"),
    ("(when t 1 2)", "2"),
    ("(when () 1 2)", "()"),
    ("(unless () 1 2)", "2"),
    ("(cond ((= 1 2) 'a) ((= 2 2) 'b 'c) (t 'd))", "c"),
    ("(cond ((+ 1 2)))", "3"),
    ("(cond ((= 1 2) 'a))", "()"),
    ("(progn 1 2 3)", "3"),
    ("(and 1 2 3)", "3"),
    ("(and 1 () 3)", "()"),
    ("(and)", "t"),
    ("(or () 2 3)", "2"),
    ("(or () ())", "()"),
    ("(not ())", "t"),
    ("(not 0)", "()"),
    ("(null '(1))", "()"),
    ("~()", "t"),
    ("~1", "()"),
    ("(setq i 0 s 0) (while (< i 5) (incr s i) (incr i)) s", "10"),
    ("(setq s 0) (repeat 4 (incr s 2)) s", "8"),
    ("(setq s ()) (for (i 1 3) (setq s (cons i s))) s", "(3 2 1)"),
    ("(setq s ()) (for (i 10 0 -5) (setq s (cons i s))) s", "(0 5 10)"),
    ("(setq s ()) (for (i 0 1 0.25) (setq s (cons i s))) (length s)", "5"),
    ("(for (i 1 0) i)", "()"),
    ("(for (i 1 2 0) i)", Err("step is 0")),
    ("(setq s 0) (each ((x '(1 2 3))) (incr s x)) s", "6"),
    ("(setq s ()) (each ((x '(1 2 3)) (y '(a b))) (setq s (cons (list x y) s))) s", "((2 b) (1 a))"),
    ("(all ((x '(1 2 3))) (* x x))", "(1 4 9)"),
    ("(all (((a b) '((1 2) (3 4)))) (+ a b))", "(3 7)"),
    ("(each ((x 3)) x)", Err("not a list")),
    # numbers
    ("(+ 1 2 3)", "6"), ("(+)", "0"), ("(- 10 1 2)", "7"), ("(- 5)", "-5"),
    ("(* 2 3 4)", "24"), ("(/ 1 2)", "0.5"), ("(/ 4 2)", "2"), ("(/ 2)", "0.5"),
    ("(/ 1 0)", Err("division by zero", 1, 1)),
    ("(div 7 2)", "3"), ("(div -7 2)", "-3"), ("(mod 7 3)", "1"), ("(mod -7 3)", "-1"),
    ("(div 7 0)", Err("division by zero")),
    ("(1+ 4)", "5"), ("(1- 4)", "3"), ("(0= 0)", "t"), ("(0= 1)", "()"),
    ("(0<> 0)", "()"), ("(0<> 2)", "t"),
    ("(= 1 1.0)", "t"), ("(<> 1 2)", "t"), ("(< 1 2 3)", "t"), ("(< 1 3 2)", "()"),
    ("(> 3 2)", "t"), ("(<= 2 2)", "t"), ("(>= 1 2)", "()"), ("(= 'a 'a)", "t"),
    ("(< 'a 1)", Err("cannot compare")),
    ("(abs -3)", "3"), ("(sqrt 16)", "4"), ("(sqrt -1)", Err("negative")),
    ("(exp 0)", "1"), ("(log 1)", "0"), ("(log 0)", Err("positive")),
    ("(tanh 0)", "0"), ("(min 3 1 2)", "1"), ("(max 3 1 2)", "3"),
    ("(int 2.7)", "2"), ("(int -2.7)", "-2"), ("(round 2.5)", "3"), ("(round -2.4)", "-2"),
    ("(+ 1 'a)", Err("+: not a number: a", 1, 1)),
    # lists
    ("(list 1 'a \"s\")", '(1 a "s")'), ("(cons 1 2)", "(1 . 2)"), ("(cons 1 '(2))", "(1 2)"),
    ("(car '(1 2))", "1"), ("(cdr '(1 2))", "(2)"), ("(car ())", "()"),
    ("(car 5)", Err("car: not a list: 5", 1, 1)),
    ("(caar '((1) 2))", "1"), ("(cadr '(1 2 3))", "2"), ("(cdar '((1 2) 3))", "(2)"),
    ("(cddr '(1 2 3))", "(3)"),
    ("(nth 0 '(a b c))", "a"), ("(nth 2 '(a b c))", "c"), ("(nth 5 '(a b c))", "()"),
    ("(length '(1 2 3))", "3"), ("(length ())", "0"), ("(length \"abc\")", "3"),
    ("(append '(1 2) '(3) () '(4 5))", "(1 2 3 4 5)"), ("(append)", "()"),
    ("(reverse '(1 2 3))", "(3 2 1)"),
    ("(last '(1 2 3))", "(3)"), ("(lasta '(1 2 3))", "3"), ("(lasta '(1 2 . 3))", "3"),
    ("(range 1 4)", "(1 2 3 4)"), ("(range 3)", "(1 2 3)"), ("(range 0 1 0.5)", "(0 0.5 1)"),
    ("(range 4 1 -1)", "(4 3 2 1)"), ("(range 1 0)", "()"),
    ("(mapcar 1+ '(1 2 3))", "(2 3 4)"), ("(mapcar + '(1 2) '(10 20 30))", "(11 22)"),
    ("(mapcar (lambda (x) (* x x)) '(1 2))", "(1 4)"),
    ("(apply + '(1 2 3))", "6"), ("(apply + 1 2 '(3))", "6"), ("(funcall list 1 2)", "(1 2)"),
    ("(member 2 '(1 2 3))", "(2 3)"), ("(member 5 '(1 2 3))", "()"),
    ("(assoc 'b '((a 1) (b 2)))", "(b 2)"), ("(assoc 'z '((a 1)))", "()"),
    ("(setq c (list 1 2)) (rplaca c 'x) c", "(x 2)"),
    ("(setq c (list 1 2)) (rplacd c '(y)) c", "(1 y)"),
    ("(nthcdr 2 '(a b c d))", "(c d)"), ("(nthcdr 9 '(a b))", "()"),
    ("(rplaca () 1)", Err("not a pair")),
    # text
    ("(sprintf \"%d-%5.2f-%s-%l\" 3 2.5 \"ab\" \"ab\")", '"3- 2.50-ab-\\"ab\\""'),
    ("(sprintf \"%6d|%-4d|%03d\" 42 7 5)", '"    42|7   |005"'),
    ("(sprintf \"%g %e\" 0.0001 12345.678)", '"0.0001 1.234568e+04"'),
    ("(sprintf \"%l\" '(a \"b\" 1.5))", '"(a \\"b\\" 1.5)"'),
    ("(sprintf \"100%%\")", '"100%"'),
    ("(sprintf \"%d %d\" 1)", Err("not enough arguments")),
    ("(sprintf \"%d\" 1 2)", Err("more than the format")),
    ("(sprintf \"%d\" \"x\")", Err("needs a number")),
    ("(pname 'abc)", '"abc"'), ("(pname 12)", '"12"'), ("(pname \"s\")", '"s"'),
    ("(concat \"ab\" \"cd\" \"\")", '"abcd"'), ("(concat \"a\" 1)", Err("not a string")),
    # arrays
    ("(bound (matrix 3 4))", "(3 4)"), ("(bound (matrix 3 4) 1)", "2"), ("(bound (matrix 3 4) 2)", "3"),
    ("(setq m (matrix 2 3)) (m 1 2 7) (m 1 2)", "7"),
    ("(setq m [[1 2][3 4]]) (m 1 0)", "3"), ("([1 2 3] 2)", "3"),
    ("(setq m (matrix 2 2)) (m 2 0)", Err("out of range")),
    ("(setq m (matrix 2 2)) (m 0 'a)", Err("must be an integer")),
    ("(matrix -1)", Err("negative dimension")),
    ("(bound '(1 2))", Err("not a matrix")),
    # random numbers
    ("(seed 3) (setq a (rand 0 1)) (seed 3) (= a (rand 0 1))", "t"),
    ("(seed 0.87) (setq a (gauss 0 1)) (seed 0.87) (= a (gauss 0 1))", "t"),
    ("(seed 1) (setq ok t) (repeat 200 (let ((r (rand -2 3))) (when (or (< r -2) (>= r 3)) (setq ok ())))) ok", "t"),
    ("(seed 1) (setq ok t) (repeat 200 (let ((r (rand 2))) (when (or (< r -2) (>= r 2)) (setq ok ())))) ok", "t"),
    # misc
    ("(quote (a b))", "(a b)"), ("'x", "x"), ("(eval '(+ 1 2))", "3"),
    ("(eval (list '* 2 3))", "6"),
    ("(boundp 'zz)", "()"), ("(setq zz 1) (boundp 'zz)", "t"),
    ("(libload \"sn28/sn28ite\")", '"sn28/sn28ite"'),
    ("(numberp (time (+ 1 2)))", "t"),
    ("(error \"boom\" 3)", Err("boom 3", 1, 1)),
    ("(error 'ensemble \"first argument must be smaller\" ())", Err("ensemble: first argument must be smaller")),
    ("t", "t"), ("nil", "()"), ("()", "()"), (":key", ":key"), ("\"a\\tb\"", '"a\\tb"'),
    ("undefined-thing", Err("unbound variable: undefined-thing", 1, 1)),
    ("(undefined-function 1)", Err("undefined function: undefined-function", 1, 1)),
    ("(1 2)", Err("not a function")),
    ("(setq t 3)", Err("t cannot be changed")),
    # reader rules (section 1)
    ("; a comment\n42 ; another", "42"),
    ("-2.4", "-2.4"), (".5", "0.5"), ("1e-3", "0.001"), ("+7", "7"), ("1.", "1"),
    ("'1+", "1+"), ("'0<>", "0<>"), ("'nlf-tanh", "nlf-tanh"), ("'FooBar", "foobar"),
    ("\"a\\nb\"", '"a\\nb"'), ("\"q\\\"q\"", '"q\\"q"'), ("\"b\\\\s\"", '"b\\\\s"'),
    ("'(a . b)", "(a . b)"), ("'(a b . c)", "(a b . c)"),
    ("[1 2 3]", "[1 2 3]"), ("[[-1 -1][1 -1]]", "[[-1 -1][1 -1]]"), ("[]", "[]"),
    ("`(1 ,(+ 1 1) ,@(list 3 4))", "(1 2 3 4)"), ("(setq x 5) `(a . ,x)", "(a . 5)"),
    ("''a", "'a"), ("'~x", "(null x)"),
    ("(car '(1 2)", Err("unclosed '('", 1, 1)),
    ("(+ 1 2))", Err("unexpected ')'", 1, 8)),
    ("(list\n  \"abc)\n", Err("unterminated string", 2, 3)),
    ("[1 a]", Err("numbers only", 1, 4)),
    ("[[1 2][3]]", Err("same length")),
    ("(a ]", Err("expected ')'", 1, 4)),
    ("(a . b c)", Err("misplaced '.'", 1, 4)),
]


def run(source, out=None):
    interp = Interpreter(out=out or io.StringIO())
    return interp.eval_text(source, "t.sn")


@pytest.mark.parametrize("source,expected", TABLE, ids=[s[:40] for s, _ in TABLE])
def test_table(source, expected):
    if isinstance(expected, Err):
        with pytest.raises(SNError) as info:
            run(source)
        err = info.value
        assert expected.fragment in err.message
        if expected.line is not None:
            assert err.where is not None, "the error has no location"
            assert (err.where.line, err.where.col) == (expected.line, expected.col)
    else:
        assert to_string(run(source)) == expected


@pytest.mark.parametrize("source,text", [
    ("(print 1 \"a\" 'b)", '1 "a" b\n'),
    ("(prin 1 2)", "1 2"),
    ("(printf \"%s=%d\\n\" \"x\" 3)", "x=3\n"),
    ("(for (i 1 3) (prin i))", "123"),
])
def test_output(source, text):
    out = io.StringIO()
    run(source, out)
    assert out.getvalue() == text


def test_exit_raises_lisp_exit():
    with pytest.raises(LispExit) as info:
        run("(exit 3)")
    assert info.value.code == 3


def test_error_chain_names_every_enclosing_call():
    source = "(de g (x)\n  (car x))\n(de h (y)\n  (g y))\n(h 5)\n"
    with pytest.raises(SNError) as info:
        run(source)
    err = info.value
    assert (err.where.line, err.where.col) == (2, 3)
    assert [(w, loc.line, loc.col) for w, loc, _ in err.frames] == [("(g y)", 4, 3), ("(h 5)", 5, 1)]
    text = err.report()
    assert "t.sn:2:3: car: not a list: 5" in text
    assert "  (car x))" in text and "^" in text


def test_runaway_recursion_is_an_error_not_a_crash():
    with pytest.raises(SNError) as info:
        run("(de r (n) (+ 1 (r n))) (r 1)")
    assert "recursion too deep" in info.value.message
    assert info.value.frames[0][2] > 1000  # repeated frames are counted, not listed


def test_deep_but_finite_recursion_works():
    assert run("(de cnt (n) (if (= n 0) 0 (+ 1 (cnt (- n 1))))) (cnt 2000)") == 2000


def test_state_survives_an_error():
    interp = Interpreter(out=io.StringIO())
    interp.eval_text("(setq x 1) (de f () (let ((x 2)) (car x)))")
    with pytest.raises(SNError):
        interp.eval_text("(f)")
    assert interp.eval_text("x") == 1


def test_load_is_relative_to_the_loading_file(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "lib.sn").write_text("(setq from-lib 7)")
    (tmp_path / "main.sn").write_text('(load "sub/lib.sn") (setq seen from-lib)')
    interp = Interpreter(out=io.StringIO())
    interp.load(str(tmp_path / "main.sn"))
    assert interp.get("seen") == 7


def test_load_of_a_missing_file_names_it(tmp_path):
    with pytest.raises(SNError) as info:
        run(f'(load "{tmp_path}/nope.sn")')
    assert "nope.sn" in info.value.message


def test_errors_in_loaded_files_point_into_them(tmp_path):
    (tmp_path / "bad.sn").write_text("(setq a 1)\n\n  (car a)\n")
    with pytest.raises(SNError) as info:
        run(f'(load "{tmp_path}/bad.sn")')
    where = info.value.where
    assert where.file.endswith("bad.sn") and (where.line, where.col) == (3, 3)
