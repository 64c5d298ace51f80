"""Tests of sn.data: matrix files, data sets, checksums, downloads, safe writes.

Tests that need the shared data files read them from $SN_DATA and skip when it
is unset or the files are missing.  Download tests use a local HTTP server.
"""

import gzip
import hashlib
import http.server
import io
import os
import random
import socket
import struct
import threading
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from sn import data
from sn.errors import SNError
from sn.interpreter import Interpreter

# MNIST16's first ten training labels, computed once and checked below against
# an independent derivation from the raw MNIST label file.
MNIST16_FIRST_TRAIN_LABELS = [6, 1, 0, 5, 9, 1, 6, 8, 6, 7]


# ---------------------------------------------------------------- helpers


def data_shared(*parts):
    """Path of a shared data file under $SN_DATA, or skip the test."""
    root = os.environ.get("SN_DATA")
    if not root:
        pytest.skip("SN_DATA is not set")
    path = Path(root).joinpath(*parts)
    if not path.exists():
        pytest.skip(f"{path} is missing")
    return path


def data_sn_binary(magic, dims, payload, order=">", ndim=None, pad=True):
    """Bytes of an SN binary matrix file."""
    ndim = len(dims) if ndim is None else ndim
    dims = list(dims) + ([1] * (3 - len(dims)) if pad else [])
    return struct.pack(f"{order}{2 + len(dims)}i", magic, ndim, *dims) + payload


def data_listing(directory):
    """Every name in a directory tree, hidden files included."""
    return sorted(str(p.relative_to(directory)) for p in Path(directory).rglob("*"))


def data_slow_bilinear(img, out_h, out_w):
    """PyTorch's bilinear resize (align_corners=False), one pixel at a time."""
    in_h, in_w = len(img), len(img[0])

    def source(d, n_in, n_out):
        s = max((d + 0.5) * n_in / n_out - 0.5, 0.0)
        i0 = int(s)
        i1 = i0 + 1 if i0 < n_in - 1 else i0
        return i0, i1, s - i0

    out = [[0.0] * out_w for _ in range(out_h)]
    for y in range(out_h):
        y0, y1, ly = source(y, in_h, out_h)
        for x in range(out_w):
            x0, x1, lx = source(x, in_w, out_w)
            top = (1 - lx) * img[y0][x0] + lx * img[y0][x1]
            bottom = (1 - lx) * img[y1][x0] + lx * img[y1][x1]
            out[y][x] = (1 - ly) * top + ly * bottom
    return out


# ---------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def usps():
    data_shared("usps", "zip.train.gz")
    return data.load_usps(download=False)


@pytest.fixture(scope="module")
def mnist16():
    data_shared("mnist", "train-images-idx3-ubyte.gz")
    return data.load_mnist16(download=False)


@pytest.fixture(scope="module")
def mnist_raw():
    """The raw MNIST arrays, read here without sn.data."""
    def idx(name, offset):
        with gzip.open(data_shared("mnist", name + ".gz")) as f:
            return np.frombuffer(f.read(), np.uint8, offset=offset)
    return {
        "train_images": idx("train-images-idx3-ubyte", 16).reshape(-1, 28, 28),
        "train_labels": idx("train-labels-idx1-ubyte", 8),
        "test_images": idx("t10k-images-idx3-ubyte", 16).reshape(-1, 28, 28),
        "test_labels": idx("t10k-labels-idx1-ubyte", 8),
    }


