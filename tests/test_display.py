"""Seeing and stepping: the terminal displays (checked as text), (step), SN2.8's
display hooks and window graphics, and the pictures of sn.plot."""

import builtins
import io
import os
import re

import numpy as np
import pytest

from sn import display
from sn.__main__ import main
from sn.errors import SNError
from sn.interpreter import Interpreter

ASCII = " .:-=+*#%@"

SMALL_NET = """
(build-net '((input (1 6 6)) (maps (2 3 3)) (out 4)) '((maps out)))
(mask-2d-connect input 6 6 maps 3 3 2 2 3 3 :pad 1 :background -1 :table (full-table 1 2))
"""


def small(n=12, seed=3, text=SMALL_NET, mode="ascii"):
    """A small convolutional network on random patterns, drawn in `mode`."""
    out = io.StringIO()
    interp = Interpreter(out=out)
    interp.eval_text(text)
    rng = np.random.default_rng(seed)
    n_in = len(list(interp.get("input-layer")))
    n_out = len(list(interp.get("output-layer")))
    desired = -np.ones((n, n_out))
    desired[np.arange(n), rng.integers(0, n_out, n)] = 1.0
    interp.set("pattern-matrix", rng.uniform(-1, 1, (n, n_in)))
    interp.set("desired-matrix", desired)
    interp.eval_text(f"(ensemble 0 {n - 1}) (set-class-max) (seed 2) (forget-inv 2.4) "
                     f"(epsi 0.1) (set-display '{mode})")
    return interp, out


def take(out):
    text = out.getvalue()
    out.seek(0)
    out.truncate()
    return text


def weights(interp):
    net = interp.net
    return np.concatenate([net.w[:net.nweights], net.delta[:net.nweights],
                           net.hess[:net.nweights]])


def level(k):
    """A value that the ascii display draws as ASCII[k] (k of 0..9)."""
    return -1.0 + 2.0 * k / 9


# ---- pictures as text ---------------------------------------------------------

def test_pattern_drawn_as_known_characters():
    interp, out = small(text="(build-net '((input (1 2 5)) (out 3)) '((input out)))")
    ks = [0, 1, 2, 3, 4, 9, 8, 7, 6, 5]
    patterns = np.array([[level(k) for k in ks], [0.0] * 10])
    interp.set("pattern-matrix", patterns)
    interp.set("desired-matrix", np.array([[-1, 1, -1], [1, -1, -1]], dtype=float))
    interp.eval_text("(draw-pattern 0)")
    assert take(out).splitlines() == [
        "pattern 0  label 1",
        "  ..::--==",
        "@@%%##**++",
    ]


def test_pattern_shapes_256_values_and_nearest_square():
    interp, out = small(text="(build-net '((input 256) (out 2)) '((input out)))")
    interp.set("pattern-matrix", np.ones((1, 256)))
    interp.set("desired-matrix", np.array([[1.0, -1.0]]))
    interp.eval_text("(draw-pattern 0)")
    lines = take(out).splitlines()
    assert lines[1:] == ["@" * 32] * 16
    interp.eval_text("(clear-net) (build-net '((input 10) (out 2)) '((input out)))")
    interp.set("pattern-matrix", np.ones((1, 10)))
    interp.eval_text("(draw-pattern 0)")
    assert take(out).splitlines()[1:] == ["@" * 8, "@" * 8, "@" * 4]   # 4 columns, NaN blank


def test_pattern_errors():
    interp, out = small()
    with pytest.raises(SNError, match="not in 0..11"):
        interp.eval_text("(draw-pattern 12)")
    interp.set("pattern-matrix", None)
    with pytest.raises(SNError, match="pattern-matrix is not a 2-d matrix"):
        interp.eval_text("(draw-pattern 0)")


