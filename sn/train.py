"""`sn train FILE`: load a network file, call its (train), report as the paper did.

The file's top-level forms build the network and name its data; its function
(de train () ...) trains. A checkpoint is written after each pass (W.ckpt, W
the weight file) and removed when the run completes; --resume goes on from the
last one. Before loading, `passes` is set when --passes is given (files write
(defvar passes 23)) and the random state is seeded with --seed (default 0); a
file may name its own default seed with (defvar train-seed S), used before
(train) when --seed is not given. Afterwards the weights and the perf-file are
written, and the paper-style lines are printed:

    eval: split train. loss 2.500000e-03. error 0.14%. misses: 10

where loss is the mean squared error per output unit as SN's perf measures it
and the paper reports it (the LMS cost 1/2 sum (d - y)^2 over the outputs,
divided by their number, averaged over the patterns), and error counts the
patterns whose largest output is not the desired class.
"""

import json
import os
import sys
import time

import numpy as np

from .builtins import seed_value
from .checkpoint import Checkpointer
from .checkpoint import load as load_checkpoint
from .data import atomic_write
from .datum import is_number
from .errors import SNError
from .interpreter import Interpreter, Lambda
from .netenv import matrices, outputs_on, pattern_range
from .weights import save_net


class Progress:
    """The progress line of a pass, on a terminal; cleared before other output."""

    def __init__(self, interp, stream):
        self.interp, self.stream, self.shown = interp, stream, False

    def __call__(self, done, total, seconds):
        lo, hi = self.interp.get("patt-min"), self.interp.get("patt-max")
        size = max(hi - lo + 1, 1)
        age = self.interp.get("age")
        rate = done / seconds if seconds > 0 else 0.0
        self.stream.write(f"\r\033[Kpass {(age - 1) // size + 1}: {done}/{total} patterns, "
                          f"{rate:,.0f} patterns/s")
        self.stream.flush()
        self.shown = True

    def clear(self):
        if self.shown:
            self.stream.write("\r\033[K")
            self.shown = False


class _Out:
    """stdout for the interpreter: clears the progress line before writing."""

    def __init__(self, stream, progress):
        self.stream, self.progress = stream, progress

    def write(self, text):
        self.progress.clear()
        self.stream.write(text)

    def flush(self):
        self.stream.flush()


def run(path, passes=None, seed=None, save=None, report=None, stream=None, resume=False):
    stream = stream or sys.stdout
    interp = Interpreter()
    interp.rng = np.random.default_rng(seed_value(seed if seed is not None else 0))
    if passes is not None:
        interp.set("passes", passes)
    interp.load(os.path.abspath(path))
    if seed is None and is_number(interp.get("train-seed", None)):
        seed = interp.get("train-seed")
        interp.rng = np.random.default_rng(seed_value(seed))
    train_fn = interp.get("train", None)
    if not isinstance(train_fn, Lambda):
        raise SNError(f"{path} defines no training function: write (de train () ...)")
    stem = os.path.splitext(os.path.basename(path))[0]
    weights = save or stem + ".wei"
    checkpoint = weights + ".ckpt"
    identity = {"file": os.path.abspath(path), "passes": passes, "seed": seed}
    saved = None
    if resume:
        if os.path.exists(checkpoint):
            saved = load_checkpoint(checkpoint, identity)
            stream.write(f"resuming from {checkpoint}: {saved['calls']} learning calls done\n")
        else:
            stream.write(f"no checkpoint {checkpoint}: starting from the beginning\n")
    if not interp.get("perf-file"):
        interp.set("perf-file", stem + ".perf")
        if saved is None:
            atomic_write(stem + ".perf", "")
    interp.checkpointer = Checkpointer(interp, checkpoint, identity, saved)
    if stream.isatty():
        progress = Progress(interp, stream)
        interp.progress = progress
        interp.out = _Out(stream, progress)
    else:
        interp.out = stream
    start = time.perf_counter()
    try:
        interp.call(train_fn, [])
    except KeyboardInterrupt:
        stream.write(f"\ninterrupted: the last completed pass is in {checkpoint}; "
                     "go on with --resume\n")
        raise
    seconds = time.perf_counter() - start
    interp.checkpointer = None
    results = {"passes": _passes(interp), "seconds": round(seconds, 3)}
    for split, (lo, hi) in _splits(interp).items():
        loss, misses, n = evaluate_split(interp, lo, hi)
        results[split] = {"loss": loss, "error": 100.0 * misses / n, "misses": misses}
        interp.write(f"eval: split {split}. loss {loss:.6e}. error {100.0 * misses / n:.2f}%. "
                     f"misses: {misses}\n")
    save_net(interp.net, weights, interp.get("age"))
    if os.path.exists(checkpoint):
        os.remove(checkpoint)
    interp.write(f"weights written to {weights}, performance log to {interp.get('perf-file')} "
                 f"({seconds:.1f} s of training)\n")
    if report:
        atomic_write(report, json.dumps(results, indent=2) + "\n")
    return results


def _splits(interp):
    splits = {"train": (interp.get("patt-min"), interp.get("patt-max"))}
    if interp.get("tpatt-min") is not None:
        splits["test"] = (interp.get("tpatt-min"), interp.get("tpatt-max"))
    return splits


def _passes(interp):
    lo, hi = interp.get("patt-min"), interp.get("patt-max")
    if lo is None:
        return 0
    passes = interp.get("age") / (hi - lo + 1)
    return int(passes) if float(passes).is_integer() else round(passes, 3)


def evaluate_split(interp, lo, hi):
    """(SN's error per output, misses, patterns) on patterns lo..hi, a miss
    being a pattern whose largest output is not its desired class."""
    patterns, desired = matrices(interp, "eval")
    lo, hi = pattern_range(interp, lo, hi, "eval", len(patterns))
    errors, ranks, _ = outputs_on(interp, patterns, desired, lo, hi)
    misses = int(np.sum(ranks != np.argmax(desired[lo:hi + 1], axis=1)))
    return float(errors.mean()), misses, hi - lo + 1
