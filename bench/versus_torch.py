"""sn against a batch-size-1 PyTorch loop of the same network, measured in one run.

Alternates `python -m sn bench networks/zipcode.sn --json` (this Python) and
`bench/torch_zipcode.py --json` (a Python that has PyTorch, which sn does not depend
on) for a few rounds, so that both see the same machine, and prints each one's best
speed and the ratios:

    python bench/versus_torch.py --torch-python ../torch-env/bin/python [--rounds 3]
"""

import argparse
import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _json(cmd):
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    if proc.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed:\n{proc.stderr.strip()}")
    return json.loads(proc.stdout)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--torch-python", required=True, metavar="PYTHON",
                    help="a Python interpreter with PyTorch installed")
    ap.add_argument("--rounds", type=int, default=3, help="alternations of the two (default 3)")
    ap.add_argument("--threads", type=int, default=1, help="PyTorch threads (default 1)")
    args = ap.parse_args()
    sn_cmd = [sys.executable, "-m", "sn", "bench", os.path.join("networks", "zipcode.sn"),
              "--json", "--passes", "2", "--repeat", "3"]
    torch_cmd = [args.torch_python, os.path.join("bench", "torch_zipcode.py"), "--json",
                 "--threads", str(args.threads)]
    sn, torch = [], []
    for _ in range(args.rounds):
        sn.append(_json(sn_cmd))
        torch.append(_json(torch_cmd))
    base = max(t["samples_per_s"] for t in torch)
    print(f"PyTorch {torch[0]['torch']}, batch size 1, {args.threads} thread(s): "
          f"{base:,.0f} samples/s (best of {args.rounds} rounds)")
    labels = {"sgd_samples_per_s": "on-line SGD", "lm_samples_per_s": "on-line LM",
              "sparse_sgd_samples_per_s": "SGD, sparse plan"}
    best = {key: max(r[key] for r in sn) for key in labels}
    for key, label in labels.items():
        print(f"sn {label:<18} {best[key]:>10,.0f} samples/s  {best[key] / base:5.1f}x PyTorch")
    print(f"LM time per sample: "
          f"{best['sgd_samples_per_s'] / best['lm_samples_per_s']:.2f}x SGD's ({sn[0]['dtype']})")


if __name__ == "__main__":
    main()
