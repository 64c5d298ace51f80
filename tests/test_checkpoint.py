"""Checkpoints of sn train: an interrupted run resumed with --resume ends with
exactly the numbers of an uninterrupted one."""

import json
import os
import signal
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

NETWORK = """
(build-net '((input 16) (hidden 12) (output 4)) '((input hidden) (hidden output)))
(setq n 200)
(setq pattern-matrix (matrix n 16) desired-matrix (matrix n 4))
(seed 11)
(for (p 0 (1- n))
  (for (i 0 15) (pattern-matrix p i (rand -1 1)))
  (for (o 0 3) (desired-matrix p o (if (> (pattern-matrix p o) 0) 1 -1))))
(ensemble 0 149)
(test-set 150 199)
(setq done 0)

(de train ()
  (set-class-max)
  (forget-sqrt 1)
  (epsi 0.3)
  (set-nextcho-rnd)                  ; the random state must survive the interruption
  (repeat 12
    (if (= done 6) (epsi 0.1))       ; a schedule, redone when replaying
    (learn-lm 150)
    (incr done)
    (when (and (getenv "SN_TEST_DIE") (= done (val (getenv "SN_TEST_DIE")))) (exit 3))
    (perf)
    (perf 150 199)))
"""


def train(workdir, *extra, env=None, wait=True):
    args = [sys.executable, "-m", "sn", "train", "net.sn", "--report", "r.json", *extra]
    environ = dict(os.environ, PYTHONPATH=ROOT, **(env or {}))
    if not wait:
        return subprocess.Popen(args, cwd=workdir, env=environ, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
    return subprocess.run(args, cwd=workdir, env=environ, capture_output=True, text=True,
                          timeout=600)


def setup(path):
    path.mkdir()
    (path / "net.sn").write_text(NETWORK)
    return path


def outcome(workdir):
    return ((workdir / "net.wei").read_bytes(), (workdir / "net.perf").read_text(),
            json.loads((workdir / "r.json").read_text())["test"])


def test_interrupted_then_resumed_equals_uninterrupted(tmp_path):
    whole = setup(tmp_path / "whole")
    assert train(whole).returncode == 0
    cut = setup(tmp_path / "cut")
    died = train(cut, env={"SN_TEST_DIE": "4"})
    assert died.returncode == 3
    assert (cut / "net.wei.ckpt").exists() and not (cut / "r.json").exists()
    resumed = train(cut, "--resume")
    assert resumed.returncode == 0, resumed.stderr
    assert "resuming from net.wei.ckpt: 4 learning calls done" in resumed.stdout
    assert outcome(cut) == outcome(whole)
    assert not (cut / "net.wei.ckpt").exists() and not (whole / "net.wei.ckpt").exists()


def test_killed_then_resumed_equals_uninterrupted(tmp_path):
    whole = setup(tmp_path / "whole")
    assert train(whole).returncode == 0
    killed = setup(tmp_path / "killed")
    proc = train(killed, wait=False)
    deadline = time.time() + 120
    while not (killed / "net.wei.ckpt").exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    resumed = train(killed, "--resume")
    assert resumed.returncode == 0, resumed.stderr
    assert outcome(killed) == outcome(whole)


def test_resume_refuses_a_checkpoint_of_another_run(tmp_path):
    work = setup(tmp_path / "w")
    assert train(work, env={"SN_TEST_DIE": "2"}).returncode == 3
    other = train(work, "--resume", "--seed", "5")
    assert other.returncode == 1 and "belongs to another run" in other.stderr

