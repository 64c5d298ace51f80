"""The REPL driven as a user would: through a pseudo-terminal and through a pipe."""

import os
import fcntl
import pty
import select
import signal
import subprocess
import sys
import termios
import time

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _env(home):
    env = dict(os.environ, HOME=str(home), PYTHONPATH=ROOT, TERM="dumb")
    env.pop("PYTHONSTARTUP", None)
    return env


def _controlling_terminal():
    """In the child: a new session whose controlling terminal is the pty, so
    that Ctrl-C typed on it sends SIGINT."""
    os.setsid()
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


class Terminal:
    """`python -m sn repl` on a pseudo-terminal."""

    def __init__(self, home):
        self.master, slave = pty.openpty()
        self.proc = subprocess.Popen([sys.executable, "-m", "sn", "repl"], stdin=slave,
                                     stdout=slave, stderr=slave, env=_env(home), cwd=ROOT,
                                     preexec_fn=_controlling_terminal)
        os.close(slave)
        self.seen = ""

    def expect(self, text, timeout=90):
        """Read until `text` appears; return what was read up to and including it."""
        deadline = time.time() + timeout
        while text not in self.seen:
            remaining = deadline - time.time()
            if remaining <= 0:
                raise AssertionError(f"timed out waiting for {text!r}; got {self.seen!r}")
            ready, _, _ = select.select([self.master], [], [], remaining)
            if ready:
                try:
                    chunk = os.read(self.master, 4096).decode(errors="replace")
                except OSError:
                    chunk = ""
                if not chunk:
                    raise AssertionError(f"terminal closed waiting for {text!r}; got {self.seen!r}")
                self.seen += chunk.replace("\r\n", "\n")
        head, _, self.seen = self.seen.partition(text)
        return head + text

    def send(self, text):
        os.write(self.master, text.encode())

    def close(self):
        try:
            return self.proc.wait(timeout=20)
        finally:
            os.close(self.master)


@pytest.fixture
def term(tmp_path):
    t = Terminal(tmp_path)
    yield t
    if t.proc.poll() is None:
        t.proc.kill()
        t.proc.wait()


def test_terminal_session(term, tmp_path):
    term.expect("? ")
    term.send("(de fact (n)\n")
    term.expect("  ")  # continuation prompt while the bracket is open
    term.send("  (if (< n 2) 1 (* n (fact (1- n)))))\n")
    term.expect("= fact")
    term.send("(fact 10)\n")
    term.expect("= 3628800")
    # a typing error in a multi-line form: reported with its place, session goes on
    term.send("(list 1\n")
    term.expect("  ")
    term.send("   2))\n")
    err = term.expect("? ")
    assert "<stdin>:2:6: unexpected ')'" in err
    assert "^" in err
    term.send("(fact 5)\n")
    term.expect("= 120")
    # Ctrl-C in the middle of a loop returns to the prompt with state intact
    term.send("(setq k 0)\n")
    term.expect("= 0")
    term.send("(progn (print 'looping) (while t (incr k)))\n")
    term.expect("looping\n")            # the loop has started (not the echo: no newline)
    time.sleep(0.2)
    term.send("\x03")
    term.expect("interrupted")
    term.send("(> k 0)\n")
    term.expect("= t")
    # Ctrl-C while typing cancels the line. Type only once the prompt shows, so
    # that the echo awaited is readline's and not the terminal's own echo of
    # typed-ahead keys; Python's readline sees a Ctrl-C that arrives while it
    # is still taking in keys only at the next Enter.
    term.expect("? ")
    term.send("(+ 1 2")
    term.expect("(+ 1 2")
    time.sleep(0.3)
    term.send("\x03")
    term.expect("? ")
    time.sleep(0.5)  # as a user would: readline settles after the interrupt
    term.send("(+ 2 3)\n")
    term.expect("= 5")
    # Ctrl-D leaves
    term.expect("? ")
    time.sleep(0.3)
    term.send("\x04")
    assert term.close() == 0
    assert (tmp_path / ".sn_history").exists()
    assert "(fact 10)" in (tmp_path / ".sn_history").read_text()


def test_exit_form_leaves_the_terminal(term):
    term.expect("? ")
    term.send("(exit)\n")
    assert term.close() == 0


def test_piped_input(tmp_path):
    text = "(de sq (x)\n  (* x x))\n(sq 12)\n(car 3)\n(sq 3) \"s\"\n"
    proc = subprocess.run([sys.executable, "-m", "sn", "repl"], input=text, capture_output=True,
                          text=True, env=_env(tmp_path), cwd=ROOT, timeout=60)
    assert proc.stdout.splitlines() == ["= sq", "= 144", "= 9", '= "s"']
    assert "<stdin>:1:1: car: not a list: 3" in proc.stderr
    assert proc.returncode == 1  # piped input that met an error


def test_piped_input_without_errors_exits_0(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "sn", "repl"], input="(+ 1 2)\n",
                          capture_output=True, text=True, env=_env(tmp_path), cwd=ROOT, timeout=60)
    assert proc.stdout == "= 3\n" and proc.returncode == 0


def test_interrupting_a_piped_loop_keeps_the_session(tmp_path):
    proc = subprocess.Popen([sys.executable, "-m", "sn", "repl"], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=_env(tmp_path), cwd=ROOT)
    proc.stdin.write("(setq k 0)\n(progn (print 'looping) (while t (incr k)))\n")
    proc.stdin.flush()
    assert proc.stdout.readline() == "= 0\n"
    assert proc.stdout.readline() == "looping\n"     # the loop has started
    time.sleep(0.5)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate("(> k 100)\n", timeout=60)
    assert out == "= t\n"
    assert "interrupted" in err


def test_repl_loads_a_file_first(tmp_path):
    (tmp_path / "defs.sn").write_text("(setq loaded 41)\n")
    proc = subprocess.run([sys.executable, "-m", "sn", "repl", str(tmp_path / "defs.sn")],
                          input="(1+ loaded)\n", capture_output=True, text=True,
                          env=_env(tmp_path), cwd=ROOT, timeout=60)
    assert proc.stdout == "= 42\n"


def test_command_line_exit_status(tmp_path):
    good, bad = tmp_path / "good.sn", tmp_path / "bad.sn"
    good.write_text('(printf "%d\\n" (+ 1 2))')
    bad.write_text("(setq x 1)\n(car x)\n")
    run = lambda *a: subprocess.run([sys.executable, "-m", "sn", *a], capture_output=True,
                                    text=True, env=_env(tmp_path), cwd=ROOT, timeout=60)
    ok = run("run", str(good), str(good))
    assert ok.returncode == 0 and ok.stdout == "3\n3\n"
    failed = run("run", str(bad))
    assert failed.returncode == 1
    assert f"{bad}:2:1: car: not a list: 1" in failed.stderr
    assert "Traceback" not in failed.stderr
    assert run("run").returncode == 2
    assert run("run", str(tmp_path / "missing.sn")).returncode == 2
    assert run("frobnicate").returncode == 2
    version = run("--version")
    assert version.returncode == 0 and version.stdout.startswith("sn ")
    for command in ("run", "repl"):
        assert run(command, "-h").returncode == 0
