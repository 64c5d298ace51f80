"""The network model and SN2.8's connection library (SN.md sections 3 and 4)."""

import io
import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest

from sn.errors import SNError
from sn.interpreter import Interpreter

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def sn(source, out=None):
    interp = Interpreter(out=out or io.StringIO())
    interp.eval_text(source, "t.sn")
    return interp


def counts(interp, layer):
    """(connections into the layer, distinct weights they use)."""
    net = interp.net
    units = [int(u) for u in interp.get(layer)]
    live = net.alive()
    into = np.isin(net.cdst[live], units)
    return int(into.sum()), int(len(np.unique(net.cw[live][into])))


def axis_taps(n_in, n_out, step, size, pad):
    """Connected taps along one axis, summed over the windows, derived directly."""
    if pad is None:
        origins = [min(i * step, n_in - size) for i in range(n_out)]
    else:
        origins = [i * step - pad for i in range(n_out)]
    return sum(max(0, min(o + size, n_in) - max(o, 0)) for o in origins)


GEOMETRIES = [  # rows cols out_rows out_cols xstep ystep xsize ysize
    (16, 16, 6, 6, 2, 2, 5, 5),
    (10, 7, 4, 3, 2, 2, 4, 3),
    (8, 8, 8, 8, 1, 1, 1, 1),
    (9, 12, 3, 4, 3, 3, 3, 3),
    (5, 9, 2, 3, 3, 2, 3, 3),   # inexact: windows pushed back inside
]


@pytest.mark.parametrize("geometry", GEOMETRIES)
@pytest.mark.parametrize("helper,shared", [("mask-2d-connect", True), ("local-2d-connect", False)])
def test_2d_helpers_counts(geometry, helper, shared):
    r, c, orr, oc, xs, ys, xz, yz = geometry
    interp = sn(f"(build-net-nobias '((a {r * c}) (b {orr * oc})) ())"
                f"({helper} a {r} {c} b {orr} {oc} {xs} {ys} {xz} {yz})")
    conns, weights = counts(interp, "b")
    assert conns == orr * oc * xz * yz
    assert weights == (xz * yz if shared else orr * oc * xz * yz)


@pytest.mark.parametrize("geometry", GEOMETRIES)
@pytest.mark.parametrize("pad", [1, 2])
def test_padding_without_background_connects_only_inside_taps(geometry, pad):
    r, c, orr, oc, xs, ys, xz, yz = geometry
    if (orr - 1) * ys - pad >= r or (oc - 1) * xs - pad >= c or min(xz, yz) <= pad:
        pytest.skip("some windows lie outside the source")
    interp = sn(f"(build-net-nobias '((a {r * c}) (b {orr * oc})) ())"
                f"(mask-2d-connect a {r} {c} b {orr} {oc} {xs} {ys} {xz} {yz} :pad {pad})")
    conns, weights = counts(interp, "b")
    assert conns == axis_taps(r, orr, ys, yz, pad) * axis_taps(c, oc, xs, xz, pad)
    assert interp.net.nunits == 1 + r * c + 2 * orr * oc  # no background unit made


def test_background_taps_read_constant_units():
    # 4x4 source, 2x2 windows of 3x3 stepped by 2 from -1: the first window's
    # row -1 and column -1 are outside (5 taps), the last window's row/col 4 too.
    interp = sn("(build-net-nobias '((a 16) (b 4)) ())"
                "(mask-2d-connect a 4 4 b 2 2 2 2 3 3 :pad 1 :background -1)")
    net = interp.net
    a = [int(u) for u in interp.get("a")]
    b = [int(u) for u in interp.get("b")]
    conns, weights = counts(interp, "b")
    assert (conns, weights) == (4 * 9, 9)
    first = [int(u) for u in interp.eval_text(f"(amont {b[0]})")]
    outside = [u for u in first if u not in a]
    assert len(outside) == 5
    assert all(net.x[u] == -1 and net.fanin[u] == 0 for u in outside)
    inside = sorted(u for u in first if u in a)
    assert inside == [a[0], a[1], a[4], a[5]]  # rows 0-1, columns 0-1
    # the background tap goes through the same kernel weight as the tap it replaces:
    # window (1,1) starts at (1,1) so its tap (0,0) reads a[5]; window (0,0)'s tap (0,0) is outside
    w_tap0_inside = interp.eval_text(f"(sindex {a[5]} {b[3]})")
    corner = [u for u in first if u not in a][0]
    assert interp.eval_text(f"(sindex {corner} {b[0]})") == w_tap0_inside
    # one background unit per out-of-image position, shared by the windows
    assert len({u for u in range(net.nunits) if net.x[u] == -1}) == 4 * 4 + 4 * 4 - 16 - 7


