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
    except BrokenPipeError:  # output piped into a program that stopped reading
        sys.stdout = open(os.devnull, "w")
        return 0


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

    info = sub.add_parser("info", help="layers, units, connections and weights of a network",
                          description="Evaluate FILE's definitions (no training, no data "
                                      "needed) and describe its network, layer by layer.")
    info.add_argument("files", metavar="FILE")
    info.add_argument("--json", action="store_true", help="print JSON instead of a table")
    info.set_defaults(action=_info)

    train = sub.add_parser("train", help="train a network file: call its (train)",
                           description="Load FILE, call its (de train () ...), print the "
                                       "training and test results, write weights and perf-file.")
    train.add_argument("files", metavar="FILE")
    train.add_argument("--passes", type=_positive, metavar="N",
                       help="number of passes (sets the variable passes)")
    train.add_argument("--seed", type=int, metavar="S",
                       help="seed of the random state (default: the file's train-seed, else 0)")
    train.add_argument("--save", metavar="W", help="weight file to write (default FILE's name .wei)")
    train.add_argument("--report", metavar="R.json", help="write the results as JSON")
    train.add_argument("--resume", action="store_true",
                       help="go on from the checkpoint of an interrupted run")
    train.set_defaults(action=_train)

    bench = sub.add_parser("bench", help="training speed of a network file, samples/s",
                           description="Train FILE's network one pattern at a time (on its "
                                       "data, or random data when the files are absent) and "
                                       "report samples per second for SGD, LM and the sparse plan.")
    bench.add_argument("files", metavar="FILE")
    bench.add_argument("--passes", type=_positive, default=1, metavar="N",
                       help="passes over the training set per measure (default 1)")
    bench.add_argument("--repeat", type=_positive, default=3, metavar="R",
                       help="measures per speed; the best is reported (default 3)")
    bench.add_argument("--json", action="store_true", help="print JSON")
    bench.set_defaults(action=_bench)

    plot = sub.add_parser("plot", help="training and test curves of a perf-file (matplotlib)",
                          description="Draw error and performance against age, one curve per "
                                      "pattern range of PERF-FILE (lines 'age error performance "
                                      ";{first-last}'), into a picture file.")
    plot.add_argument("files", metavar="PERF-FILE")
    plot.add_argument("-o", "--output", metavar="OUT.png",
                      help="picture to write (default PERF-FILE's name .png)")
    plot.set_defaults(action=_plot)

    errors = sub.add_parser("errors", help="draw the misclassified test patterns (matplotlib)",
                            description="Load FILE's definitions and the weights WEIGHTS "
                                        "(load-net), evaluate the test set and draw the "
                                        "misclassified patterns with their true and predicted "
                                        "classes (at most 100).")
    errors.add_argument("files", metavar="FILE")
    errors.add_argument("weights", metavar="WEIGHTS")
    errors.add_argument("-o", "--output", metavar="OUT.png", default="misses.png",
                        help="picture to write (default misses.png)")
    errors.set_defaults(action=_errors)
    return parser


def _positive(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be positive: {value}")
    return value


def _info(args):
    from .info import as_json, as_table, summary
    interp = Interpreter()
    interp.load(os.path.abspath(args.files))
    info = summary(interp)
    print(as_json(info) if args.json else as_table(info, args.files))
    return 0


def _bench(args):
    from .bench import run
    run(args.files, passes=args.passes, repeat=args.repeat, as_json=args.json)
    return 0


def _train(args):
    from .train import run
    run(args.files, passes=args.passes, seed=args.seed, save=args.save, report=args.report,
        resume=args.resume)
    return 0


def _plot(args):
    from .plot import run_plot
    run_plot(args.files, args.output, stream=sys.stdout)
    return 0


def _errors(args):
    from .plot import run_errors
    run_errors(args.files, args.weights, args.output, stream=sys.stdout)
    return 0


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
