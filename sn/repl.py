"""The interactive loop: prompt `? `, each value printed as `= value`.

Input continues over several lines while a bracket or a string is open. An
error prints its message and the session goes on; Ctrl-C cancels the line
being typed or the computation running; Ctrl-D or (exit) leaves. On a terminal
lines are edited with readline and kept in ~/.sn_history.
"""

import os
import sys

from .datum import to_string
from .errors import SNError
from .interpreter import LispExit
from .reader import is_incomplete

PROMPT = "? "
CONTINUE = "  "
HISTORY = os.path.join(os.path.expanduser("~"), ".sn_history")


def repl(interp, stdin=None, stdout=None, stderr=None):
    """Run the loop until end of input or (exit); return the exit status:
    the code given to (exit), else 1 when input was piped and an error
    occurred, else 0."""
    stdin = stdin or sys.stdin
    stdout = stdout or sys.stdout
    stderr = stderr or sys.stderr
    interactive = stdin.isatty() and stdout.isatty()
    if interactive:
        _setup_readline()
        stdout.write("sn: type an expression, (exit) or Ctrl-D to leave.\n")
    failed = False
    try:
        while True:
            try:
                text = _read_chunk(stdin, stdout, interactive)
            except KeyboardInterrupt:
                stdout.write("\n")
                continue
            if text is None:
                if interactive:
                    stdout.write("\n")
                break
            failed |= not _evaluate(interp, text, stdout, stderr)
    except LispExit as leave:
        return leave.code
    finally:
        if interactive:
            _save_history()
    return 1 if failed and not interactive else 0


def _read_chunk(stdin, stdout, interactive):
    """Lines up to a complete set of forms; None at end of input."""
    lines = []
    while True:
        prompt = CONTINUE if lines else PROMPT
        if interactive:
            try:
                line = input(prompt)
            except EOFError:
                return "\n".join(lines) if lines else None
        else:
            line = stdin.readline()
            if not line:
                return "\n".join(lines) if lines else None
            line = line.rstrip("\n")
        lines.append(line)
        text = "\n".join(lines)
        if text.strip() and not is_incomplete(text):
            return text
        if not text.strip():
            lines = []


def _evaluate(interp, text, stdout, stderr):
    """Evaluate every form of `text`, printing each value; False on error."""
    ok = True
    try:
        forms = interp.read(text, "<stdin>")
    except SNError as err:
        stderr.write(err.report() + "\n")
        return False
    for form, loc in forms:
        try:
            value = interp.eval_toplevel(form, loc)
            stdout.write(f"= {to_string(value)}\n")
        except SNError as err:
            stdout.flush()
            stderr.write(err.report() + "\n")
            ok = False
        except KeyboardInterrupt:
            stdout.flush()
            stderr.write("interrupted\n")
            ok = False
            break
        stdout.flush()
    return ok


def _setup_readline():
    try:
        import readline
    except ImportError:
        return
    try:
        readline.read_history_file(HISTORY)
    except OSError:
        pass
    readline.set_history_length(2000)


def _save_history():
    try:
        import readline
        readline.write_history_file(HISTORY)
    except (ImportError, OSError):
        pass
