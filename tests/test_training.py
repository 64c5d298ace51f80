"""Training forms (SN.md section 5) through the whole pipeline: the fast path
against the Lisp loop, blocks against the sparse plan, seeds, perf output,
bad input, and the train and bench commands."""

import io
import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest

from sn.errors import SNError
from sn.interpreter import Interpreter

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def zipnet(dtype="float64", n=160, seed=1, out=None):
    """The 1989 network on random patterns (no data files needed)."""
    interp = Interpreter(out=out or io.StringIO())
    interp.load(os.path.join(ROOT, "networks", "zipcode.sn"))
    rng = np.random.default_rng(seed)
    desired = -np.ones((n, 10))
    desired[np.arange(n), rng.integers(0, 10, n)] = 1.0
    interp.set("pattern-matrix", rng.uniform(-1, 1, (n, 256)))
    interp.set("desired-matrix", desired)
    interp.eval_text(f"(set-float '{dtype}) (ensemble 0 {n - 1}) (test-set 0 {n - 1})"
                     "(seed 5) (forget-inv 2.4) (epsilon 0.0005) (setq mu 0.02)")
    return interp


def weights(interp):
    net = interp.net
    return np.concatenate([net.w[:net.nweights], net.delta[:net.nweights], net.hess[:net.nweights]])


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("learn", ["(learn-cycle 1)", "(learn-cycle-lm 1)", "(learn 100)",
                                   "(learn-newton 50)"])
def test_lisp_loop_equals_fast_path(dtype, learn):
    fast = zipnet(dtype)
    slow = zipnet(dtype)
    slow.eval_text("(de present-pattern (layer pn) (get-pattern pattern-matrix pn layer))")
    fast.eval_text(learn)
    slow.eval_text(learn)
    assert np.array_equal(weights(fast), weights(slow))
    assert fast.get("age") == slow.get("age") and fast.get("age") > 0
    assert fast.get("current-pattern") == slow.get("current-pattern")


@pytest.mark.parametrize("learn", ["(learn-cycle 2)", "(learn-cycle-lm 2)"])
def test_blocks_and_sparse_plan_give_the_same_weights(learn):
    blocks = zipnet(n=180)
    sparse = zipnet(n=180)
    sparse.eval_text("(set-plan 'sparse)")
    blocks.eval_text(learn)
    sparse.eval_text(learn)
    a, b = weights(blocks), weights(sparse)
    assert np.abs(a - b).max() <= 1e-12
    assert np.abs(a - weights(zipnet(n=180))).max() > 1e-3  # training did change them


def test_same_seed_reproduces_training_bit_for_bit():
    runs = []
    for seed in (7, 7, 8):
        interp = zipnet()
        interp.eval_text(f"(seed {seed}) (forget-inv 2.4) (set-nextcho-rnd) (learn 300)")
        runs.append(weights(interp).tobytes())
    assert runs[0] == runs[1] and runs[0] != runs[2]


def test_perf_prints_and_logs_its_lines(tmp_path):
    out = io.StringIO()
    interp = zipnet(out=out)
    log = tmp_path / "run.perf"
    interp.eval_text(f'(setq perf-file "{log}") (set-class-max) (perf 0 9) (learn 5) (perf)')
    lines = [l for l in out.getvalue().splitlines() if l.startswith("patterns")]
    assert re.fullmatch(r"patterns\{0-9\}, age=0, error=[0-9.e+-]+, performance=[0-9.e+-]+", lines[0])
    assert re.fullmatch(r"patterns\{0-159\}, age=5, error=[0-9.e+-]+, performance=[0-9.e+-]+", lines[1])
    logged = [l for l in log.read_text().splitlines() if not l.startswith(";;;")]
    assert re.fullmatch(r"     0 \d\.\d{8} +\d+\.\d{2} ;\{0-9\}", logged[0])
    assert re.fullmatch(r"     5 \d\.\d{8} +\d+\.\d{2} ;\{0-159\}", logged[1])
    error = float(logged[1].split()[1])
    assert error == pytest.approx(interp.get("global-error"), abs=1e-8)