def test_plane_shaped_layer_drawn_as_grids_side_by_side():
    interp, out = small()
    lo = interp.get("maps").car
    states = [level(k) for k in range(9)] + [level(9 - k) for k in range(9)]
    interp.net.x[lo:lo + 18] = states
    interp.eval_text("(draw-layer maps)")
    assert take(out).splitlines() == [
        "maps: 2 maps 3x3",
        "0      1",
        "  ..:: @@%%##",
        "--==++ **++==",
        "**##%% --::..",
    ]


def test_flat_layer_drawn_as_cells_with_values():
    interp, out = small()
    lo = interp.get("out").car
    interp.net.x[lo:lo + 4] = [-1.0, 1.0, 0.25, level(7)]
    interp.eval_text("(draw-layer out)")
    assert take(out).splitlines() == [
        "out: 4 units",
        "    0     1     2     3",
        "         @@    **    ##",
        "-1.00 +1.00 +0.25 +0.56",
    ]


def test_draw_weights_shows_the_kernels_in_order():
    interp, out = small()
    net = interp.net
    block = [b for b in net.blocks if b.kind == "conv"][0]
    assert display.kernel_shape(net, block) == (3, 3)
    ramp = (np.arange(9) - 4) * 0.1
    for (_, _, base), values in zip(block.pairs, (ramp, ramp[::-1])):
        net.w[base:base + 9] = values
    interp.eval_text("(draw-weights maps)")
    lines = take(out).splitlines()
    assert lines[0] == "maps: 2 kernels 3x3 from input; weights -0.4 (blank) .. +0.4 (full)"
    assert lines[1:] == [
        "0>0    0>1",
        "  ..:: @@%%##",
        "--==** **==--",
        "##%%@@ ::..",
    ]


def test_kernels_of_several_input_maps_grouped_by_output_map():
    interp, out = small(text="""
        (build-net '((input (1 6 6)) (maps (2 3 3)) (more (3 2 2)) (out 4)) '((more out)))
        (mask-2d-connect input 6 6 maps 3 3 2 2 3 3 :pad 1 :background -1 :table (full-table 1 2))
        (mask-2d-connect maps 3 3 more 2 2 1 1 2 2 :table (full-table 2 3))""")
    interp.eval_text("(draw-weights more)")
    lines = take(out).splitlines()
    assert lines[0].startswith("more: 6 kernels 2x2 from maps;")
    heads = [l for l in lines if l.startswith("more map")]
    assert heads == [f"more map {o}, kernels from maps maps:" for o in range(3)]
    assert len(lines) == 1 + 3 * (1 + 1 + 2)


def test_kernel_shapes_are_read_from_the_taps():
    interp, _ = small(text="""
        (build-net '((input (1 7 9)) (maps (1 3 4)) (flat 12) (out 2)) '((flat out)))
        (mask-2d-connect input 7 9 maps 3 4 2 2 3 2)
        (mask-toric-connect input 7 9 flat 3 4 2 2 3 2)""")
    blocks = [b for b in interp.net.blocks if b.kind == "conv"]
    assert [display.kernel_shape(interp.net, b) for b in blocks] == [(2, 3), (2, 3)]


def test_draw_weights_of_a_fully_connected_layer():
    interp, out = small()
    interp.eval_text("(draw-weights out)")
    lines = take(out).splitlines()
    assert lines[0].startswith("out: weights into each unit from maps;")
    assert lines[1].split() == ["0", "1", "2", "3"]
    assert len(lines) == 2 + 3        # titles and the 3 rows of the maps, side by side


def test_draw_net_draws_every_layer():
    interp, out = small()
    interp.eval_text("(test-pattern 0) (draw-net)")
    heads = [l for l in take(out).splitlines() if re.match(r"^\w+: ", l)]
    assert heads == ["input: 1 map 6x6", "maps: 2 maps 3x3", "out: 4 units"]


