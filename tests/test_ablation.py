"""The ablation command, run short: every step of networks/modern/ trains on
both data sets, and the table is written. Needs the data files (SN_DATA)."""

import os
import re
import shutil
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _data_available():
    root = os.environ.get("SN_DATA")
    return bool(root) and os.path.isdir(os.path.join(root, "mnist")) and \
        os.path.isdir(os.path.join(root, "usps"))


@pytest.mark.skipif(not _data_available(), reason="the MNIST and USPS files are not in SN_DATA")
def test_ablation_command_writes_the_table(tmp_path):
    readme = tmp_path / "README.md"
    shutil.copy(os.path.join(ROOT, "README.md"), readme)
    proc = subprocess.run([sys.executable, os.path.join(ROOT, "bench", "ablation.py"),
                           "--passes", "1", "--jobs", "2", "--readme", str(readme)],
                          capture_output=True, text=True, timeout=900, cwd=tmp_path,
                          env=dict(os.environ, PYTHONPATH=ROOT))
    assert proc.returncode == 0, proc.stderr
    text = readme.read_text()
    block = text.split("<!-- ablation")[1].split("<!-- /ablation -->")[0]
    rows = [line for line in block.splitlines() if line.startswith("| `")]
    assert [row.split("`")[1] for row in rows] == [
        "0-baseline.sn", "1-xent.sn", "2-adamw.sn", "3-augment.sn", "4-relu-dropout.sn",
        "5-more-data.sn"]
    for row in rows:
        cells = [c.strip() for c in row.split("|")[1:-1]]
        for cell in cells[2:4]:           # ours on mnist16, ours on usps
            if cell == "—":
                continue
            train, test = (float(v) for v in re.findall(r"([\d.]+)% \(\d+\)", cell))
            assert test < 30.0, row      # one pass already learns: chance is 90%
    original = open(os.path.join(ROOT, "README.md"), encoding="utf-8").read()
    assert outside(text) == outside(original)  # nothing else of the README changed


def outside(text):
    head, rest = text.split("<!-- ablation", 1)
    return head + rest.split("<!-- /ablation -->", 1)[1]