def test_perf_error_is_the_cost_per_output_averaged_over_patterns():
    interp = zipnet(n=20)
    interp.eval_text("(set-class-max) (perf 0 19)")
    outputs, errors = [], []
    for p in range(20):
        interp.eval_text(f"(test-pattern {p})")
        errors.append(interp.get("local-error"))
        y = np.array([float(v) for v in interp.eval_text("(state output-layer)")])
        d = interp.get("desired-matrix")[p]
        assert interp.get("local-error") == pytest.approx(0.5 * np.sum((d - y) ** 2) / 10, rel=1e-12)
        outputs.append(np.argmax(y) == np.argmax(d))
    assert interp.get("global-error") == pytest.approx(np.mean(errors), rel=1e-12)
    assert interp.get("good-an-percent") == pytest.approx(100 * np.mean(outputs))


@pytest.mark.parametrize("setup,message", [
    ("(setq desired-matrix (matrix 160 3))", "desired rows have 3 values but the output layer has 10"),
    ("(setq pattern-matrix (matrix 160 5))", "patterns have 5 values but the input layer has 256"),
    ("(setq pattern-matrix ())", "no patterns"),
    ("(ensemble 0 500)", "outside the 160 patterns"),
])
def test_bad_training_input_stops_before_any_change(setup, message):
    interp = zipnet()
    interp.eval_text(setup)
    before = weights(interp)
    with pytest.raises(SNError) as info:
        interp.eval_text("(learn-cycle-lm 1)")
    assert message in info.value.message
    assert np.array_equal(before, weights(interp))


def test_divergence_stops_and_puts_back_the_weights():
    interp = zipnet()
    interp.eval_text("(learn-cycle 1)")
    before = weights(interp)
    age = interp.get("age")
    interp.get("pattern-matrix")[37, 100] = np.nan  # a corrupt pattern
    with pytest.raises(SNError) as info:
        interp.eval_text("(learn-cycle 1)")
    message = info.value.message
    assert "pattern 37" in message and "the states of h1" in message
    assert "NaN or infinite" in message and "put back" in message
    assert np.array_equal(before, weights(interp))
    assert interp.get("age") == age


def test_learn_follows_next_choice():
    interp = zipnet(n=10)
    interp.eval_text("(setq current-pattern 8) (learn 5)")
    assert interp.get("current-pattern") == 3  # 8 9 0 1 2, then 3
    assert interp.get("age") == 5


def test_run_and_trun_measure_between_learning():
    out = io.StringIO()
    interp = zipnet(n=30, out=out)
    interp.eval_text("(trun-lm 30 2)")
    lines = [l for l in out.getvalue().splitlines() if l.startswith("patterns")]
    assert [l.split(",")[0:2] for l in lines] == [
        ["patterns{0-29}", " age=0"], ["patterns{0-29}", " age=0"],
        ["patterns{0-29}", " age=30"], ["patterns{0-29}", " age=30"],
        ["patterns{0-29}", " age=60"], ["patterns{0-29}", " age=60"]]


def _run(*args, cwd, env=None):
    return subprocess.run([sys.executable, "-m", "sn", *args], capture_output=True, text=True,
                          cwd=cwd, env=dict(os.environ, PYTHONPATH=ROOT, **(env or {})),
                          timeout=600)


def test_train_command_on_xor(tmp_path):
    proc = _run("train", os.path.join(ROOT, "networks", "xor.sn"), "--report", "r.json",
                "--save", "x.wei", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "eval: split train. loss" in proc.stdout
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["passes"] == 40 and report["train"]["misses"] == 0
    assert report["train"]["error"] == 0.0 and report["train"]["loss"] < 0.01
    assert (tmp_path / "x.wei").exists() and (tmp_path / "xor.perf").exists()
    assert "patterns{0-3}" in proc.stdout


def test_train_command_refuses_a_file_without_train(tmp_path):
    f = tmp_path / "net.sn"
    f.write_text("(build-net '((a 2) (b 1)) '((a b)))\n")
    proc = _run("train", str(f), cwd=tmp_path)
    assert proc.returncode == 1 and "(de train ()" in proc.stderr


def test_bench_command_reports_speeds_without_data(tmp_path):
    proc = _run("bench", os.path.join(ROOT, "networks", "zipcode.sn"), "--json", "--repeat", "1",
                cwd=tmp_path,
                env={"SN_DATA": str(tmp_path), "XDG_CACHE_HOME": str(tmp_path),
                     "SN_DATA_URL": "http://127.0.0.1:9/"})
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert set(result) == {"sgd_samples_per_s", "lm_samples_per_s", "sparse_sgd_samples_per_s",
                           "compile_s", "dtype"}
    assert all(result[k] > 0 for k in ("sgd_samples_per_s", "lm_samples_per_s",
                                       "sparse_sgd_samples_per_s"))
