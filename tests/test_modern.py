"""The modern variant (cross-entropy, AdamW, dropout, shifts): gradients,
the fast path against the Lisp loop, the statistics of the random draws, and
bad input."""

import io

import numpy as np
import pytest

from sn import kernels as K
from sn.compile import buffers, compiled
from sn.errors import SNError
from sn.interpreter import Interpreter

NET = """
(build-net '((input (1 6 6)) (maps (3 3 3) (nlf-relu)) (hid 8) (out 4 (nlf-lin 1 1)))
           '((maps hid) (hid out)))
(mask-2d-connect input 6 6 maps 3 3 2 2 3 3 :pad 1 :background -1 :table (full-table 1 3))
"""


def small(n=60, seed=0, out=None):
    interp = Interpreter(out=out or io.StringIO())
    interp.eval_text("(set-float 'float64)" + NET)
    rng = np.random.default_rng(seed)
    desired = -np.ones((n, 4))
    desired[np.arange(n), rng.integers(0, 4, n)] = 1.0
    interp.set("pattern-matrix", rng.uniform(-1, 1, (n, 36)))
    interp.set("desired-matrix", desired)
    interp.eval_text(f"(ensemble 0 {n - 1}) (seed 4) (forget-sqrt 1) (epsilon 0.01)")
    return interp


def energy(interp, p, w, keep=None):
    """The cost of pattern p with weights w (and a dropout mask), from the kernels."""
    net = interp.net
    plan = compiled(interp, unit_eps=True).plan
    b = buffers(net)
    K.present_pattern(plan, b.x, interp.get("pattern-matrix")[p])
    if keep is None:
        K.forward(plan, b.x, b.s, w)
    else:
        K.forward_keep(plan, b.x, b.s, w, keep)
    return K.cost(plan, K.COST_XENT, b.x, b.s, b.b.copy(), b.sqb.copy(),
                  interp.get("desired-matrix")[p]) * 4


@pytest.mark.parametrize("dropping", [False, True])
def test_cross_entropy_gradient_with_and_without_dropout(dropping):
    interp = small()
    net = interp.net
    plan = compiled(interp, unit_eps=True).plan
    b = buffers(net)
    keep = np.ones(net.nunits)
    if dropping:
        hid = [int(u) for u in interp.get("hid")]
        keep[hid] = np.where(np.arange(8) % 3 == 0, 0.0, 1.5)
    p = 5
    K.present_pattern(plan, b.x, interp.get("pattern-matrix")[p])
    K.forward_keep(plan, b.x, b.s, b.w, keep)
    K.cost(plan, K.COST_XENT, b.x, b.s, b.b, b.sqb, interp.get("desired-matrix")[p])
    b.acc[:] = 0
    K.backward_keep(plan, b.x, b.s, b.w, b.b, b.g, b.acc, keep, True)
    acc = b.acc.copy()
    w = b.w.copy()
    numeric = np.zeros_like(w)
    for k in range(len(w)):
        wp, wm = w.copy(), w.copy()
        wp[k] += 1e-6
        wm[k] -= 1e-6
        numeric[k] = -(energy(interp, p, wp, keep) - energy(interp, p, wm, keep)) / 2e-6
    np.testing.assert_allclose(acc, numeric, rtol=1e-5, atol=1e-8)
    assert np.abs(acc).max() > 1e-3


def test_adamw_step_matches_its_formula():
    rng = np.random.default_rng(1)
    w = rng.normal(size=50)
    m, v, acc = np.zeros(50), np.zeros(50), np.zeros(50)
    opt = np.array([1e-3, 0.1, 0.9, 0.999, 1e-8, 0.0])
    ref_w, ref_m, ref_v = w.copy(), m.copy(), v.copy()
    for t in range(1, 6):
        grad = rng.normal(size=50)
        acc[:] = -grad
        assert K.update_adamw(w, m, v, acc, opt)
        ref_w *= 1 - 1e-3 * 0.1
        ref_m = 0.9 * ref_m + 0.1 * grad
        ref_v = 0.999 * ref_v + 0.001 * grad ** 2
        ref_w -= 1e-3 * (ref_m / (1 - 0.9 ** t)) / (np.sqrt(ref_v / (1 - 0.999 ** t)) + 1e-8)
        assert not acc.any()
    np.testing.assert_allclose(w, ref_w, rtol=1e-12)
    assert opt[K.OPT_T] == 5


RECIPES = [
    "(set-cost-xent)",
    "(set-cost-xent) (set-optimizer 'adamw :lr 0.003 :weight-decay 0.01 :lr-final 0.001)",
    "(dropout hid 0.25)",
    "(augment-shift 1 :wrap t)",
    "(augment-shift 2)",
    "(set-cost-xent) (set-optimizer 'adamw :lr 0.002) (dropout hid 0.3) (augment-shift 1)"
    "(set-nextcho-rnd)",
]


@pytest.mark.parametrize("recipe", RECIPES)
def test_fast_path_equals_lisp_loop(recipe):
    runs = []
    for slow in (False, True):
        interp = small()
        interp.eval_text("(setq passes 3) " + recipe)
        if slow:  # a classifier written in Lisp sends every iteration through the hooks
            interp.eval_text("(setq calls 0) (de classify (pn) (incr calls) (class-max pn))")
        interp.eval_text("(learn 90) (learn-cycle 1)")
        if slow:
            assert interp.get("calls") == 150
        net = interp.net
        runs.append((net.w[:net.nweights].copy(), net.delta[:net.nweights].copy(),
                     interp.rng.random()))
    (w1, d1, r1), (w2, d2, r2) = runs
    assert np.array_equal(w1, w2) and np.array_equal(d1, d2)
    assert r1 == r2  # the same number of draws from the random state
    assert np.abs(w1 - small().net.w[:len(w1)]).max() > 1e-3