def test_unicode_and_colour():
    interp, out = small(mode="unicode")
    interp.net.x[interp.get("out").car + 0] = 1.0
    interp.eval_text("(draw-layer out)")
    assert "██" in take(out)
    interp.eval_text("(set-display 'color) (draw-layer maps) (draw-weights maps)")
    text = take(out)
    assert "\x1b[48;5;" in text and text.count("\x1b[0m") >= 6
    assert display._visible("\x1b[48;5;240m  \x1b[0m") == 2
    assert interp.eval_text("(set-display)").name == "color"
    with pytest.raises(SNError, match="expects ascii, unicode, color or auto"):
        interp.eval_text("(set-display 'sepia)")


class Stream(io.StringIO):
    def __init__(self, tty, encoding="utf-8"):
        super().__init__()
        self.tty, self._encoding = tty, encoding

    def isatty(self):
        return self.tty

    @property
    def encoding(self):
        return self._encoding


def test_automatic_choice_of_display():
    assert display.auto_mode(Stream(False), {"TERM": "xterm"}) == "ascii"
    assert display.auto_mode(Stream(True), {"TERM": "xterm"}) == "color"
    assert display.auto_mode(Stream(True), {"TERM": "dumb"}) == "ascii"
    assert display.auto_mode(Stream(True), {"TERM": "xterm", "NO_COLOR": "1"}) == "unicode"
    assert display.auto_mode(Stream(True, "ascii"), {"TERM": "xterm", "NO_COLOR": ""}) == "ascii"
    interp = Interpreter(out=io.StringIO())
    assert interp.eval_text("(set-display)").name == "ascii"


# ---- stepping -------------------------------------------------------------------

def test_step_is_one_basic_iteration_and_advances_the_pattern():
    a, out = small()
    b, _ = small()
    a.eval_text("(setq current-pattern 4)")
    a.eval_text("(step)")
    b.eval_text("(basic-iteration 4)")
    assert np.array_equal(weights(a), weights(b))
    assert not np.array_equal(weights(a), weights(small()[0]))
    assert a.get("current-pattern") == 5 and a.get("age") == b.get("age") == 1
    assert a.get("local-error") == b.get("local-error")
    text = out.getvalue()
    assert text.startswith("pattern 4  label ")
    assert "out  output  desired" in text
    assert re.search(r"^age=1  pattern=4  error= +[0-9.]+  (  ok|\*\*arrgh\*\*)$", text, re.M)


def test_step_n_and_step_lm():
    a, out = small()
    b, _ = small()
    a.eval_text("(setq current-pattern 10) (step 3)")
    for p in (10, 11, 0):                      # next-pattern wraps around the training set
        b.eval_text(f"(basic-iteration {p})")
    assert np.array_equal(weights(a), weights(b))
    assert a.get("current-pattern") == 1
    assert out.getvalue().count("age=") == 1   # quiet, then the last one shown
    c, _ = small()
    d, _ = small()
    c.eval_text("(setq step-lm t) (step)")
    d.eval_text("(let ((lev-mar t)) (basic-newton-iteration 0))")
    assert np.array_equal(weights(c), weights(d))
    assert c.get("lev-mar") is None


def test_step_checks_its_arguments():
    interp, _ = small()
    with pytest.raises(SNError, match="positive integer"):
        interp.eval_text("(step 0)")
    interp.eval_text("(clear-net)")
    with pytest.raises(SNError, match="step:"):
        interp.eval_text("(step)")


# ---- SN2.8's display hooks ----------------------------------------------------------

def test_set_disp_text_prints_one_line_per_iteration():
    interp, out = small()
    assert interp.eval_text("(set-disp-text)").name == "disp-text"
    interp.eval_text("(learn 5)")
    lines = take(out).splitlines()
    assert len(lines) == 5
    assert all(re.match(r"^age=\d+  pattern=\d+  error=", l) for l in lines)
    assert [int(re.search(r"pattern=(\d+)", l).group(1)) for l in lines] == [0, 1, 2, 3, 4]
    interp.eval_text("(perf 0 2)")
    assert len(take(out).splitlines()) == 3 + 1   # one per pattern, then the perf line
    interp.eval_text("(set-disp-nil) (learn 5)")
    assert take(out) == ""