def test_zipcode_counts_and_units():
    interp = Interpreter(out=io.StringIO())
    interp.load(os.path.join(ROOT, "networks", "zipcode.sn"))
    from sn.info import summary
    info = summary(interp)
    assert (info["units"], info["connections"], info["weights"]) == (1256, 64660, 9760)
    rows = {l["name"]: (l["connections"], l["weights"]) for l in info["layers"]}
    assert rows == {"input": (0, 0), "h1": (19968, 1068), "h2": (38592, 2592),
                    "h3": (5790, 5790), "output": (310, 310)}


def test_mlp_counts():
    interp = Interpreter(out=io.StringIO())
    interp.load(os.path.join(ROOT, "networks", "mlp.sn"))
    from sn.info import summary
    assert summary(interp)["connections"] == 10690


def test_table_makes_one_kernel_per_pair():
    interp = sn("(build-net-nobias '((a (3 6 6)) (b (2 2 2))) ())"
                "(mask-2d-connect a 6 6 b 2 2 2 2 3 3 :table '((0 0) (2 0) (1 1)))")
    conns, weights = counts(interp, "b")
    assert (conns, weights) == (3 * 4 * 9, 3 * 9)
    b = [int(u) for u in interp.get("b")]
    a = [int(u) for u in interp.get("a")]
    sources = {int(u) for u in interp.eval_text(f"(amont {b[0]})")}
    assert sources <= set(a[:36]) | set(a[72:])  # planes 0 and 2 only


def test_tables():
    assert str(sn("").eval_text("(full-table 2 2)")) == "((0 0) (0 1) (1 0) (1 1))"
    assert str(sn("").eval_text("(one2one-table 3)")) == "((0 0) (1 1) (2 2))"
    table = sn("").eval_text("(conn-table ((0 1) (0)) ((1 2) (1)))")
    assert str(table) == "((0 0) (1 0) (1 1) (2 1))"


def test_toric_windows_wrap_around():
    interp = sn("(build-net-nobias '((a 16) (b 4)) ())"
                "(mask-toric-connect a 4 4 b 2 2 2 2 3 3)")
    a = [int(u) for u in interp.get("a")]
    b = [int(u) for u in interp.get("b")]
    last = sorted(int(u) for u in interp.eval_text(f"(amont {b[3]})"))
    # window (1,1) covers rows/cols 2,3,0 (wrapped)
    assert last == sorted(a[r * 4 + c] for r in (2, 3, 0) for c in (2, 3, 0))
    assert counts(interp, "b") == (36, 9)


def test_local_toric():
    interp = sn("(build-net-nobias '((a 16) (b 4)) ()) (local-toric-connect a 4 4 b 2 2 2 2 3 3)")
    assert counts(interp, "b") == (36, 36)


def test_1d_helpers_and_tdnn():
    interp = sn("(build-net-nobias '((a 10) (b 4) (c 4) (d 4)) ())"
                "(mask-1d-connect a 10 b 4 2 4) (local-1d-connect a 10 c 4 2 4)"
                "(equal-mask-1d-connect a 10 d 4 2 4)")
    assert counts(interp, "b") == (16, 4)
    assert counts(interp, "c") == (16, 16)
    assert counts(interp, "d") == (16, 1)
    # tdnn: 6 frames of 3 traits -> 3 frames of 2 traits, windows of 2 frames stepped by 2
    interp = sn("(build-net-nobias '((a 18) (b 6)) ()) (tdnn-connect a 6 3 b 3 2 2 2)"
                "(tdnn-bias-connect b 3 2)")
    conns, weights = counts(interp, "b")
    assert conns == 3 * (2 * 3) * 2 + 6
    assert weights == 2 * 3 * 2 + 2


