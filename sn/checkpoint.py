"""Checkpoints of `sn train`: after every learning call of the training
function (each pass of trun, run, learn-cycle ...), everything needed to go on
is written: the weights with their momentum and curvature (or AdamW's
moments and step count), the epsilons, the random state, age, the current
pattern, the perf-file so far.

Resuming runs the training function again from the start in "replay" mode:
the learning calls already done are skipped, and so are the measures between
them, until the call the checkpoint was taken after; there the state is put
back and training goes on. Everything a training function does besides
learning and measuring (setting epsilons, constants) is done again, so the
run ends with exactly the numbers of an uninterrupted one.
"""

import io
import json

import numpy as np

from .data import atomic_write
from .errors import SNError
from .weights import structure_hash

VERSION = 1


class Checkpointer:
    """Writes a checkpoint after each learning call; in replay mode, skips."""

    def __init__(self, interp, path, identity, resume_from=None):
        self.interp, self.path, self.identity = interp, path, identity
        self.calls = 0
        self.target = 0
        self.saved = None
        if resume_from is not None:
            self.saved = resume_from
            self.target = int(resume_from["calls"])

    @property
    def replaying(self):
        return self.calls < self.target

    def before_learning(self):
        """True when this learning call must be skipped (it was done before)."""
        if not self.replaying:
            return False
        self.calls += 1
        if self.calls == self.target:
            restore(self.interp, self.saved)
        return True

    def after_learning(self):
        self.calls += 1
        save(self.interp, self.path, self.calls, self.identity)


def _perf_text(interp):
    name = interp.get("perf-file")
    if not name:
        return ""
    try:
        with open(interp.resolve(name), encoding="utf-8") as f:
            return f.read()
    except OSError:
        return ""


def save(interp, path, calls, identity):
    net = interp.net
    n, m = net.nunits, net.nweights
    state = {
        "version": VERSION, "calls": calls, "identity": identity,
        "age": interp.get("age"), "current_pattern": interp.get("current-pattern"),
        "rng": interp.rng.bit_generator.state, "perf": _perf_text(interp),
        "structure": structure_hash(net).hex(),
    }
    buf = io.BytesIO()
    adamw = interp.modern.adamw
    np.savez(buf, w=net.w[:m], delta=net.delta[:m], hess=net.hess[:m], eps=net.ceps[:net.nconn],
             x=net.x[:n], adamw=adamw if adamw is not None else np.zeros(0),
             meta=np.frombuffer(json.dumps(state).encode(), dtype=np.uint8))
    atomic_write(path, buf.getvalue())


def load(path, identity):
    """The checkpoint in `path`, checked to belong to this run."""
    try:
        with np.load(path) as data:
            saved = {k: data[k].copy() for k in data.files}
    except (OSError, ValueError, KeyError) as err:
        raise SNError(f"--resume: {path} is not a readable checkpoint ({err})") from None
    if "meta" not in saved:
        raise SNError(f"--resume: {path} is not a checkpoint of sn train")
    meta = json.loads(saved.pop("meta").tobytes().decode())
    if meta.get("version") != VERSION:
        raise SNError(f"--resume: {path} has checkpoint version {meta.get('version')}")
    if meta["identity"] != identity:
        raise SNError(f"--resume: {path} belongs to another run ({meta['identity']}); "
                      f"this one is {identity}")
    meta.update(saved)
    return meta


def restore(interp, saved):
    net = interp.net
    if structure_hash(net).hex() != saved["structure"]:
        raise SNError("--resume: the network is not the one the checkpoint was taken from")
    m = net.nweights
    net.w[:m], net.delta[:m], net.hess[:m] = saved["w"], saved["delta"], saved["hess"]
    net.acc[:m] = 0.0
    net.hq[:m] = 0.0
    net.ceps[:net.nconn] = saved["eps"]
    net.x[:net.nunits] = saved["x"]
    net.version += 1
    net.weights_version += 1
    interp.set("age", saved["age"])
    interp.set("current-pattern", saved["current_pattern"])
    interp.rng.bit_generator.state = saved["rng"]
    if interp.modern.adamw is not None and len(saved["adamw"]):
        interp.modern.adamw[:] = saved["adamw"]
    name = interp.get("perf-file")
    if name:
        atomic_write(interp.resolve(name), saved["perf"])