def test_lisp_loop_with_display_learns_as_the_fast_path():
    fast, _ = small()
    shown, _ = small()
    shown.eval_text("(set-disp-text)")
    fast.eval_text("(learn 7)")
    shown.eval_text("(learn 7)")
    assert np.array_equal(weights(fast), weights(shown))


@pytest.mark.parametrize("name, basic, perf", [
    ("disp-nil", "disp-nil", "disp-nil"),
    ("disp-text", "disp-text", "disp-text"),
    ("disp-net", "disp-net", "disp-net"),
    ("disp-error", "disp-error", "disp-nil"),
    ("disp-everything", "disp-everything", "disp-nil"),
    ("disp-net-and-error", "disp-error", "disp-net"),
    ("disp-user", "disp-user", "disp-user"),
])
def test_set_disp_switches_as_sn28(name, basic, perf):
    interp, _ = small()
    assert interp.eval_text(f"(set-{name})").name == name
    assert interp.get("disp-basic-iteration") is interp.get(basic)
    assert interp.get("disp-perf-iteration") is interp.get(perf)


def test_disp_net_error_everything_and_user():
    interp, out = small()
    interp.eval_text("(set-disp-net) (learn 1)")
    assert "maps: 2 maps 3x3" in take(out)
    interp.eval_text("(setq disp-error-maxerr 2) (set-disp-error) (learn 2)")
    lines = take(out).splitlines()
    assert len(lines) == 2 and all(re.match(r"^age= +\d+  error= +[0-9.]+ \|#*", l) for l in lines)
    interp.eval_text("(set-disp-everything) (learn 1)")
    text = take(out)
    assert "out: 4 units" in text and re.search(r"^age=\d+  pattern=\d+", text, re.M)
    interp.eval_text("(de disp-user (n) (printf \"mine %d\\n\" n)) (set-disp-user) (learn 2)")
    assert take(out) == "mine 4\nmine 5\n"


def test_disp_net_calls_a_redefined_draw_net():
    interp, out = small()
    interp.eval_text("(de draw-net (ns pn) (printf \"net %d %d\\n\" (length (car ns)) pn))"
                     "(set-disp-net) (learn 2)")
    assert take(out) == "net 3 0\nnet 3 1\n"


# ---- SN2.8's window graphics -------------------------------------------------------------

def test_graphics_calls_accepted_with_one_notice():
    interp, out = small()
    interp.eval_text("(setq w (new-window 100 100 \"x\")) (cls) (init-error-plotting 10 1)"
                     "(plt-draw 1 2) (new-plot-port 1 2 3) (color-rgb 1 0 0)")
    assert take(out) == "sn: graphics call new-window ignored (no windows in a terminal)\n"
    assert interp.get("w") is not None
    interp.eval_text("(gray-draw-list 10 10 '(-1 0 1 0.5 -0.5) 3 1 -1 8)")
    assert take(out).splitlines() == ["  ==@@", "##::"]
    interp.eval_text("(draw-list 0 0 '(1.8 -1.8) 2 1.8 32 28)")
    assert take(out) == "@@\n"
    interp.eval_text("(gprintf 10 20 \"hello\")")
    assert take(out) == "hello\n"


def test_graphics_batch_lays_out_by_position():
    interp, out = small()
    result = interp.eval_text("""
        (graphics-batch
          (draw-list 48 44 '(1) 1 1 32 28)
          (draw-list 32 94 '(1 -1) 2 1 32 28)
          (gprintf 100 94 "h")
          (+ 1 2))""")
    assert result == 3
    assert take(out).splitlines() == ["  @@", "@@      h"]   # x 100 is 8 columns right of x 32


