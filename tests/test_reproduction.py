"""The golden reproduction: networks/zipcode.sn on the USPS digits, the full
23 passes, must reach the 1989 paper's test error of 5.0% (102 misses of 2007)
or better. Needs the data files (SN_DATA); skipped without them."""

import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _usps_available():
    root = os.environ.get("SN_DATA")
    if not root:
        return False
    return any(os.path.exists(os.path.join(root, sub, "zip.test.gz")) for sub in ("", "usps"))


@pytest.mark.skipif(not _usps_available(), reason="the USPS files are not in SN_DATA")
def test_zipcode_reaches_the_papers_test_error(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "sn", "train",
                           os.path.join(ROOT, "networks", "zipcode.sn"), "--report", "r.json"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=900,
                          env=dict(os.environ, PYTHONPATH=ROOT))
    assert proc.returncode == 0, proc.stderr
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["passes"] == 23
    assert report["test"]["misses"] <= 102, report
    assert report["test"]["error"] <= 5.0
    assert report["train"]["error"] < 1.0
    perf = (tmp_path / "zipcode.perf").read_text().splitlines()
    measures = [line for line in perf if not line.startswith(";;;")]
    assert len(measures) == 2 * 24  # both sets, before training and after each pass
    assert "eval: split test." in proc.stdout