def test_seed_reproduces_a_modern_run_bit_for_bit():
    recipe = "(set-cost-xent) (set-optimizer 'adamw) (dropout hid 0.25) (augment-shift 1 :wrap t)"
    weights = []
    for seed in (9, 9, 10):
        interp = small()
        interp.eval_text(f"(seed {seed}) (forget-sqrt 1) {recipe} (learn-cycle 2)")
        weights.append(interp.net.w[:interp.net.nweights].tobytes())
    assert weights[0] == weights[1] != weights[2]


def test_dropout_statistics():
    from sn import modern
    interp = small()
    interp.eval_text("(dropout hid 0.25) (dropout maps 0.5)")
    draws = np.array([modern.draw_keep(interp) for _ in range(3000)])
    hid, maps = draws[:, :8], draws[:, 8:]   # layers in the order they were given
    assert draws.shape == (3000, 8 + 27)
    assert set(np.unique(hid)) == {0.0, 1 / 0.75} and set(np.unique(maps)) == {0.0, 1 / 0.5}
    assert abs((hid == 0).mean() - 0.25) < 0.015
    assert abs((maps == 0).mean() - 0.5) < 0.015


def test_dropout_is_off_when_measuring():
    interp = small()
    interp.eval_text("(set-class-max) (perf)")
    before = interp.get("global-error")
    interp.eval_text("(dropout hid 0.5) (perf)")
    assert interp.get("global-error") == before


def test_shift_distribution_and_semantics():
    from sn import modern
    interp = small()
    interp.eval_text("(augment-shift 2)")
    shifts = np.array([modern.draw_shift(interp) for _ in range(5000)])
    for axis in (0, 1):
        counts = np.bincount(shifts[:, axis] + 2, minlength=5)
        assert len(counts) == 5 and np.all(np.abs(counts / 5000 - 0.2) < 0.02)
    plan = compiled(interp).plan
    image = np.arange(36.0).reshape(6, 6)
    x = np.zeros(interp.net.nunits)
    K.present_shifted(plan, x, image.ravel(), 1, -2, np.array([1, 6, 6]), True, -1.0)
    np.testing.assert_array_equal(x[plan.input_units].reshape(6, 6), np.roll(image, (1, -2), (0, 1)))
    K.present_shifted(plan, x, image.ravel(), 1, -2, np.array([1, 6, 6]), False, -1.0)
    shifted = x[plan.input_units].reshape(6, 6)
    np.testing.assert_array_equal(shifted[1:, :4], image[:5, 2:])
    assert (shifted[0] == -1).all() and (shifted[:, 4:] == -1).all()


@pytest.mark.parametrize("form,message", [
    ("(dropout hid 1)", "must be in [0, 1)"),
    ("(dropout hid -0.1)", "must be in [0, 1)"),
    ("(augment-shift 6)", "not smaller than the 6x6 input planes"),
    ("(augment-shift 1.5)", "whole number"),
    ("(set-optimizer 'adam)", "unknown optimizer adam"),
    ("(set-optimizer 'adamw :momentum 0.9)", "unknown option :momentum"),
    ("(set-optimizer 'adamw :lr -1)", ":lr -1 is out of range"),
    ("(set-optimizer 'adamw) (learn-cycle-lm 1)", "second-order method"),
])
def test_bad_modern_forms(form, message):
    interp = small()
    with pytest.raises(SNError) as info:
        interp.eval_text(form, "m.sn")
    assert message in info.value.message
    assert info.value.where is not None and info.value.where.file == "m.sn"


def test_cross_entropy_takes_graded_desired_values_as_target_probabilities():
    interp = small()
    plan = compiled(interp, unit_eps=True).plan
    b = buffers(interp.net)
    K.present_pattern(plan, b.x, interp.get("pattern-matrix")[0])
    K.forward(plan, b.x, b.s, b.w)
    out = np.asarray(plan.output_units)
    p = np.exp(b.s[out] - b.s[out].max())
    p /= p.sum()
    for row, target in (([0.6, -1, 0.2, 0.0], [0.75, 0, 0.25, 0]),
                        ([1, -1, -1, -1], [1, 0, 0, 0]),
                        ([1, -1, 1, -1], [0.5, 0, 0.5, 0])):
        back = b.b.copy()
        cost = K.cost(plan, K.COST_XENT, b.x, b.s, back, b.sqb.copy(), np.array(row, float))
        np.testing.assert_allclose(back[out], np.array(target) - p, atol=1e-12)
        t = np.array(target)
        np.testing.assert_allclose(cost * 4, -np.sum(t[t > 0] * np.log(p[t > 0])), rtol=1e-12)


def test_cross_entropy_on_a_nonlinear_output_warns():
    out = io.StringIO()
    interp = Interpreter(out=out)
    interp.eval_text("(build-net '((a 4) (b 3)) '((a b))) (set-cost-xent)")
    assert "warning: the output layer b is not linear" in out.getvalue()
    quiet = io.StringIO()
    small(out=quiet).eval_text("(set-cost-xent)")
    assert "warning" not in quiet.getvalue()


def test_adamw_learning_rate_decays_linearly_over_the_passes():
    from sn import modern
    interp = small()
    interp.eval_text("(setq passes 4) (set-optimizer 'adamw :lr 0.004 :lr-final 0.001)")
    rates = []
    for _ in range(4):
        rates.append(modern.adamw(interp)[K.OPT_LR])
        interp.eval_text("(learn-cycle 1)")
    np.testing.assert_allclose(rates, [0.004, 0.003, 0.002, 0.001])