XOR_SN28 = """
;;; SN2.8's examples/netold/xor/xor.sn (builds the network onwards), its
;;; stray closing parens removed

(alloc-net 100 1000)

(build-net
 '((input 2)(hidden 2)(output 1))
 '((input hidden)(hidden output)))

;;; the examples

(setq pattern-matrix [[-1 -1][1 -1][1 1][-1 1]])
(setq desired-matrix [[1][-1][1][-1]])
(ensemble 0 3)

;;; Always the same seed => the same initial weights configuration.

(seed 0.87)

;;; The parameters

(epsi 1)
(forget 1)

;;; The plotting functions

(de init-plotting()
  (init-error-plotting 40 1.5)
  (init-perf-plotting 40)
  (set-disp-net-and-error)
  (if ~draw-net-window
    (setq draw-net-window (new-window 512 200 "Network States"))
    (let ((window draw-net-window)) (cls)) )
)

(de draw-net(ns pn)
  (if draw-net-window
    (let ((window draw-net-window)
          (x (* 128 pn)) )
         (graphics-batch
            (draw-list (+ x 48) 44 (state output) 1 1.8 32 28)
            (draw-list (+ x 32) 94 (state hidden) 2 1.8 32 28)
            (draw-list (+ x 32) 144 (state input) 2 1.8 32 28) ) ) ) )


(init-plotting)
(run 4 40)
"""


def test_sn28_xor_demo_runs_to_completion(tmp_path):
    path = tmp_path / "xor.sn"
    path.write_text(XOR_SN28)
    out = io.StringIO()
    interp = Interpreter(out=out)
    interp.load(str(path))
    lines = out.getvalue().splitlines()
    assert sum("graphics call" in l for l in lines) == 1
    assert sum(l.startswith("patterns{0-3}") for l in lines) == 41
    assert sum(l.startswith("age=") for l in lines) == 160        # disp-error each iteration
    assert interp.get("age") == 160
    # each perf pattern draws the net: output (1 cell), hidden (2), input (2)
    drawn = [l for l in lines if not l.startswith(("age=", "patterns", "sn:"))]
    assert len(drawn) == 41 * 4 * 3
    assert all(len(l) in (4, 6) for l in drawn[0::3])   # output, indented as on the window


# ---- misclassified patterns -----------------------------------------------------------

def test_draw_misses_in_the_terminal():
    from sn.plot import misses
    interp, out = small(n=30)
    interp.eval_text("(test-set 20 29)")
    take(out)
    found, lo, hi = misses(interp, "test")
    assert (lo, hi) == (20, 29) and found
    assert interp.eval_text("(draw-misses 3)") == len(found)
    lines = take(out).splitlines()
    assert lines[0].startswith(f"{len(found)} misclassified of 10 patterns (20-29)")
    p, true, pred = found[0]
    assert lines[1].startswith(f"{p}: {true}>{pred}")
    assert true != pred
    desired = interp.get("desired-matrix")
    assert int(np.argmax(desired[p])) == true


# ---- pictures in files (matplotlib) -------------------------------------------------------

PNG = b"\x89PNG\r\n\x1a\n"


def test_plot_perf_writes_a_png(tmp_path):
    pytest.importorskip("matplotlib")
    interp, _ = small(n=30)
    perf = tmp_path / "run.perf"
    interp.eval_text(f'(setq perf-file "{perf}") (test-set 20 29) (ensemble 0 19) (trun 20 3)')
    out = tmp_path / "curve.png"
    assert interp.eval_text(f'(plot-perf "{out}")') == str(out)
    assert out.read_bytes().startswith(PNG)
    interp.eval_text("(plot-perf)")
    assert (tmp_path / "run.png").read_bytes().startswith(PNG)
    assert main(["plot", str(perf), "-o", str(tmp_path / "cli.png")]) == 0
    assert (tmp_path / "cli.png").stat().st_size > 1000
    assert not [f for f in os.listdir(tmp_path) if f.endswith(".tmp")]