def test_equal_mask_2d():
    interp = sn("(build-net-nobias '((a 16) (b 4)) ()) (equal-mask-2d-connect a 4 4 b 2 2 2 2 2 2)")
    assert counts(interp, "b") == (16, 1)


def test_bias_helpers():
    interp = sn("(build-net-nobias '((a 3) (b 5) (c 4)) ()) (bias-connect b) (shared-bias-connect c)")
    assert counts(interp, "b") == (5, 5)
    assert counts(interp, "c") == (4, 1)


def test_build_net_layers_and_globals():
    interp = sn("(build-net '((in 3) (hid 2 (nlf-lin 1 1)) (out 2)) '((in hid) (hid out)))")
    assert str(interp.get("input-layer")) == "(1 2 3)"
    assert str(interp.get("output-layer")) == "(6 7)"
    assert str(interp.get("desired-layer")) == "(8 9)"
    assert interp.get("nnum") == 10
    assert counts(interp, "hid") == (2 * 4, 8)
    assert counts(interp, "out") == (2 * 3, 6)
    assert interp.net.layers[1].nlf.kind == 1  # hid's own linear nlf
    assert interp.net.layers[2].nlf is None    # the default at compile time


def test_shared_weights_are_seen_by_every_connection():
    interp = sn("(build-net-nobias '((a 16) (b 4)) ()) (mask-2d-connect a 4 4 b 2 2 2 2 2 2)")
    a = [int(u) for u in interp.get("a")]
    b = [int(u) for u in interp.get("b")]
    interp.eval_text(f"(sval {a[0]} {b[0]} 0.75)")
    # tap (0,0) of every window: a[0], a[2], a[8], a[10]
    for src, dst in zip((a[0], a[2], a[8], a[10]), b):
        assert interp.eval_text(f"(sval {src} {dst})") == 0.75
        assert interp.eval_text(f"(scounter {src} {dst})") == 4
    assert interp.eval_text(f"(sval {a[1]} {b[0]})") != 0.75


def test_dup_connection_pairwise_and_cut():
    interp = sn("(setq u (newneurons 4)) (connect 1 3) (dup-connection '(1) '(3) '(2) '(4))")
    net = interp.net
    assert net.cw[net.find(1, 3)] == net.cw[net.find(2, 4)]
    interp.eval_text("(sval 1 3 2.5)")
    assert interp.eval_text("(sval 2 4)") == 2.5
    interp.eval_text("(cut-connection 2 4)")
    assert interp.eval_text("(sval 2 4)") is None
    assert interp.eval_text("(scounter 1 3)") == 1
    assert interp.eval_text("(nfanin 4)") == 0
    interp.eval_text("(cut-connection 1 3)")
    assert net.w[net.cw[0]] == 0.0  # a weight no connection uses is zeroed


def test_connect_lists_make_every_pair_and_amont_aval():
    interp = sn("(newneurons 4) (connect '(1 2) '(3 4))")
    assert interp.get("snum") == 4 and interp.get("wnum") == 4
    assert str(interp.eval_text("(amont 4)")) == "(1 2)"
    assert str(interp.eval_text("(aval 1)")) == "(3 4)"