@pytest.fixture
def data_env(tmp_path, monkeypatch):
    """No SN_DATA, no SN_DATA_URL, an empty cache under tmp_path; returns the cache root."""
    monkeypatch.delenv("SN_DATA", raising=False)
    monkeypatch.delenv("SN_DATA_URL", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return tmp_path / "cache"


@pytest.fixture
def data_fake_usps(monkeypatch):
    """Small stand-ins for the usps files, with the checksum table patched to match."""
    rng = np.random.default_rng(0)
    contents = {}
    for base, n in (("zip.train", 5), ("zip.test", 3)):
        rows = [" ".join([f"{i % 10:.4f}"] + [f"{v:.4f}" for v in rng.uniform(-1, 1, 256)])
                for i in range(n)]
        contents[base] = ("\n".join(rows) + "\n").encode()
        monkeypatch.setitem(data.CHECKSUMS["usps"], base,
                            hashlib.sha256(contents[base]).hexdigest())
    return contents


class _Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.server.requests.append(self.path)
        body = self.server.files.get(self.path)
        if body is None:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.path in self.server.truncate:
            self.wfile.write(body[:len(body) // 2])
            self.wfile.flush()
            self.close_connection = True
        else:
            self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def data_http_server():
    """A local HTTP server: set .files[path] = bytes; paths in .truncate send half."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.files, server.truncate, server.requests = {}, set(), []
    server.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    thread.join()


# ---------------------------------------------------------------- SN2.8 files


def test_dig_pat_is_480_packed_digits():
    path = data_shared("sn28", "dig.pat")
    pat = data.load_matrix(path)
    assert pat.shape == (480, 256) and pat.dtype == np.float64
    raw = np.frombuffer(path.read_bytes(), np.int8, 480 * 256, 20)
    assert np.array_equal(pat.ravel(), raw / 16.0)
    assert set(np.unique(pat)) == {-1.0, 1.0}  # bytes 0xF0 and 0x10
    # First row of the first digit, from the file's bytes f0*6 10*3 f0*7.
    assert list(pat[0, :16]) == [-1] * 6 + [1] * 3 + [-1] * 7


def test_dig_des_is_one_hot_cycling_through_the_classes():
    des = data.load_matrix(data_shared("sn28", "dig.des"))
    assert des.shape == (480, 10)
    assert set(np.unique(des)) == {-1.0, 1.0}
    assert np.all((des == 1).sum(axis=1) == 1)
    assert np.array_equal(des.argmax(axis=1), np.arange(480) % 10)


def _sn28_mat_files():
    root = os.environ.get("SN_DATA")
    folder = Path(root, "sn28") if root else None
    if folder is None or not folder.is_dir():
        return [pytest.param(None, marks=pytest.mark.skip(reason="SN_DATA/sn28 missing"))]
    return sorted(folder.glob("*.mat"))


@pytest.mark.parametrize("path", _sn28_mat_files(), ids=lambda p: p and p.name)
def test_every_sn28_ascii_matrix_loads_with_its_header_shape(path):
    header = path.read_text().split("\n", 1)[0].split()
    assert header[0] == ".MAT"
    dims = tuple(int(d) for d in header[2:2 + int(header[1])])
    m = data.load_matrix(path)
    assert m.shape == dims and m.dtype == np.float64
    assert np.all(np.abs(m) <= 1)


# ---------------------------------------------------------------- binary format

_KINDS = [  # magic, numpy type, values as written, values as read
    (0x1E3D4C51, "f4", [1.5, -2.25, 0.0, 3.0, 1e-3, 7.0], None),
    (0x1E3D4C52, "i1", [16, -16, 8, 0, 127, -128], [1, -1, 0.5, 0, 127 / 16, -8]),
    (0x1E3D4C53, "f8", [1.5, -2.25, 0.1, 3.0, 1e300, -7.0], None),
    (0x1E3D4C54, "i4", [1, -2, 3, 2**31 - 1, -2**31, 0], None),
    (0x1E3D4C55, "u1", [0, 1, 2, 128, 255, 7], None),
    (0x1E3D4C56, "i2", [1, -2, 3, 32767, -32768, 0], None),
    (0x1E3D4C57, "i1", [1, -2, 3, 127, -128, 0], None),
]


@pytest.mark.parametrize("order", [">", "<"])
@pytest.mark.parametrize("magic,code,written,read", _KINDS)
def test_every_binary_kind_in_both_byte_orders(tmp_path, order, magic, code, written, read):
    payload = np.array(written, dtype=order + code).tobytes()
    path = tmp_path / "m.bin"
    path.write_bytes(data_sn_binary(magic, (2, 3), payload, order) + b"trailing junk\n")
    m = data.load_matrix(path)
    expected = np.array(written, dtype=code) if read is None else np.array(read)
    expected = expected.astype(np.float64)
    assert m.dtype == np.float64
    assert np.array_equal(m, expected.reshape(2, 3))


@pytest.mark.parametrize("dims,ndim,shape", [
    ((5,), 1, (5,)),
    ((2, 3), 2, (2, 3)),
    ((2, 3, 1), 3, (2, 3)),
    ((2, 3, 1, 1), 4, (2, 3)),
    ((2, 1, 3), 3, (2, 1, 3)),
    ((4, 1), 2, (4, 1)),
    ((2, 2, 2, 2), 4, (2, 2, 2, 2)),
])
def test_binary_shapes_drop_trailing_ones_beyond_the_second(tmp_path, dims, ndim, shape):
    n = int(np.prod(dims))
    path = tmp_path / "m.bin"
    path.write_bytes(data_sn_binary(0x1E3D4C53, dims, np.arange(n, dtype=">f8").tobytes()))
    m = data.load_matrix(path)
    assert m.shape == shape
    assert np.array_equal(m.ravel(), np.arange(n))


def test_little_endian_dig_pat_reads_the_same(tmp_path):
    src = data_shared("sn28", "dig.pat")
    raw = src.read_bytes()
    swapped = np.frombuffer(raw[:20], ">i4").astype("<i4").tobytes() + raw[20:]
    (tmp_path / "le.pat").write_bytes(swapped)
    assert np.array_equal(data.load_matrix(tmp_path / "le.pat"), data.load_matrix(src))


@pytest.mark.parametrize("content,message", [
    (b"", "only 0 bytes"),
    (b"\x1e\x3d", "only 2 bytes"),
    (b"\x12\x34\x56\x78\x00\x00\x00\x02", "unknown magic number 0x12345678"),
    (struct.pack(">2i", 0x1E3D4C51, 2) + b"\0\0\0\x02", "truncated: the header needs 20 bytes"),
    (struct.pack(">5i", 0x1E3D4C51, 0, 1, 1, 1), "ndim is 0"),
    (struct.pack(">5i", 0x1E3D4C51, 12, 1, 1, 1), "ndim is 12"),
    (struct.pack(">5i", 0x1E3D4C51, -1, 1, 1, 1), "ndim is -1"),
    (struct.pack(">5i", 0x1E3D4C51, 2, -4, 3, 1), "negative dimension"),
    (struct.pack(">5i", 0x1E3D4C51, 2, 4, 3, 2), "padding dimensions must be 1"),
    (struct.pack(">5i", 0x1E3D4C51, 3, 2**30, 2**30, 4), "truncated: expected"),
    (struct.pack(">5i", 0x1E3D4C51, 2, 10, 10, 1) + b"\0" * 100,
     "truncated: expected 400 data bytes, found 100"),
])
def test_bad_binary_files_are_refused_with_the_file_name(tmp_path, content, message):
    path = tmp_path / "bad.mat"
    path.write_bytes(content)
    with pytest.raises(SNError) as err:
        data.load_matrix(path)
    assert str(path) in str(err.value)
    assert message in str(err.value)


def test_truncated_dig_pat_is_refused(tmp_path):
    raw = data_shared("sn28", "dig.pat").read_bytes()
    path = tmp_path / "dig.pat"
    path.write_bytes(raw[:120])
    with pytest.raises(SNError, match=r"dig.pat: truncated: expected 122880 data bytes, found 100"):
        data.load_matrix(path)


def test_missing_file_and_directory_are_refused(tmp_path):
    with pytest.raises(SNError, match="nothere.mat: cannot read"):
        data.load_matrix(tmp_path / "nothere.mat")
    with pytest.raises(SNError, match="cannot read"):
        data.load_matrix(tmp_path)


# ---------------------------------------------------------------- ascii and npy


def test_ascii_matrix_with_free_layout(tmp_path):
    path = tmp_path / "a.mat"
    path.write_text(".MAT 3 2 2 1\n\n+1 -1.5\n  2e-1\n\n.5\n")
    m = data.load_matrix(path)
    assert m.shape == (2, 2)
    assert np.array_equal(m, [[1, -1.5], [0.2, 0.5]])


@pytest.mark.parametrize("text,message", [
    (".MAT", "missing ndim"),
    (".MAT x 2", "ndim is not an integer: 'x'"),
    (".MAT 0", "ndim is 0"),
    (".MAT 2 3", "missing dimension 2"),
    (".MAT 2 3 2.5 1 2", "dimension 2 is not an integer"),
    (".MAT 2 -1 2", "negative dimension"),
    (".MAT 2 2 2\n1 2 3\n", "says 2x2 = 4 values, the file has 3"),
    (".MAT 2 2 2\n1 2 3 4 5\n", "says 2x2 = 4 values, the file has 5"),
    (".MAT 1 3\n1 two 3\n", "value 2 is not a number: 'two'"),
    (".MAT 1 1\n\xe9\n", "non-ascii byte"),
])
def test_bad_ascii_files_are_refused(tmp_path, text, message):
    path = tmp_path / "bad.mat"
    path.write_bytes(text.encode("latin-1"))
    with pytest.raises(SNError) as err:
        data.load_matrix(path)
    assert f"{path}: " in str(err.value) and message in str(err.value)


def test_npy_files(tmp_path):
    np.save(tmp_path / "i.npy", np.arange(6, dtype=np.int16).reshape(2, 3, 1))
    m = data.load_matrix(tmp_path / "i.npy")
    assert m.dtype == np.float64 and m.shape == (2, 3)
    assert np.array_equal(m, [[0, 1, 2], [3, 4, 5]])
    np.save(tmp_path / "o.npy", np.array([{"a": 1}], dtype=object))
    with pytest.raises(SNError, match="o.npy: unreadable .npy file"):
        data.load_matrix(tmp_path / "o.npy")
    np.save(tmp_path / "s.npy", np.array(["ab"]))
    with pytest.raises(SNError, match="s.npy: .npy file holds"):
        data.load_matrix(tmp_path / "s.npy")
    (tmp_path / "t.npy").write_bytes((tmp_path / "i.npy").read_bytes()[:-4])
    with pytest.raises(SNError, match="t.npy: unreadable"):
        data.load_matrix(tmp_path / "t.npy")


# ---------------------------------------------------------------- save_matrix


@pytest.mark.parametrize("kind,dtype", [("float", np.float32), ("double", np.float64)])
@pytest.mark.parametrize("shape", [(7,), (3, 4), (1, 1), (2, 3, 4), (2, 3, 4, 5), (0, 3)])
def test_save_load_round_trip(tmp_path, kind, dtype, shape):
    a = np.random.default_rng(1).normal(size=shape).astype(dtype)
    path = tmp_path / "w.mat"
    data.save_matrix(path, a, kind)
    raw = path.read_bytes()
    magic = {"float": 0x1E3D4C51, "double": 0x1E3D4C53}[kind]
    header = struct.unpack_from(">2i", raw)
    assert header == (magic, len(shape))
    assert len(raw) == 8 + 4 * max(len(shape), 3) + a.size * np.dtype(dtype).itemsize
    m = data.load_matrix(path)
    assert m.shape == shape and m.dtype == np.float64
    assert np.array_equal(m, a.astype(np.float64))


@settings(max_examples=30, deadline=None)
@given(hnp.arrays(np.float64, hnp.array_shapes(min_dims=1, max_dims=4, max_side=4),
                  elements=st.floats(allow_nan=False, width=64)))
def test_save_load_round_trip_double_property(tmp_path_factory, a):
    path = tmp_path_factory.mktemp("rt") / "p.mat"
    data.save_matrix(path, a, "double")
    m = data.load_matrix(path)
    expected = a
    while expected.ndim > 2 and expected.shape[-1] == 1:
        expected = expected[..., 0]
    assert np.array_equal(m, expected)


def test_save_matrix_0d_and_errors(tmp_path):
    data.save_matrix(tmp_path / "s.mat", 2.5)
    assert np.array_equal(data.load_matrix(tmp_path / "s.mat"), [2.5])
    with pytest.raises(SNError, match="kind 'packed'"):
        data.save_matrix(tmp_path / "x.mat", [1.0], kind="packed")
    with pytest.raises(SNError, match="cannot save <U1"):
        data.save_matrix(tmp_path / "x.mat", np.array(["a"]))
    with pytest.raises(SNError, match="nodir.*x.mat: cannot write"):
        data.save_matrix(tmp_path / "nodir" / "x.mat", [1.0])
    assert data_listing(tmp_path) == ["s.mat"]


# ---------------------------------------------------------------- atomic writes


def test_atomic_write_replaces_and_keeps_permissions(tmp_path):
    path = tmp_path / "w.bin"
    data.atomic_write(path, b"one")
    mask = os.umask(0o022)
    os.umask(mask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~mask
    path.chmod(0o640)
    data.atomic_write(path, "two é")
    assert path.read_text(encoding="utf-8") == "two é"
    assert path.stat().st_mode & 0o777 == 0o640
    assert data_listing(tmp_path) == ["w.bin"]


@pytest.mark.parametrize("error", [RuntimeError, KeyboardInterrupt])
def test_atomic_open_leaves_the_old_file_when_the_writer_fails(tmp_path, error):
    path = tmp_path / "weights.wei"
    path.write_bytes(b"old weights")
    with pytest.raises(error):
        with data.atomic_open(path) as f:
            f.write(b"new wei")
            raise error("writer failed midway")
    assert path.read_bytes() == b"old weights"
    assert data_listing(tmp_path) == ["weights.wei"]


def test_atomic_write_leaves_the_old_file_when_data_is_bad(tmp_path):
    path = tmp_path / "w.bin"
    path.write_bytes(b"old")
    with pytest.raises(TypeError):
        data.atomic_write(path, 12345)
    assert path.read_bytes() == b"old"
    assert data_listing(tmp_path) == ["w.bin"]


# ---------------------------------------------------------------- resize


@pytest.mark.parametrize("in_hw,out_hw", [
    ((28, 28), (16, 16)), ((5, 7), (9, 3)), ((1, 4), (3, 2)), ((16, 16), (16, 16)),
    ((10, 10), (3, 3)),
])
def test_resize_bilinear_matches_a_pixel_by_pixel_implementation(in_hw, out_hw):
    rng = random.Random(7)
    images = [[[rng.uniform(-1, 1) for _ in range(in_hw[1])] for _ in range(in_hw[0])]
              for _ in range(4)]
    fast = data.resize_bilinear(np.array(images), *out_hw)
    assert fast.shape == (4,) + out_hw
    for img, out in zip(images, fast):
        assert np.allclose(out, data_slow_bilinear(img, *out_hw), rtol=0, atol=1e-12)


def test_resize_bilinear_identity_and_constant():
    x = np.random.default_rng(3).normal(size=(16, 16))
    assert np.allclose(data.resize_bilinear(x, 16, 16), x, atol=1e-15)
    assert np.allclose(data.resize_bilinear(np.full((28, 28), 0.3), 16, 16), 0.3)


# ---------------------------------------------------------------- usps


def test_usps_counts_values_and_targets(usps):
    assert usps.name == "usps"
    assert usps.patterns.shape == (9298, 256) and usps.patterns.dtype == np.float64
    assert usps.labels.dtype == np.int64 and usps.desired.shape == (9298, 10)
    assert usps.train == (0, 7290) and usps.test == (7291, 9297)
    assert list(np.bincount(usps.labels[:7291])) == [
        1194, 1005, 731, 658, 652, 556, 664, 645, 542, 644]
    assert list(np.bincount(usps.labels[7291:])) == [
        359, 264, 198, 166, 200, 160, 170, 147, 166, 177]
    assert usps.patterns.min() == -1 and usps.patterns.max() == 1
    assert set(np.unique(usps.desired)) == {-1.0, 1.0}
    assert np.array_equal(usps.desired.argmax(axis=1), usps.labels)
    assert np.all((usps.desired == 1).sum(axis=1) == 1)


def test_usps_rows_match_the_text_files(usps):
    for name, row in (("zip.train.gz", 0), ("zip.test.gz", 7291)):
        with gzip.open(data_shared("usps", name), "rt") as f:
            first = [float(v) for v in f.readline().split()]
        assert usps.labels[row] == int(first[0])
        assert np.array_equal(usps.patterns[row], first[1:])
    assert usps.labels[0] == 6 and usps.labels[7291] == 9


def test_usps_is_cached_and_read_only(usps):
    again = data.load_usps(download=False)
    assert data.load_usps(download=False) is again
    assert np.array_equal(again.patterns, usps.patterns)
    with pytest.raises(ValueError):
        usps.patterns[0, 0] = 5.0
    with pytest.raises(ValueError):
        usps.desired[0, 0] = 5.0
    mine = usps.copy()
    mine.patterns[0, 0] = 5.0
    assert usps.patterns[0, 0] != 5.0
    assert data.load_dataset("usps", download=False) is again


# ---------------------------------------------------------------- mnist16


def test_mnist16_shapes_values_and_targets(mnist16):
    assert mnist16.name == "mnist16"
    assert mnist16.patterns.shape == (9298, 256) and mnist16.patterns.dtype == np.float64
    assert mnist16.train == (0, 7290) and mnist16.test == (7291, 9297)
    assert mnist16.patterns.min() >= -1 and mnist16.patterns.max() <= 1
    assert mnist16.patterns.min() == -1  # background pixels stay exactly -1
    assert np.array_equal(mnist16.desired.argmax(axis=1), mnist16.labels)
    assert set(np.unique(mnist16.desired)) == {-1.0, 1.0}
    assert set(np.bincount(mnist16.labels, minlength=10) > 500) == {True}
    assert not mnist16.patterns.flags.writeable


def test_mnist16_draw_is_the_documented_one(mnist16, mnist_raw):
    rs = np.random.RandomState(1337)
    train = rs.permutation(60000)[:7291]
    test = rs.permutation(10000)[:2007]
    assert list(mnist_raw["train_labels"][train[:10]]) == MNIST16_FIRST_TRAIN_LABELS
    assert list(mnist16.labels[:10]) == MNIST16_FIRST_TRAIN_LABELS
    assert np.array_equal(mnist16.labels[:7291], mnist_raw["train_labels"][train])
    assert np.array_equal(mnist16.labels[7291:], mnist_raw["test_labels"][test])
    for row, image in ((0, mnist_raw["train_images"][train[0]]),
                       (5, mnist_raw["train_images"][train[5]]),
                       (7291, mnist_raw["test_images"][test[0]]),
                       (9297, mnist_raw["test_images"][test[-1]])):
        scaled = [[p / 127.5 - 1 for p in r] for r in image.tolist()]
        expected = np.array(data_slow_bilinear(scaled, 16, 16)).ravel()
        assert np.allclose(mnist16.patterns[row], expected, rtol=0, atol=1e-12)


@pytest.mark.parametrize("kwargs,message", [
    ({"n_train": 0}, "n_train must be an integer from 1 to 60000, not 0"),
    ({"n_train": 60001}, "n_train must be"),
    ({"n_test": 10001}, "n_test must be an integer from 1 to 10000"),
    ({"n_test": 2.5}, "n_test must be"),
    ({"n_train": True}, "n_train must be"),
])
def test_mnist16_sizes_out_of_range(data_env, kwargs, message):
    with pytest.raises(SNError, match=message):
        data.load_mnist16(download=False, **kwargs)


# ---------------------------------------------------------------- usps with mnist


def test_frame_like_usps_fills_sixteen_rows_centred_and_keeps_the_aspect():
    image = np.zeros((28, 28), np.uint8)
    image[3:13, 17:22] = 255                  # a 10 x 5 block of full ink
    image[20, 2] = 30                         # too faint to count as ink
    framed = data.frame_like_usps(image[None]).reshape(16, 16)
    assert np.array_equal(framed[:, 4:12], np.full((16, 8), 1.0))
    assert np.all(framed[:, :4] == -1) and np.all(framed[:, 12:] == -1)
    wide = np.zeros((28, 28), np.uint8)
    wide[[10, 12], 4:24] = 255                # 3 x 20: the width fills the frame, and
    framed = data.frame_like_usps(wide[None]).reshape(16, 16)   # 3 rows become 2
    assert np.all(framed[:7] == -1) and np.all(framed[9:] == -1)
    # each output row averages one and a half source rows: ink, then half a blank row
    np.testing.assert_allclose(framed[7:9], (1.0 - 0.5) / 1.5, rtol=1e-12)
    assert np.all(data.frame_like_usps(np.zeros((1, 28, 28), np.uint8)) == -1)


def test_area_weights_average_each_part_of_the_span():
    weights = data._area_weights(5, 1, 4, 2)   # [1, 4) cut into [1, 2.5) and [2.5, 4)
    np.testing.assert_allclose(weights, [[0, 2 / 3, 1 / 3, 0, 0], [0, 0, 1 / 3, 2 / 3, 0]])


def test_usps_with_mnist_digits_in_its_training_rows(usps, mnist_raw):
    mixed = data.load_usps(mnist=500, download=False)
    assert mixed.name == "usps" and mixed.train == (0, 7790) and mixed.test == (7791, 9797)
    assert np.array_equal(mixed.patterns[7791:], usps.patterns[7291:])
    assert np.array_equal(mixed.labels[7791:], usps.labels[7291:])
    chosen = np.random.RandomState(1337).permutation(60000)[:500]
    extra = data.frame_like_usps(mnist_raw["train_images"][chosen])
    order = np.random.RandomState(1337).permutation(7791)
    rows = np.concatenate([usps.patterns[:7291], extra])[order]
    labels = np.concatenate([usps.labels[:7291], mnist_raw["train_labels"][chosen]])[order]
    assert np.array_equal(mixed.patterns[:7791], rows)
    assert np.array_equal(mixed.labels[:7791], labels)
    assert np.array_equal(mixed.desired.argmax(axis=1), mixed.labels)
    # the two sources alternate: each tenth of the rows holds MNIST digits
    from_mnist = order >= 7291
    assert all(0 < part.sum() < len(part) for part in np.array_split(from_mnist, 10))


@pytest.mark.parametrize("mnist", [0.5, 60001, -3])
def test_usps_mnist_count_out_of_range(data_env, mnist):
    with pytest.raises(SNError, match="usps: mnist must be an integer from 1 to 60000"):
        data.load_usps(mnist=mnist, download=False)


@pytest.mark.parametrize("form,message", [
    ("(load-dataset 'usps :train 500)", "load-dataset: :train applies to mnist16, not usps"),
    ("(load-dataset 'mnist16 :mnist 500)", "load-dataset: :mnist applies to usps, not mnist16"),
    ("(load-dataset 'usps :extra 500)",
     r"load-dataset: unknown option :extra \(known: :train, :test, :mnist\)"),
    ("(load-dataset 'usps :mnist 'all)", "load-dataset: :mnist needs a number of patterns"),
    ("(load-dataset 'usps :mnist -3)", "load-dataset: :mnist needs a number of patterns "
                                       "from 0 to 60000, not -3"),
    ("(load-dataset 'mnist16 :train 0)", "load-dataset: :train needs a number of patterns "
                                         "from 1 to 60000, not 0"),
    ("(load-dataset 'mnist16 :test 10001)", "load-dataset: :test needs a number"),
    ("(load-dataset 'usps :mnist)", "load-dataset: options are :keyword value pairs"),
])
def test_load_dataset_form_refuses_bad_options(data_env, form, message):
    interp = Interpreter()
    with pytest.raises(SNError, match=message):
        interp.eval_text(form)
    assert interp.get("patt-max", None) is None       # nothing changed


def test_load_dataset_form_with_mnist_sets_the_ranges(usps, mnist_raw):
    interp = Interpreter(out=io.StringIO())
    interp.eval_text("(load-dataset 'usps :mnist 500)")
    assert [interp.get(v) for v in ("patt-min", "patt-max", "tpatt-min", "tpatt-max")] == \
        [0, 7790, 7791, 9797]
    assert np.array(interp.get("pattern-matrix")).shape == (9798, 256)


def test_unknown_data_set_and_file(data_env):
    with pytest.raises(SNError, match="unknown data set 'cifar'"):
        data.load_dataset("cifar")
    with pytest.raises(SNError, match="unknown data set 'cifar'"):
        data.find_data_file("cifar", "x")
    with pytest.raises(SNError, match="zip.info.txt: not a file of the usps data set"):
        data.find_data_file("usps", "zip.info.txt")


# ---------------------------------------------------------------- finding files


def test_find_in_sn_data_root_subfolder_and_cache(tmp_path, data_env, monkeypatch,
                                                  data_fake_usps):
    content = data_fake_usps["zip.test"]
    root = tmp_path / "shared"
    cache = data.data_cache_dir("usps")
    assert cache == data_env / "sn" / "usps"
    cache.mkdir(parents=True)
    (cache / "zip.test.gz").write_bytes(gzip.compress(content))
    assert data.find_data_file("usps", "zip.test.gz", download=False) == cache / "zip.test.gz"
    (root / "usps").mkdir(parents=True)
    (root / "usps" / "zip.test").write_bytes(content)  # decompressed copies are accepted
    monkeypatch.setenv("SN_DATA", str(root))
    assert data.find_data_file("usps", "zip.test.gz", download=False) == root / "usps" / "zip.test"
    (root / "zip.test.gz").write_bytes(gzip.compress(content))
    assert data.find_data_file("usps", "zip.test", download=False) == root / "zip.test.gz"
    monkeypatch.setenv("SN_DATA", str(root / "usps"))  # SN_DATA at the usps folder itself
    assert data.read_data_file("usps", "zip.test.gz", download=False) == content


def test_shared_folder_layouts(monkeypatch):
    usps_dir = data_shared("usps").parent
    for root in (usps_dir, usps_dir / "usps"):
        monkeypatch.setenv("SN_DATA", str(root))
        path = data.find_data_file("usps", "zip.test.gz", download=False)
        assert path == usps_dir / "usps" / "zip.test.gz"
    monkeypatch.setenv("SN_DATA", str(usps_dir / "mnist"))
    path = data.find_data_file("mnist", "t10k-labels-idx1-ubyte", download=False)
    assert path == usps_dir / "mnist" / "t10k-labels-idx1-ubyte.gz"


def test_missing_files_offline_are_all_named(data_env, tmp_path, monkeypatch):
    monkeypatch.setenv("SN_DATA", str(tmp_path / "empty"))
    with pytest.raises(SNError) as err:
        data.load_usps(download=False)
    message = str(err.value)
    assert "missing file(s): zip.train.gz, zip.test.gz" in message
    assert str(tmp_path / "empty") in message and "SN_DATA" in message
    assert str(data_env / "sn" / "usps") in message
    assert "https://hastie.su.domains/ElemStatLearn/datasets/zip.train.gz" in message
    assert "https://hastie.su.domains/ElemStatLearn/datasets/zip.test.gz" in message
    with pytest.raises(SNError) as err:
        data.load_mnist16(download=False)
    for name in ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
                 "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"):
        assert name in str(err.value)
    assert "https://ossci-datasets.s3.amazonaws.com/mnist/" in str(err.value)


def test_local_gz_with_wrong_checksum_is_refused(data_env, tmp_path, monkeypatch):
    (tmp_path / "usps").mkdir()
    bad = tmp_path / "usps" / "zip.test.gz"
    bad.write_bytes(gzip.compress(b"1 " + b"0 " * 256 + b"\n"))
    monkeypatch.setenv("SN_DATA", str(tmp_path))
    with pytest.raises(SNError) as err:
        data.find_data_file("usps", "zip.test.gz", download=False)
    assert f"{bad}: checksum mismatch" in str(err.value)
    assert data.CHECKSUMS["usps"]["zip.test"] in str(err.value)


@pytest.mark.parametrize("damage,message", [
    (lambda gz: gz[:len(gz) // 2], "truncated gzip file"),
    (lambda gz: gz[:40] + bytes(b ^ 0xFF for b in gz[40:60]) + gz[60:], "corrupt gzip file"),
])
def test_damaged_local_gz_is_refused(data_env, data_fake_usps, damage, message):
    cache = data.data_cache_dir("usps")
    cache.mkdir(parents=True)
    path = cache / "zip.test.gz"
    path.write_bytes(damage(gzip.compress(data_fake_usps["zip.test"])))
    with pytest.raises(SNError, match=f"{path}: {message}"):
        data.find_data_file("usps", "zip.test.gz", download=False)


def test_a_file_changed_after_its_check_is_checked_again(data_env, data_fake_usps):
    cache = data.data_cache_dir("usps")
    cache.mkdir(parents=True)
    path = cache / "zip.test"
    path.write_bytes(data_fake_usps["zip.test"])
    data.find_data_file("usps", "zip.test", download=False)
    path.write_bytes(data_fake_usps["zip.test"] + b"0\n")
    with pytest.raises(SNError, match="checksum mismatch"):
        data.find_data_file("usps", "zip.test", download=False)


def test_usps_loader_on_small_files(data_env, data_fake_usps):
    cache = data.data_cache_dir("usps")
    cache.mkdir(parents=True)
    for base, content in data_fake_usps.items():
        (cache / (base + ".gz")).write_bytes(gzip.compress(content))
    ds = data.load_usps(download=False)
    assert ds.patterns.shape == (8, 256) and ds.train == (0, 4) and ds.test == (5, 7)
    assert list(ds.labels) == [0, 1, 2, 3, 4, 0, 1, 2]


# ---------------------------------------------------------------- downloads


@pytest.fixture(scope="module")
def data_real_usps_test_gz():
    """The shared zip.test.gz bytes (module scope: read before data_env unsets SN_DATA)."""
    return data_shared("usps", "zip.test.gz").read_bytes()


def test_download_real_usps_file(data_real_usps_test_gz, data_env, data_http_server,
                                 monkeypatch):
    gz = data_real_usps_test_gz
    data_http_server.files["/ds/zip.test.gz"] = gz
    monkeypatch.setitem(data.MIRRORS, "usps", [data_http_server.url + "/ds/"])
    path = data.find_data_file("usps", "zip.test.gz")
    assert path == data_env / "sn" / "usps" / "zip.test.gz"
    assert path.read_bytes() == gz
    assert data_listing(data_env / "sn" / "usps") == ["zip.test.gz"]
    content = data.read_data_file("usps", "zip.test", download=False)
    assert hashlib.sha256(content).hexdigest() == data.CHECKSUMS["usps"]["zip.test"]
    assert data_http_server.requests == ["/ds/zip.test.gz"]


def test_download_tries_the_mirrors_in_order(data_env, data_http_server, monkeypatch,
                                             data_fake_usps):
    for base, content in data_fake_usps.items():
        data_http_server.files[f"/b/{base}.gz"] = gzip.compress(content)
    monkeypatch.setitem(data.MIRRORS, "usps",
                        [data_http_server.url + "/a", data_http_server.url + "/b/"])
    ds = data.load_usps()
    assert ds.patterns.shape == (8, 256)
    assert data_http_server.requests == ["/a/zip.train.gz", "/b/zip.train.gz",
                                         "/a/zip.test.gz", "/b/zip.test.gz"]
    assert data_listing(data_env / "sn" / "usps") == ["zip.test.gz", "zip.train.gz"]


def test_sn_data_url_replaces_the_mirrors(data_env, data_http_server, monkeypatch,
                                          data_fake_usps):
    data_http_server.files["/x/zip.test.gz"] = gzip.compress(data_fake_usps["zip.test"])
    monkeypatch.setitem(data.MIRRORS, "usps", ["http://127.0.0.1:9/never/"])
    monkeypatch.setenv("SN_DATA_URL", data_http_server.url + "/x")
    assert data.read_data_file("usps", "zip.test.gz") == data_fake_usps["zip.test"]
    assert data_http_server.requests == ["/x/zip.test.gz"]


@pytest.mark.parametrize("served,message", [
    (lambda gz: gz[:30] + bytes(b ^ 0x55 for b in gz[30:]), "corrupt gzip file"),
    (lambda gz: gzip.compress(b"0 " * 257), "checksum mismatch"),
    (lambda gz: b"<html>Not the file</html>", "checksum mismatch"),
])
def test_corrupted_download_is_refused_and_leaves_nothing(data_env, data_http_server,
                                                          monkeypatch, data_fake_usps,
                                                          served, message):
    gz = gzip.compress(data_fake_usps["zip.test"])
    data_http_server.files["/zip.test.gz"] = served(gz)
    monkeypatch.setitem(data.MIRRORS, "usps", [data_http_server.url])
    with pytest.raises(SNError) as err:
        data.find_data_file("usps", "zip.test.gz")
    assert message in str(err.value)
    assert f"{data_http_server.url}/zip.test.gz" in str(err.value)
    assert data_listing(data_env / "sn" / "usps") == []


def test_interrupted_download_leaves_no_partial_file(data_env, data_http_server,
                                                     monkeypatch, data_fake_usps):
    gz = gzip.compress(data_fake_usps["zip.test"])
    data_http_server.files["/zip.test.gz"] = gz
    data_http_server.truncate.add("/zip.test.gz")
    monkeypatch.setitem(data.MIRRORS, "usps", [data_http_server.url])
    with pytest.raises(SNError) as err:
        data.find_data_file("usps", "zip.test.gz")
    assert f"incomplete download: received {len(gz) // 2} of {len(gz)} bytes" in str(err.value)
    assert data_listing(data_env / "sn" / "usps") == []


def test_keyboard_interrupt_during_download_leaves_no_partial_file(
        data_env, data_http_server, monkeypatch, data_fake_usps):
    data_http_server.files["/zip.test.gz"] = gzip.compress(data_fake_usps["zip.test"])
    monkeypatch.setitem(data.MIRRORS, "usps", [data_http_server.url])

    def interrupted(url, out):
        out.write(b"\x1f\x8b partial")
        out.flush()
        raise KeyboardInterrupt

    monkeypatch.setattr(data, "_fetch", interrupted)
    with pytest.raises(KeyboardInterrupt):
        data.find_data_file("usps", "zip.test.gz")
    assert data_listing(data_env / "sn" / "usps") == []


def test_unreachable_mirrors_name_every_file_and_stop_early(data_env, data_http_server,
                                                            monkeypatch):
    with socket.socket() as s:  # a port with nothing listening
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}/"
    monkeypatch.setitem(data.MIRRORS, "usps", [dead, data_http_server.url + "/"])
    with pytest.raises(SNError) as err:
        data.load_usps()
    message = str(err.value)
    assert "missing file(s): zip.train.gz, zip.test.gz" in message
    assert f"{dead}zip.train.gz: cannot connect" in message
    assert f"{data_http_server.url}/zip.train.gz: HTTP error 404" in message
    assert data_http_server.requests == ["/zip.train.gz"]  # zip.test.gz not tried
    assert data_listing(data_env / "sn" / "usps") == []