def test_perf_file_curves():
    from sn.plot import curve_names, read_perf
    import tempfile
    with tempfile.NamedTemporaryFile("w", suffix=".perf", delete=False) as f:
        f.write(";;; (ensemble 0 19)\n;;; trun 20 3\n"
                "     0 0.50000000  10.00 ;{0-19}\n     0 0.60000000  20.00 ;{20-29}\n"
                "    20 0.40000000  30.00 ;{0-19}\n    20 0.45000000  25.00 ;{20-29}\n")
    curves, notes = read_perf(f.name)
    os.unlink(f.name)
    assert curves == {(0, 19): [(0, 0.5, 10.0), (20, 0.4, 30.0)],
                      (20, 29): [(0, 0.6, 20.0), (20, 0.45, 25.0)]}
    assert curve_names(curves, notes) == {(0, 19): "training {0-19}", (20, 29): "test {20-29}"}


NET_FILE = """
(build-net '((input (1 4 4)) (maps (2 2 2)) (out 3)) '((maps out)))
(mask-2d-connect input 4 4 maps 2 2 2 2 3 3 :pad 1 :background -1 :table (full-table 1 2))
(load-patterns "p.npy" "d.npy")
(ensemble 0 29)
(test-set 30 39)
"""


def test_errors_command_draws_the_misclassified_test_digits(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    rng = np.random.default_rng(4)
    desired = -np.ones((40, 3))
    desired[np.arange(40), rng.integers(0, 3, 40)] = 1.0
    np.save(tmp_path / "p.npy", rng.uniform(-1, 1, (40, 16)))
    np.save(tmp_path / "d.npy", desired)
    (tmp_path / "tiny.sn").write_text(NET_FILE)
    interp = Interpreter(out=io.StringIO())
    interp.load(str(tmp_path / "tiny.sn"))
    interp.eval_text(f'(seed 1) (forget-inv 2.4) (epsi 0.05) (learn-cycle 3) '
                     f'(save-net "{tmp_path / "tiny.wei"}")')
    from sn.plot import misses
    expected = len(misses(interp, "test")[0])
    out = tmp_path / "misses.png"
    assert main(["errors", str(tmp_path / "tiny.sn"), str(tmp_path / "tiny.wei"),
                 "-o", str(out)]) == 0
    assert out.read_bytes().startswith(PNG)
    said = capsys.readouterr().out
    assert said.startswith(f"{expected} misclassified of 10 patterns (30-39)")
    assert interp.eval_text(f'(save-misses "{tmp_path / "lisp.png"}")') == expected
    assert (tmp_path / "lisp.png").stat().st_size > 1000
    assert main(["errors", str(tmp_path / "tiny.sn"), str(tmp_path / "none.wei")]) == 1
    assert "no such weight file" in capsys.readouterr().err


def test_without_matplotlib_the_error_says_how_to_install_it(tmp_path, monkeypatch, capsys):
    real_import = builtins.__import__

    def no_matplotlib(name, *args, **kwargs):
        if name == "matplotlib" or name.startswith("matplotlib."):
            raise ImportError(f"No module named {name!r}")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_matplotlib)
    interp, _ = small(n=20)
    perf = tmp_path / "run.perf"
    perf.write_text("     0 0.5  10.00 ;{0-19}\n")
    interp.set("perf-file", str(perf))
    for form in ("(plot-perf)", f'(save-misses "{tmp_path / "m.png"}")'):
        with pytest.raises(SNError, match=r"needs matplotlib.*pip install -e '\.\[plot\]'.*"
                                          r"pip install matplotlib"):
            interp.eval_text(form)
    assert main(["plot", str(perf)]) == 1
    assert "pip install matplotlib" in capsys.readouterr().err
    assert not (tmp_path / "run.png").exists()
