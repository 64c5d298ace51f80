"""`sn bench FILE`: training speed of a network, in samples per second.

Trains FILE's network on its data (random patterns of the right shape when the
data files are absent) one pattern at a time: on-line SGD, on-line LM, and SGD
on the generic sparse plan alone (every connection through the CSR kernel).
Each speed is the best of `repeat` measures of `passes` passes (the fastest
measure is the one the rest of the machine disturbed least, as with timeit).
The first call's compile time (or, with numba's cache, its load time) is
reported apart.
"""

import json
import os
import time

import numpy as np

from . import kernels as K
from .compile import buffers, compiled
from .errors import SNError
from .interpreter import Interpreter
from .netenv import matrices, pattern_range


def run(path, passes=1, repeat=3, as_json=False, out=print):
    interp = Interpreter()
    interp.load(os.path.abspath(path))
    patterns, desired, source = _data(interp)
    interp.eval_text("(smartforget) (epsilon 0.0001)")
    lo, hi = _train_range(interp, len(patterns))
    order = np.tile(np.arange(lo, hi + 1, dtype=np.int64), passes)
    net = interp.net
    pats = np.ascontiguousarray(patterns, dtype=net.dtype)
    des = np.ascontiguousarray(desired, dtype=net.dtype)
    constants = (0.0, 0.0, 0.05, 0.05)
    start = time.perf_counter()
    plan = compiled(interp).plan
    K.train_patterns(plan, buffers(net), pats, des, order[:1], K.MODE_SGD, *constants,
                     K.plain_extras())
    compile_s = time.perf_counter() - start
    results = {
        "sgd_samples_per_s": _speed(plan, net, pats, des, order, K.MODE_SGD, constants,
                                    repeat),
        "lm_samples_per_s": _speed(plan, net, pats, des, order, K.MODE_LM, constants,
                                   repeat),
    }
    sparse = compiled(interp, all_sparse=True).plan
    K.train_patterns(sparse, buffers(net), pats, des, order[:1], K.MODE_SGD, *constants,
                     K.plain_extras())
    results["sparse_sgd_samples_per_s"] = _speed(sparse, net, pats, des, order, K.MODE_SGD,
                                                 constants, repeat)
    results["compile_s"] = round(compile_s, 3)
    results["dtype"] = net.dtype.name
    if as_json:
        out(json.dumps(results, indent=2))
    else:
        out(f"{path}: {len(order)} patterns per measure, best of {repeat} ({source}), "
            f"{net.dtype.name}")
        out(f"  on-line SGD          {results['sgd_samples_per_s']:>10,.0f} samples/s")
        out(f"  on-line LM           {results['lm_samples_per_s']:>10,.0f} samples/s")
        out(f"  SGD, sparse plan     {results['sparse_sgd_samples_per_s']:>10,.0f} samples/s")
        out(f"  first call (compile or cache load) {compile_s:.2f} s")
    return results


def _speed(plan, net, pats, des, order, mode, constants, repeat):
    best = 0.0
    for _ in range(repeat):
        start = time.perf_counter()
        _, done, bad = K.train_patterns(plan, buffers(net), pats, des, order, mode,
                                        *constants, K.plain_extras())
        seconds = time.perf_counter() - start
        if bad >= 0:
            raise SNError("bench: training diverged (NaN); the benchmark needs a stable "
                          "network")
        best = max(best, done / seconds)
    return round(best, 1)


def _data(interp):
    """The file's data, or random patterns of the right shape without the files."""
    try:
        patterns, desired = matrices(interp, "bench")
        return patterns, desired, "its data"
    except SNError as err:
        if "no patterns" not in err.message and "not found" not in err.message \
                and "missing" not in err.message:
            raise
    n_in = len(list(interp.get("input-layer")))
    n_out = len(list(interp.get("output-layer")))
    rng = np.random.default_rng(0)
    n = 7291
    patterns = rng.uniform(-1, 1, size=(n, n_in))
    desired = -np.ones((n, n_out))
    desired[np.arange(n), rng.integers(0, n_out, size=n)] = 1.0
    interp.set("pattern-matrix", patterns)
    interp.set("desired-matrix", desired)
    interp.eval_text(f"(ensemble 0 {n - 1})")
    return patterns, desired, "random data: the data files are absent"


def _train_range(interp, npatterns):
    return pattern_range(interp, interp.get("patt-min"), interp.get("patt-max"), "bench", npatterns)
