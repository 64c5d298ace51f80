"""Regenerate the README's ablation table: the modern steps of
networks/modern/ trained on mnist16 and on usps, side by side with the 2022
reproduction's table.

    python bench/ablation.py [--jobs N] [--passes N] [--print]

Independent trainings run N at a time (default: all cores). --passes
overrides every step's number of passes (a quick check: use it with --print
or another --readme).
"""

import argparse
import os
import tempfile
from concurrent.futures import ThreadPoolExecutor

from results import ROOT, train, update_readme

STEPS = [  # file, what, the 2022 reproduction's train / test on mnist16
    ("0-baseline.sn", "baseline: tanh, MSE, SGD, 23 passes", "0.62% (45) / 4.09% (82)"),
    ("1-xent.sn", "linear outputs + softmax cross-entropy (SGD 0.01)", "0.00% (0) / 4.38% (87)"),
    ("2-adamw.sn", "AdamW, lr 3e-4 decayed linearly to 1e-4, 46 passes", "0.00% (0) / 3.59% (72)"),
    ("3-augment.sn", "random shifts of ±1 pixel, 60 passes", "1.70% (123) / 2.19% (43)"),
    ("4-relu-dropout.sn", "ReLU everywhere + dropout 0.25 before H3, 80 passes",
     "1.47% (106) / 1.59% (32)"),
    ("5-more-data.sn", "same, trained on 50,000 MNIST digits", "1.07% / 1.25% (24)"),
]
DATASETS = ("mnist16", "usps")


def wrapper(workdir, step, dataset):
    """A file that sets the data set and loads the step."""
    path = os.path.join(workdir, f"{dataset}-{step}")
    with open(path, "w") as f:
        f.write(f"(setq dataset '{dataset})\n"
                f"(load \"{os.path.join(ROOT, 'networks', 'modern', step)}\")\n")
    return path


def jobs_for():
    return [(step, dataset) for step, *_ in STEPS for dataset in DATASETS
            if not (dataset == "usps" and step.startswith("5-"))]


def errors(result):
    if not result:
        return "—"
    return f"{result['train']['error']:.2f}% ({result['train']['misses']}) / " \
           f"{result['test']['error']:.2f}% ({result['test']['misses']})"


def table(results):
    lines = ["| step (cumulative) | 2022 reproduction, mnist16 | ours, mnist16 | ours, usps "
             "| wall time (mnist16, usps) |",
             "|---|---|---|---|---|"]
    for step, what, theirs in STEPS:
        mnist = results.get((step, "mnist16"))
        usps = results.get((step, "usps"))
        wall = ", ".join(f"{r['wall']:.0f} s" for r in (mnist, usps) if r)
        lines.append(f"| `{step}` {what} | {theirs} | {errors(mnist)} | {errors(usps)} | {wall} |")
    lines.append("")
    lines.append("Training / test error, misclassified digits in brackets (of 7291 or 50,000 "
                 "training and 2007 test digits). The 2022 column is that reproduction's table; "
                 "ours are `python -m sn train` of each file, 2 at a time on this 2-core machine.")
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--passes", type=int, help="override the passes of every step")
    parser.add_argument("--readme", default=os.path.join(ROOT, "README.md"))
    parser.add_argument("--print", action="store_true", help="print the table, leave the README")
    args = parser.parse_args()
    extra = ["--passes", str(args.passes)] if args.passes else []
    with tempfile.TemporaryDirectory() as workdir, ThreadPoolExecutor(args.jobs) as pool:
        jobs = jobs_for()
        paths = [wrapper(workdir, step, dataset) for step, dataset in jobs]
        done = list(pool.map(lambda p: train(p, workdir, extra), paths))
    text = table(dict(zip(jobs, done)))
    if args.print:
        print(text)
    else:
        update_readme(args.readme, text, marker="ablation")
        print(f"{args.readme}: ablation table updated")


if __name__ == "__main__":
    main()