def test_accessors_and_layer_fields():
    interp = sn("(build-net '((in 2) (out 2)) '((in out)))")
    interp.eval_text("(state in '(0.5 -0.5))")
    assert str(interp.eval_text("(state in)")) == "(0.5 -0.5)"
    interp.eval_text("(nval 1 0.25)")
    assert interp.eval_text("(nval 1)") == 0.25
    interp.eval_text("(epsilon out 0.1)")
    assert str(interp.eval_text("(epsilon out)")) == "(0.1 0.1)"
    assert interp.eval_text("(nfanin 3)") == 3
    assert str(interp.eval_text("(weight 3)")) == "(0 0 0)"
    interp.eval_text("(set-weight 3 '(1 2 3))")
    assert str(interp.eval_text("(weight 3)")) == "(1 2 3)"
    assert interp.eval_text("(nval 0)") == 1.0
    assert interp.eval_text("((nlf-tanh 0.66666666 0) 1)") == pytest.approx(1.0)


FANIN_NET = "(build-net '((a 64) (b 5) (c 3)) '((a b) (b c)))"


@pytest.mark.parametrize("form,bound", [
    ("(forget 0.5)", lambda f: 0.5 + 0 * f),
    ("(forget-inv 2.4)", lambda f: 2.4 / f),
    ("(forget-sqrt 2.4)", lambda f: 2.4 / np.sqrt(f)),
    ("(smartforget)", lambda f: 1 / np.sqrt(f)),
])
def test_forget_ranges_use_fanin_with_bias(form, bound):
    interp = sn(FANIN_NET + "(seed 3)" + form)
    net = interp.net
    live = net.alive()
    fanin = net.fanin[net.cdst[live]]
    assert set(fanin.tolist()) == {65, 6}
    values = np.abs(net.w[net.cw[live]])
    limit = bound(fanin.astype(float))
    assert np.all(values <= limit)
    into_b = net.cdst[live] < 70
    assert values[into_b].max() > 0.9 * limit[into_b].max()  # the range is used
    assert interp.get("age") == 0


def test_forget_layer_changes_only_that_layer():
    interp = sn(FANIN_NET + "(seed 1) (forget-layer 1 c)")
    net = interp.net
    live = net.alive()
    into_c = np.isin(net.cdst[live], [int(u) for u in interp.get("c")])
    assert np.all(net.w[net.cw[live][~into_c]] == 0)
    assert np.all(net.w[net.cw[live][into_c]] != 0)


@pytest.mark.parametrize("form,rate", [
    ("(epsi 0.3)", lambda f, s: 0.3 / f),
    ("(epsi-sqrt 0.3)", lambda f, s: 0.3 / math.sqrt(f)),
    ("(mask-epsi 0.3)", lambda f, s: 0.3 / math.sqrt(f) / math.sqrt(s)),
])
def test_epsilons_against_fanin(form, rate):
    interp = sn("(build-net '((a 16) (b 4) (c 2)) '((b c))) (mask-2d-connect a 4 4 b 2 2 2 2 2 2)"
                + form)
    b0 = int(interp.get("b").car)
    c0 = int(interp.get("c").car)
    # b units: 4 taps + bias; the last incoming connection is a tap shared by 4
    assert interp.eval_text(f"(nepsilon {b0})") == pytest.approx(rate(5, 4))
    assert interp.eval_text(f"(nepsilon {c0})") == pytest.approx(rate(5, 1))


def test_epsi_layer_sets_only_that_layer():
    interp = sn(FANIN_NET + "(epsi-layer 0.5 c)")
    assert interp.eval_text("(nepsilon (car c))") == pytest.approx(0.5 / 6)
    assert interp.eval_text("(nepsilon (car b))") == 0.0


def test_same_seed_same_weights_bit_for_bit():
    a = sn(FANIN_NET + "(seed 42) (forget-sqrt 1)").net
    b = sn(FANIN_NET + "(seed 42) (forget-sqrt 1)").net
    c = sn(FANIN_NET + "(seed 43) (forget-sqrt 1)").net
    assert a.w[:a.nweights].tobytes() == b.w[:b.nweights].tobytes()
    assert a.w[:a.nweights].tobytes() != c.w[:c.nweights].tobytes()


def test_binary_weights_round_trip(tmp_path):
    f = tmp_path / "w.wei"
    a = sn(FANIN_NET + f'(seed 5) (forget 1) (setq age 77) (save-net "{f}")')
    b = sn(FANIN_NET + f'(load-net "{f}")')
    assert a.net.w[:a.net.nweights].tobytes() == b.net.w[:b.net.nweights].tobytes()
    assert b.get("age") == 77


