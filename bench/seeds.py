"""Test misses of a network file over random seeds: how much of a result is luck.

    python bench/seeds.py networks/zipcode.sn [--seeds 0-19] [--jobs N]

Trains the file once per seed (`python -m sn train FILE --seed S`), N at a
time, and prints each seed's training and test misses, then their summary.
"""

import argparse
import os
import statistics
import tempfile
from concurrent.futures import ThreadPoolExecutor

from results import train


def seed_range(text):
    lo, _, hi = text.partition("-")
    return list(range(int(lo), int(hi or lo) + 1))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("file")
    parser.add_argument("--seeds", type=seed_range, default=seed_range("0-19"))
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--limit", type=int, default=102, help="test misses to count runs under")
    args = parser.parse_args()
    path = os.path.abspath(args.file)
    with tempfile.TemporaryDirectory() as workdir, ThreadPoolExecutor(args.jobs) as pool:
        runs = list(pool.map(lambda s: train(path, os.path.join(workdir, str(s)), ["--seed", str(s)]),
                             _dirs(workdir, args.seeds)))
    misses = [r["test"]["misses"] for r in runs]
    for seed, r in zip(args.seeds, runs):
        print(f"seed {seed:3d}: train misses {r['train']['misses']:4d}, test misses {r['test']['misses']:4d} "
              f"({r['test']['error']:.2f}%)")
    print(f"test misses: mean {statistics.mean(misses):.1f}, median {statistics.median(misses):g}, "
          f"min {min(misses)}, max {max(misses)}; {sum(m <= args.limit for m in misses)} of "
          f"{len(misses)} at or below {args.limit}")


def _dirs(workdir, seeds):
    for s in seeds:
        os.makedirs(os.path.join(workdir, str(s)), exist_ok=True)
        yield s


if __name__ == "__main__":
    main()
