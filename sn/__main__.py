"""The command line: python -m sn {run,repl,...} (also installed as `sn`)."""

import argparse
import os
import sys

from . import __version__
from .errors import SNError
from .interpreter import Interpreter, LispExit


def main(argv=None):
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    files = getattr(args, "files", None) or []
    for name in [files] if isinstance(files, str) else files:
        if not os.path.isfile(name):
            parser.error(f"no such file: {name}")
    try:
        return args.action(args)
    except SNError as err:
        sys.stdout.flush()
        sys.stderr.write(err.report() + "\n")
        return 1
    except LispExit as leave:
        return leave.code
    except KeyboardInterrupt:
        sys.stderr.write("interrupted\n")
        return 130


def _parser():
    parser = argparse.ArgumentParser(
        prog="sn", description="SN: the neural network simulator of Bottou and LeCun, in Python.")
    parser.add_argument("--version", action="version", version=f"sn {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    run = sub.add_parser("run", help="evaluate .sn files in order",
                         description="Evaluate .sn files in order.")
    run.add_argument("files", nargs="+", metavar="FILE")
    run.set_defaults(action=_run)

    repl = sub.add_parser("repl", help="the interactive loop (after loading FILE)",
                          description="Load FILE if given, then read, evaluate and print.")
    repl.add_argument("files", nargs="?", metavar="FILE", default=None)
    repl.set_defaults(action=_repl)
    return parser


def _run(args):
    interp = Interpreter()
    for name in args.files:
        interp.load(os.path.abspath(name))
    return 0


def _repl(args):
    from .repl import repl
    interp = Interpreter()
    if args.files:
        try:
            interp.load(os.path.abspath(args.files))
        except SNError as err:
            sys.stderr.write(err.report() + "\n")
    return repl(interp)


if __name__ == "__main__":
    sys.exit(main())