def test_ascii_weights_round_trip(tmp_path):
    f = tmp_path / "w.txt"
    a = sn(FANIN_NET + f'(seed 5) (forget 1) (save-ascii-net "{f}")')
    lines = f.read_text().splitlines()
    assert lines[0].split()[0] == ".WEI" and len(lines) == 1 + a.get("snum")
    src, dst, value = lines[1].split()
    assert a.eval_text(f"(sval {src} {dst})") == pytest.approx(float(value), abs=1e-7)
    b = sn(FANIN_NET + f'(merge-net "{f}")')
    assert np.allclose(a.net.w[:a.net.nweights], b.net.w[:b.net.nweights], atol=1e-7)


def test_merge_net_maps_units_through_layers(tmp_path):
    f = tmp_path / "small.txt"
    f.write_text(".WEI 3 5\n   1    3  0.5000000\n   2    3 -0.2500000\n")
    interp = sn("(newneurons 6) (connect '(4 5) '(6))")
    interp.eval_text(f'(merge-net "{f}" \'(4 5) \'(6))')
    assert interp.eval_text("(sval 4 6)") == 0.5
    assert interp.eval_text("(sval 5 6)") == -0.25
    assert interp.get("age") == 5


@pytest.mark.parametrize("content,message", [
    (b"", "not a weight file"),
    (b"garbage bytes here, not weights", "not a weight file"),
    (b"SNWEIGHT\x01\x00", "truncated"),
])
def test_bad_weight_files_are_refused(tmp_path, content, message):
    f = tmp_path / "bad.wei"
    f.write_bytes(content)
    interp = sn(FANIN_NET + "(seed 1) (forget 1)")
    before = interp.net.w.copy()
    with pytest.raises(SNError) as info:
        interp.eval_text(f'(load-net "{f}")')
    assert message in info.value.message and "bad.wei" in info.value.message
    assert np.array_equal(before, interp.net.w)


def test_weights_of_another_network_are_refused(tmp_path):
    f = tmp_path / "other.wei"
    sn(f"(build-net '((a 3) (b 2)) '((a b))) (save-net \"{f}\")")
    interp = sn(FANIN_NET + "(seed 1) (forget 1)")
    before = interp.net.w.copy()
    with pytest.raises(SNError) as info:
        interp.eval_text(f'(load-net "{f}")')
    assert "this one has" in info.value.message
    assert np.array_equal(before, interp.net.w)


def test_truncated_weight_file_changes_nothing(tmp_path):
    f = tmp_path / "w.wei"
    sn(FANIN_NET + f'(seed 2) (forget 1) (save-net "{f}")')
    f.write_bytes(f.read_bytes()[:-8])
    interp = sn(FANIN_NET)
    with pytest.raises(SNError) as info:
        interp.eval_text(f'(load-net "{f}")')
    assert "truncated" in info.value.message
    assert not interp.net.w[:interp.net.nweights].any()


def test_merge_net_with_a_missing_connection_changes_nothing(tmp_path):
    f = tmp_path / "w.txt"
    f.write_text(".WEI 9 0\n   1    3  0.5\n   1    9  0.5\n")
    interp = sn("(newneurons 9) (connect 1 3)")
    with pytest.raises(SNError) as info:
        interp.eval_text(f'(merge-net "{f}")')
    assert "w.txt:3" in info.value.message and "create the connections first" in info.value.message
    assert interp.eval_text("(sval 1 3)") == 0.0


