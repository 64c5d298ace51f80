"""Batch-size-1 PyTorch training of the 1989 zip-code network (SGD), for comparison.

The network is the one sn trains (16x16 input; H1 12 planes 8x8, 5x5 kernels step 2 with
a background of -1; H2 12 planes 4x4 from 8 of the 12 H1 planes; H3 30; 10 outputs; one
bias per unit in H1 and H2), written the way the 2022 PyTorch reproduction of the paper
wrote it. It prints training samples per second.

PyTorch is not a dependency of sn: run this with a Python that has torch installed, e.g.

    python bench/torch_zipcode.py [--steps 3000] [--repeat 3] [--threads 1] [--usps DIR] [--json]

It reports the best of --repeat measures of --steps steps, as `sn bench` does. Without
--usps it times random patterns (the speed does not depend on the data).
"""

import argparse
import gzip
import json
import os
import sys
import time

try:
    import torch
    import torch.nn.functional as F
except ImportError:
    sys.exit("torch_zipcode.py needs PyTorch, which sn does not depend on; "
             "install it (e.g. pip install torch) in a separate environment to run this benchmark.")


class ZipNet(torch.nn.Module):
    def __init__(self):
        super().__init__()

        def winit(fanin, *shape):
            return (torch.rand(*shape) - 0.5) * 2 * 2.4 / fanin ** 0.5

        self.h1w = torch.nn.Parameter(winit(5 * 5 * 1, 12, 1, 5, 5))
        self.h1b = torch.nn.Parameter(torch.zeros(12, 8, 8))
        self.h2w = torch.nn.Parameter(winit(5 * 5 * 8, 12, 8, 5, 5))
        self.h2b = torch.nn.Parameter(torch.zeros(12, 4, 4))
        self.h3w = torch.nn.Parameter(winit(4 * 4 * 12, 4 * 4 * 12, 30))
        self.h3b = torch.nn.Parameter(torch.zeros(30))
        self.outw = torch.nn.Parameter(winit(30, 30, 10))
        self.outb = torch.nn.Parameter(-torch.ones(10))

    def forward(self, x):
        x = F.pad(x, (2, 2, 2, 2), "constant", -1.0)
        x = torch.tanh(F.conv2d(x, self.h1w, stride=2) + self.h1b)
        x = F.pad(x, (2, 2, 2, 2), "constant", -1.0)
        a = F.conv2d(x[:, 0:8], self.h2w[0:4], stride=2)
        b = F.conv2d(x[:, 4:12], self.h2w[4:8], stride=2)
        c = F.conv2d(torch.cat((x[:, 0:4], x[:, 8:12]), dim=1), self.h2w[8:12], stride=2)
        x = torch.tanh(torch.cat((a, b, c), dim=1) + self.h2b)
        x = torch.tanh(x.flatten(start_dim=1) @ self.h3w + self.h3b)
        return torch.tanh(x @ self.outw + self.outb)


def load_usps(directory):
    rows = []
    with gzip.open(os.path.join(directory, "zip.train.gz"), "rt") as f:
        for line in f:
            rows.append([float(v) for v in line.split()])
    data = torch.tensor(rows)
    x = data[:, 1:].reshape(-1, 1, 16, 16)
    y = -torch.ones(len(rows), 10)
    y[torch.arange(len(rows)), data[:, 0].long()] = 1.0
    return x, y


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=3000, help="training steps per measure")
    ap.add_argument("--repeat", type=int, default=3, help="measures; the best is reported")
    ap.add_argument("--threads", type=int, default=1, help="torch.set_num_threads")
    ap.add_argument("--usps", help="directory with zip.train.gz (default: random data)")
    ap.add_argument("--json", action="store_true", help="print JSON")
    args = ap.parse_args()
    torch.manual_seed(0)
    torch.set_num_threads(args.threads)
    if args.usps:
        x, y = load_usps(args.usps)
    else:
        x = torch.rand(7291, 1, 16, 16) * 2 - 1
        y = -torch.ones(7291, 10)
        y[torch.arange(7291), torch.randint(0, 10, (7291,))] = 1.0
    model = ZipNet()
    opt = torch.optim.SGD(model.parameters(), lr=0.03)

    def step(i):
        xb, yb = x[i % len(x)][None], y[i % len(y)][None]
        loss = torch.mean((yb - model(xb)) ** 2)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    for i in range(min(200, args.steps)):      # warm up
        step(i)
    best = 0.0
    for _ in range(args.repeat):
        t = time.perf_counter()
        for i in range(args.steps):
            step(i)
        best = max(best, args.steps / (time.perf_counter() - t))
    if args.json:
        print(json.dumps({"samples_per_s": round(best, 1), "torch": torch.__version__,
                          "threads": args.threads}))
    else:
        print("torch %s, %d thread(s): %.0f samples/s (batch size 1, SGD, best of %d x %d steps)"
              % (torch.__version__, args.threads, best, args.repeat, args.steps))


if __name__ == "__main__":
    main()
