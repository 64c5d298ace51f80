"""Regenerate the README's results table: train every network file, side by
side with the 1989 paper's and the 2022 reproduction's numbers.

    python bench/results.py [--jobs N] [--readme README.md]

Each network is trained by `python -m sn train FILE --report ...` in its own
process (N at a time); the table replaces the block between the markers
`<!-- results` and `<!-- /results -->` in the README (or is printed with
--print).
"""

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# (file, data, paper train/test, 2022 reproduction train/test): errors in %, misses
NETWORKS = [
    ("zipcode.sn", "usps", "0.14% (10) / 5.0% (102)", "—"),
    ("karpathy.sn", "mnist16", "—", "0.62% (45) / 4.09% (82)"),
    ("mlp.sn", "usps", "1.6% / 8.1%", "—"),
    ("sn28-digits.sn", "SN2.8's dig.pat (320 / 160)", "—", "—"),
    ("modern.sn", "usps + 60,000 MNIST digits framed as USPS's", "—", "—"),
]


def train(path, workdir, extra=()):
    """Train one network file in `workdir`; its report with the wall time added."""
    report = os.path.join(workdir, os.path.basename(path) + ".json")
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "sn", "train", path, "--report", report,
                           "--save", report + ".wei", *extra], cwd=workdir,
                          capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"{path} failed:\n{proc.stderr}")
    with open(report) as f:
        result = json.load(f)
    result["wall"] = time.perf_counter() - start
    return result


def run_all(paths, jobs):
    with tempfile.TemporaryDirectory() as workdir, ThreadPoolExecutor(jobs) as pool:
        return list(pool.map(lambda p: train(p, workdir), paths))


def cell(split):
    return f"{split['error']:.2f}% ({split['misses']}) / loss {split['loss']:.2e}"


def table(rows, results, jobs):
    lines = ["| network | data | paper (train / test) | 2022 reproduction | ours: train | ours: test | wall time |",
             "|---|---|---|---|---|---|---|"]
    for (name, data, paper, karpathy), r in zip(rows, results):
        lines.append(f"| `networks/{name}` | {data} | {paper} | {karpathy} | {cell(r['train'])} "
                     f"| {cell(r['test'])} | {r['wall']:.0f} s |")
    machine = f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    lines.append("")
    lines.append(f"Errors are misclassified digits (largest output not the desired class), with the "
                 f"count in brackets; loss is SN's error, the cost per output unit averaged over "
                 f"the patterns (half the squared error, as the paper reports its MSE; "
                 f"cross-entropy for `modern.sn`). "
                 f"Wall time is the whole `sn train` run (data loading, compilation from numba's "
                 f"cache, training, a measure of both sets after each pass), {jobs} run(s) at a "
                 f"time, on {machine}.")
    return "\n".join(lines)


def update_readme(readme, text, marker="results"):
    """Replace the block between `<!-- marker ... -->` and `<!-- /marker -->`."""
    with open(readme, encoding="utf-8") as f:
        content = f.read()
    start = content.index(f"<!-- {marker}")
    start = content.index("-->", start) + len("-->")
    end = content.index(f"<!-- /{marker} -->")
    content = content[:start] + "\n" + text + "\n" + content[end:]
    with open(readme + ".tmp", "w", encoding="utf-8") as f:
        f.write(content)
    os.replace(readme + ".tmp", readme)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=1, help="trainings run at once")
    parser.add_argument("--readme", default=os.path.join(ROOT, "README.md"))
    parser.add_argument("--print", action="store_true", help="print the table, leave the README")
    args = parser.parse_args()
    paths = [os.path.join(ROOT, "networks", name) for name, *_ in NETWORKS]
    text = table(NETWORKS, run_all(paths, args.jobs), args.jobs)
    if args.print:
        print(text)
    else:
        update_readme(args.readme, text)
        print(f"{args.readme}: results table updated")


if __name__ == "__main__":
    main()