@pytest.mark.parametrize("source,message", [
    ("(build-net-nobias '((a 16) (b 4)) ()) (mask-2d-connect a 4 4 b 2 2 2 2 5 5)", "impossible geometry"),
    ("(build-net-nobias '((a 16) (b 4)) ()) (mask-2d-connect a 4 4 b 2 2 2 2 3 3 :pad 5)", "impossible geometry"),
    ("(build-net-nobias '((a 16) (b 4)) ()) (mask-2d-connect nosuch 4 4 b 2 2 2 2 2 2)", "unbound variable: nosuch"),
    ("(build-net-nobias '((a 16) (b 4)) ()) (mask-2d-connect a 4 4 b 2 2 2 2 2 2 :table '((0 5)))", "out of range"),
    ("(build-net-nobias '((a 16) (b 4)) ()) (mask-2d-connect a 4 4 b 2 2 2 2 2 2 :table '(x))", "table lists"),
    ("(build-net-nobias '((a 16) (b 4)) ()) (mask-2d-connect a 4 4 b 2 2 2 2 2 2 :tabel 1)", "unknown keyword"),
    ("(build-net-nobias '((a 15) (b 4)) ()) (mask-2d-connect a 4 4 b 2 2 2 2 2 2)", "not a multiple"),
    ("(newneurons 3) (connect 1 7)", "does not exist"),
    ("(newneurons 3) (connect 1 2) (connect 1 2)", "exists already"),
    ("(newneurons 3) (dup-connection 1 2 2 3)", "does not exist"),
    ("(build-net '((a 2) (b (2 2))) ())", "(planes rows cols)"),
    ("(build-net '((a 2) (b 2)) '((a c)))", "unknown layer c"),
    ("(conn-table ((0) (x)))", "must be an integer"),
])
def test_bad_helper_calls_name_the_form(source, message):
    with pytest.raises(SNError) as info:
        sn(source)
    assert message in info.value.message
    assert info.value.where is not None and info.value.where.file == "t.sn"


def test_failed_helper_changes_nothing():
    interp = sn("(build-net-nobias '((a 16) (b 4)) ()) (mask-2d-connect a 4 4 b 2 2 2 2 2 2)")
    net = interp.net
    before = (net.nunits, net.nconn, net.nweights, len(net.blocks))
    with pytest.raises(SNError):  # the same connections again
        interp.eval_text("(mask-2d-connect a 4 4 b 2 2 2 2 2 2 :pad 1 :background -1)")
    assert (net.nunits, net.nconn, net.nweights, len(net.blocks)) == before


def test_inexact_sizes_warn_as_sn28_did():
    out = io.StringIO()
    sn("(build-net-nobias '((a 25) (b 4)) ()) (mask-2d-connect a 5 5 b 2 2 2 2 2 2)", out)
    assert "mask-2d-connect:[warning]:inexact layer size." in out.getvalue()


def test_info_command_without_data(tmp_path):
    env = dict(os.environ, PYTHONPATH=ROOT, SN_DATA=str(tmp_path), XDG_CACHE_HOME=str(tmp_path))
    proc = subprocess.run([sys.executable, "-m", "sn", "info", "--json", "networks/zipcode.sn"],
                          capture_output=True, text=True, cwd=ROOT, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    info = json.loads(proc.stdout)
    assert (info["units"], info["connections"], info["weights"]) == (1256, 64660, 9760)
    assert [(l["connections"], l["weights"]) for l in info["layers"][1:]] == [
        (19968, 1068), (38592, 2592), (5790, 5790), (310, 310)]
    table = subprocess.run([sys.executable, "-m", "sn", "info", "networks/zipcode.sn"],
                           capture_output=True, text=True, cwd=ROOT, env=env, timeout=120)
    assert "1256" in table.stdout and "64660" in table.stdout and "9760" in table.stdout


def test_readme_example_network_has_the_counts_the_readme_shows():
    readme = open(os.path.join(ROOT, "README.md"), encoding="utf-8").read()
    lisp = readme.split("```lisp\n;; a small convolutional net")[1].split("```")[0]
    table = readme.split("$ python -m sn info mynet.sn\n")[1].split("```")[0]
    interp = sn(";; a small convolutional net" + lisp)
    from sn.info import summary
    info = summary(interp)
    total = [line.split() for line in table.splitlines() if line.startswith("total")][0]
    assert [info["units"], info["connections"], info["weights"]] == [int(v) for v in total[1:]]
