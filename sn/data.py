"""Data for sn: matrix files, the usps and mnist16 data sets, and safe writes.

Nothing here knows about Lisp, networks or the interpreter; every bad input
raises `SNError` with a message that names the file and what is wrong.

Matrix files (`load_matrix`, `save_matrix`)
-------------------------------------------
SN binary (SN2.8 / TLisp / Lush "matrix files")::

    int32 magic, int32 ndim (1..11), max(ndim, 3) int32 dims, then the values

Values are row-major (last index fastest).  For ndim < 3 the missing dims are
written as 1 (an SN1 convention).  The magic gives the element type:

    0x1E3D4C51 float32      0x1E3D4C54 int32
    0x1E3D4C52 packed       0x1E3D4C55 uint8
    0x1E3D4C53 float64      0x1E3D4C56 int16
    0x1E3D4C57 int8 (Lush)

"packed" is one signed byte per value, value = byte / 16 (0x10 = +1,
0xF0 = -1).  The byte order is that of the machine that wrote the file: a
magic that reads byte-swapped means the whole file is the other endianness.
Bytes after the data are ignored (SN2.8's dig.pat and dig.des carry some).

SN ascii: a header `.MAT ndim d1 ... dn`, then prod(d) numbers separated by
white space, row-major.

NumPy `.npy` files are read with `allow_pickle=False`.

Every format loads as float64; trailing dims of size 1 beyond the second are
dropped, so dig.pat's 480x256x1 comes back as (480, 256).

Data sets (`load_usps`, `load_mnist16`)
---------------------------------------
See the two loaders.  Files are looked for in `$SN_DATA`, then in
`$SN_DATA/<usps|mnist>`, then in the cache `$XDG_CACHE_HOME/sn/<usps|mnist>`
(default `~/.cache/sn/...`); missing files are downloaded into the cache from
`MIRRORS` (or from the base URLs in `$SN_DATA_URL`, separated by white space,
which replace the mirrors).  The sha256 of every file's decompressed content
is checked against `CHECKSUMS`, whether found or downloaded.
"""

import contextlib
import dataclasses
import functools
import gzip
import hashlib
import http.client
import io
import math
import numbers
import os
import struct
import tempfile
import urllib.error
import urllib.request
import zlib
from pathlib import Path

import numpy as np

from sn.errors import SNError

# ---------------------------------------------------------------- safe writes


def _new_file_mode(path):
    """Permission bits for a file written at `path`: the old file's, or 0666 & ~umask."""
    try:
        return os.stat(path).st_mode & 0o7777
    except OSError:
        mask = os.umask(0o022)
        os.umask(mask)
        return 0o666 & ~mask


def _remove_quietly(path):
    with contextlib.suppress(OSError):
        os.remove(path)


def _fsync_dir(directory):
    # Makes the rename itself durable; not possible on every platform.
    with contextlib.suppress(OSError, AttributeError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


@contextlib.contextmanager
def atomic_open(path, mode="wb"):
    """Open a temporary file next to `path`; on success it replaces `path`.

    The temporary file is flushed and fsynced, then renamed over `path` with
    `os.replace`, so a reader sees either the old file or the whole new one.
    If the block raises (KeyboardInterrupt included) the temporary file is
    removed and `path` is left untouched.  `mode` is "wb" or "w" (UTF-8).
    """
    if mode not in ("wb", "w"):
        raise ValueError(f"atomic_open: mode must be 'wb' or 'w', not {mode!r}")
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    try:
        fd, tmp = tempfile.mkstemp(
            prefix="." + os.path.basename(path) + ".", suffix=".tmp", dir=directory)
    except OSError as e:
        raise SNError(f"{path}: cannot write: {e.strerror or e}") from None
    try:
        encoding = None if "b" in mode else "utf-8"
        with os.fdopen(fd, mode, encoding=encoding) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        _replace(tmp, path)
    except BaseException:
        _remove_quietly(tmp)
        raise
    _fsync_dir(directory)


def _replace(tmp, path):
    try:
        os.chmod(tmp, _new_file_mode(path))
        os.replace(tmp, path)
    except OSError as e:
        raise SNError(f"{path}: cannot write: {e.strerror or e}") from None


def atomic_write(path, data):
    """Write `data` (bytes, or str written as UTF-8) to `path` atomically."""
    with atomic_open(path, "w" if isinstance(data, str) else "wb") as f:
        f.write(data)


# ---------------------------------------------------------------- matrix files

_MAGICS = {  # magic -> (kind, numpy type code)
    0x1E3D4C51: ("float", "f4"),
    0x1E3D4C52: ("packed", "i1"),
    0x1E3D4C53: ("double", "f8"),
    0x1E3D4C54: ("int", "i4"),
    0x1E3D4C55: ("byte", "u1"),
    0x1E3D4C56: ("short", "i2"),
    0x1E3D4C57: ("short8", "i1"),
}
_SAVE_MAGICS = {"float": (0x1E3D4C51, ">f4"), "double": (0x1E3D4C53, ">f8")}
_ASCII_MAGIC = b".MAT"
_NPY_MAGIC = b"\x93NUMPY"
MAXDIMS = 11


def load_matrix(path):
    """Read an SN binary, SN ascii (.MAT) or .npy matrix file as a float64 array.

    The format is recognised from the file's first bytes, not its name (see
    the module docstring).  Raises SNError for an unreadable, truncated or
    malformed file.
    """
    name = os.fspath(path)
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise SNError(f"{name}: cannot read: {e.strerror or e}") from None
    if data.startswith(_NPY_MAGIC):
        array = _parse_npy(name, data)
    elif data.startswith(_ASCII_MAGIC):
        array = _parse_ascii(name, data)
    else:
        array = _parse_binary(name, data)
    return _drop_trailing_ones(array)


def _drop_trailing_ones(array):
    while array.ndim > 2 and array.shape[-1] == 1:
        array = array.reshape(array.shape[:-1])
    return array


def _parse_binary(name, data):
    if len(data) < 8:
        raise SNError(f"{name}: not a matrix file: only {len(data)} bytes")
    order, kind, code = _binary_magic(name, data)
    ndim = struct.unpack_from(order + "i", data, 4)[0]
    if not 1 <= ndim <= MAXDIMS:
        raise SNError(f"{name}: corrupted matrix file: ndim is {ndim}, "
                      f"expected 1 to {MAXDIMS}")
    nwritten = max(ndim, 3)
    start = 8 + 4 * nwritten
    if len(data) < start:
        raise SNError(f"{name}: truncated: the header needs {start} bytes, "
                      f"found {len(data)}")
    dims = struct.unpack_from(f"{order}{nwritten}i", data, 8)
    if any(d < 0 for d in dims):
        raise SNError(f"{name}: corrupted matrix file: negative dimension in {dims}")
    if any(d != 1 for d in dims[ndim:]):
        raise SNError(f"{name}: corrupted matrix file: {ndim}-d matrix with "
                      f"dimensions {dims}, the padding dimensions must be 1")
    dims = dims[:ndim]
    dtype = np.dtype(order + code)
    count = math.prod(dims)
    needed = count * dtype.itemsize
    if len(data) - start < needed:
        raise SNError(f"{name}: truncated: expected {needed} data bytes, "
                      f"found {len(data) - start}")
    values = np.frombuffer(data, dtype, count, start).astype(np.float64)
    if kind == "packed":
        values /= 16.0
    return values.reshape(dims)


def _binary_magic(name, data):
    for order in (">", "<"):
        magic = struct.unpack_from(order + "I", data)[0]
        if magic in _MAGICS:
            return (order,) + _MAGICS[magic]
    raise SNError(f"{name}: not a matrix file: unknown magic number "
                  f"0x{data[:4].hex().upper()}")


def _parse_ascii(name, data):
    try:
        text = data.decode("ascii")
    except UnicodeDecodeError as e:
        raise SNError(f"{name}: ascii matrix file with a non-ascii byte at "
                      f"offset {e.start}") from None
    tokens = text[len(_ASCII_MAGIC):].split()
    ndim = _header_int(name, tokens, 0, "ndim")
    if not 1 <= ndim <= MAXDIMS:
        raise SNError(f"{name}: .MAT header: ndim is {ndim}, expected 1 to {MAXDIMS}")
    dims = [_header_int(name, tokens, i + 1, f"dimension {i + 1}") for i in range(ndim)]
    if any(d < 0 for d in dims):
        raise SNError(f"{name}: .MAT header: negative dimension in {dims}")
    values = tokens[1 + ndim:]
    count = math.prod(dims)
    if len(values) != count:
        raise SNError(f"{name}: the .MAT header says {'x'.join(map(str, dims))} = "
                      f"{count} values, the file has {len(values)}")
    return _floats(name, values).reshape(dims)


def _header_int(name, tokens, i, what):
    if i >= len(tokens):
        raise SNError(f"{name}: .MAT header: missing {what}")
    try:
        return int(tokens[i])
    except ValueError:
        raise SNError(f"{name}: .MAT header: {what} is not an integer: "
                      f"{tokens[i]!r}") from None


def _floats(name, tokens):
    try:
        return np.array(tokens, dtype=np.float64)
    except ValueError:
        for i, token in enumerate(tokens):
            try:
                float(token)
            except ValueError:
                raise SNError(f"{name}: value {i + 1} is not a number: "
                              f"{token!r}") from None
        raise


def _parse_npy(name, data):
    try:
        array = np.load(io.BytesIO(data), allow_pickle=False)
    except Exception as e:  # np.load reports bad files with many exception types
        raise SNError(f"{name}: unreadable .npy file: {e}") from None
    if array.dtype.kind not in "biuf":
        raise SNError(f"{name}: .npy file holds {array.dtype}, not numbers")
    return np.atleast_1d(array.astype(np.float64))


def save_matrix(path, array, kind="float"):
    """Write `array` as an SN binary matrix file, atomically.

    `kind` is "float" (float32, magic 0x1E3D4C51) or "double" (float64,
    0x1E3D4C53).  The file is big-endian, the byte order of SN2.8's own
    files; `load_matrix` reads either order.  A 0-d array is saved as 1-d.
    """
    name = os.fspath(path)
    if kind not in _SAVE_MAGICS:
        raise SNError(f"{name}: cannot save a matrix of kind {kind!r}: "
                      f"use 'float' or 'double'")
    magic, dtype = _SAVE_MAGICS[kind]
    a = np.atleast_1d(np.asarray(array))
    if a.dtype.kind not in "biuf":
        raise SNError(f"{name}: cannot save {a.dtype} values as a matrix")
    if a.ndim > MAXDIMS:
        raise SNError(f"{name}: cannot save a {a.ndim}-d matrix (at most {MAXDIMS})")
    dims = list(a.shape) + [1] * (3 - a.ndim)
    if max(dims) > 0x7FFFFFFF:
        raise SNError(f"{name}: matrix dimension too large for the file format")
    header = struct.pack(f">{2 + len(dims)}i", magic, a.ndim, *dims)
    atomic_write(path, header + a.astype(dtype).tobytes())


# ---------------------------------------------------------------- data files

MIRRORS = {
    "usps": ["https://hastie.su.domains/ElemStatLearn/datasets/",
             "https://web.stanford.edu/~hastie/ElemStatLearn/datasets/"],
    "mnist": ["https://ossci-datasets.s3.amazonaws.com/mnist/",
              "https://storage.googleapis.com/cvdf-datasets/mnist/",
              "http://yann.lecun.com/exdb/mnist/"],
}

# sha256 of the DECOMPRESSED files.  The usps values were computed from the
# .gz files whose own sha256 is 66ebf231... (zip.train.gz) and 8dacc3c6...
# (zip.test.gz), as published with The Elements of Statistical Learning.
CHECKSUMS = {
    "usps": {
        "zip.train": "abc9f5c75b997cabe66b5d01727d5a681c69298e1641a8d37b55433a52129dc0",
        "zip.test": "6bde17b4f1cd68e0630cd2751d6495b5795d9165ab2dc4a0be8b7002b732f4cc",
    },
    "mnist": {
        "train-images-idx3-ubyte":
            "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
        "train-labels-idx1-ubyte":
            "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
        "t10k-images-idx3-ubyte":
            "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
        "t10k-labels-idx1-ubyte":
            "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
    },
}

TIMEOUT = 30  # seconds, for each network operation of a download
_GZIP_MAGIC = b"\x1f\x8b"
_DATASET_DIRS = {"usps": "usps", "mnist": "mnist", "mnist16": "mnist"}
_verified = {}  # (path, size, mtime_ns) -> sha256 of the decompressed content


def data_cache_dir(dataset):
    """The user cache folder of a data set: $XDG_CACHE_HOME/sn/<usps|mnist>."""
    root = os.environ.get("XDG_CACHE_HOME") or os.path.join(
        os.path.expanduser("~"), ".cache")
    return Path(root) / "sn" / _subdir(dataset)


def _subdir(dataset):
    if dataset not in _DATASET_DIRS:
        raise SNError(f"unknown data set {dataset!r}: known are usps, mnist16")
    return _DATASET_DIRS[dataset]


def _base_name(dataset, filename):
    """The decompressed file name that `filename` (with or without .gz) stands for."""
    sub = _subdir(dataset)
    base = filename[:-3] if filename.endswith(".gz") else filename
    if base not in CHECKSUMS[sub]:
        known = ", ".join(n + ".gz" for n in CHECKSUMS[sub])
        raise SNError(f"{filename}: not a file of the {dataset} data set ({known})")
    return base


def _search_dirs(dataset):
    sub = _subdir(dataset)
    dirs = []
    root = os.environ.get("SN_DATA")
    if root:
        dirs += [Path(root), Path(root) / sub]
    return dirs + [data_cache_dir(dataset)]


def _locate(dataset, base):
    for directory in _search_dirs(dataset):
        for name in (base, base + ".gz"):
            if (directory / name).is_file():
                return directory / name
    return None


def _urls(dataset, base):
    bases = os.environ.get("SN_DATA_URL", "").split() or MIRRORS[_subdir(dataset)]
    return [b.rstrip("/") + "/" + base + ".gz" for b in bases]


def _file_key(path):
    st = os.stat(path)
    return (os.path.abspath(path), st.st_size, st.st_mtime_ns)


def _decompress(name, data):
    if not data.startswith(_GZIP_MAGIC):
        return data
    try:
        return gzip.decompress(data)
    except EOFError:
        raise SNError(f"{name}: truncated gzip file") from None
    except (OSError, zlib.error) as e:
        raise SNError(f"{name}: corrupt gzip file: {e}") from None


def _checksum_error(dataset, base, content):
    """None if content is the right file, else what is wrong with it."""
    digest = hashlib.sha256(content).hexdigest()
    want = CHECKSUMS[_subdir(dataset)][base]
    if digest == want:
        return None
    return (f"checksum mismatch: the decompressed content has sha256 {digest}, "
            f"the {dataset} file {base} has {want}")


def _read_verified(dataset, base, path):
    """The decompressed content of `path`, its checksum checked (once per version)."""
    name = os.fspath(path)
    try:
        key = _file_key(path)
        with open(path, "rb") as f:
            content = _decompress(name, f.read())
    except OSError as e:
        raise SNError(f"{name}: cannot read: {e.strerror or e}") from None
    want = CHECKSUMS[_subdir(dataset)][base]
    if _verified.get(key) != want:
        problem = _checksum_error(dataset, base, content)
        if problem:
            raise SNError(f"{name}: {problem}; the file is corrupt or not the right "
                          f"one. Delete it, or replace it with a good copy from "
                          f"{_urls(dataset, base)[0]}")
        _verified[key] = want
    return content


def find_data_file(dataset, filename, download=True):
    """The path of a verified copy of a data-set file, downloading it if needed.

    `dataset` is "usps" or "mnist" ("mnist16" also works); `filename` is
    one of its files, with or without ".gz" (e.g. "zip.train.gz",
    "train-images-idx3-ubyte").  A file found locally may be compressed or
    not.  Raises SNError if the file is missing (and cannot be downloaded) or
    if its decompressed content fails the checksum.
    """
    base = _base_name(dataset, filename)
    path = _require(dataset, [base], download)[0]
    _read_verified(dataset, base, path)
    return path


def read_data_file(dataset, filename, download=True):
    """The decompressed, checksum-verified content (bytes) of a data-set file."""
    base = _base_name(dataset, filename)
    path = _require(dataset, [base], download)[0]
    return _read_verified(dataset, base, path)


def _require(dataset, bases, download):
    """Paths of the files `bases`, downloading the missing ones if allowed.

    After a failed download the remaining files are not tried (the network is
    most likely down); the error names every missing file.
    """
    paths, missing, failures = [], [], []
    for base in bases:
        path = _locate(dataset, base)
        if path is None and download and not failures:
            try:
                path = _download(dataset, base)
            except _DownloadFailed as e:
                failures += e.args[0]
        if path is None:
            missing.append(base)
        paths.append(path)
    if missing:
        raise SNError(_missing_message(dataset, missing, failures, download))
    return paths


def _missing_message(dataset, missing, failures, download):
    sub = _subdir(dataset)
    root = os.environ.get("SN_DATA")
    lines = [f"{dataset} data: missing file(s): "
             + ", ".join(b + ".gz" for b in missing) + ".",
             "Put them in the folder named by SN_DATA "
             + (f"(now {root}) or its {sub}/ subfolder" if root else "(now unset)")
             + f", or in the cache folder {data_cache_dir(dataset)}.",
             "Fetch them from:"]
    lines += ["  " + _urls(dataset, b)[0] for b in missing]
    if failures:
        lines.append("The download failed:")
        lines += ["  " + f for f in failures]
    elif not download:
        lines.append("(Downloading was not allowed.)")
    return "\n".join(lines)


# ---------------------------------------------------------------- downloads


class _DownloadFailed(Exception):
    """args[0]: one line per URL tried."""


def _download(dataset, base):
    """Fetch base.gz from the mirrors into the cache; the path of the new file."""
    cache = data_cache_dir(dataset)
    try:
        cache.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise _DownloadFailed([f"cannot create the cache folder {cache}: "
                               f"{e.strerror or e}"]) from None
    errors = []
    for url in _urls(dataset, base):
        try:
            return _download_one(dataset, base, url, cache / (base + ".gz"))
        except (OSError, ValueError, http.client.HTTPException, SNError) as e:
            errors.append(f"{url}: {_describe(e)}")
    raise _DownloadFailed(errors)


def _describe(error):
    if isinstance(error, urllib.error.HTTPError):
        return f"HTTP error {error.code} {error.reason}"
    if isinstance(error, urllib.error.URLError):
        return f"cannot connect: {error.reason}"
    return str(error) or type(error).__name__


def _download_one(dataset, base, url, dest):
    """Download url to a temporary file next to dest, verify it, rename it to dest.

    The temporary file is removed on any failure, KeyboardInterrupt included.
    """
    fd, tmp = tempfile.mkstemp(prefix="." + dest.name + ".", suffix=".part",
                               dir=dest.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            data = _fetch(url, f)
            f.flush()
            os.fsync(f.fileno())
        problem = _checksum_error(dataset, base, _decompress("downloaded file", data))
        if problem:
            raise SNError(problem)
        os.chmod(tmp, _new_file_mode(dest))
        os.replace(tmp, dest)
    except BaseException:
        _remove_quietly(tmp)
        raise
    _verified[_file_key(dest)] = CHECKSUMS[_subdir(dataset)][base]
    return dest


def _fetch(url, out):
    """Copy the body of url to the file `out`; the body's bytes.

    urllib does not notice a connection closed before Content-Length bytes
    arrived, so the length is checked here.
    """
    request = urllib.request.Request(url, headers={"User-Agent": "sn-data-loader"})
    chunks = []
    with urllib.request.urlopen(request, timeout=TIMEOUT) as response:
        expected = response.headers.get("Content-Length")
        while chunk := response.read(1 << 16):
            out.write(chunk)
            chunks.append(chunk)
    data = b"".join(chunks)
    if expected is not None and expected.isdigit() and len(data) != int(expected):
        raise SNError(f"incomplete download: received {len(data)} of "
                      f"{expected} bytes")
    return data


# ---------------------------------------------------------------- data sets


@dataclasses.dataclass(frozen=True, eq=False)
class Dataset:
    """A data set ready for SN: one pattern per row, train rows then test rows.

    `patterns` float64 (N, 256) in [-1, 1]; `labels` int64 (N,); `desired`
    float64 (N, 10), +1 at the label and -1 elsewhere; `train` and `test`
    inclusive (first, last) row ranges.  The arrays are read-only (they are
    shared with the loaders' cache): `copy()` gives writable ones.
    """
    name: str
    patterns: np.ndarray
    labels: np.ndarray
    desired: np.ndarray
    train: tuple
    test: tuple

    def copy(self):
        return dataclasses.replace(self, patterns=self.patterns.copy(),
                                   labels=self.labels.copy(),
                                   desired=self.desired.copy())


def _make_dataset(name, patterns, labels, n_train):
    labels = np.asarray(labels, dtype=np.int64)
    desired = np.full((len(labels), 10), -1.0)
    desired[np.arange(len(labels)), labels] = 1.0
    for a in (patterns, labels, desired):
        a.setflags(write=False)
    return Dataset(name, patterns, labels, desired,
                   (0, n_train - 1), (n_train, len(labels) - 1))


def load_dataset(name, **options):
    """Load a known data set by name: "usps" or "mnist16" (options go to its loader)."""
    loaders = {"usps": load_usps, "mnist16": load_mnist16}
    if name not in loaders:
        raise SNError(f"unknown data set {name!r}: known are usps, mnist16")
    return loaders[name](**options)


def load_usps(mnist=0, download=True):
    """The USPS zip-code digits: 7291 training then 2007 test patterns.

    Reads zip.train(.gz) and zip.test(.gz), as published with The Elements of
    Statistical Learning: one row per digit, the label then 256 grey values in
    [-1, 1] (16x16, row-major).  Parsed data are cached per process.

    With mnist=n (1..60000), n MNIST training digits framed as USPS's
    (`frame_like_usps`) join the training patterns: the MNIST training images
    `RandomState(1337).permutation(60000)[:n]`, then the 7291 + n training rows
    in the order of `RandomState(1337).permutation(7291 + n)`, so that the two
    sources alternate when presented in sequence.  The test rows stay USPS's.
    """
    if mnist:
        _check_count("usps", "mnist", mnist, 60000)
    paths = _require("usps", ["zip.train", "zip.test"], download)
    usps_keys = tuple(_file_key(p) for p in paths)
    if not mnist:
        return _usps(*usps_keys)
    names = ["train-images-idx3-ubyte", "train-labels-idx1-ubyte"]
    mnist_keys = tuple(_file_key(p) for p in _require("mnist", names, download))
    return _usps_mnist(usps_keys, mnist_keys, int(mnist))


@functools.lru_cache(maxsize=2)
def _usps_mnist(usps_keys, mnist_keys, n):
    usps = _usps(*usps_keys)
    images, digits = _read_mnist(mnist_keys, 60000)
    chosen = np.random.RandomState(MNIST_SEED).permutation(60000)[:n]
    n_usps = usps.train[1] + 1
    order = np.random.RandomState(MNIST_SEED).permutation(n_usps + n)
    patterns = np.concatenate([usps.patterns[:n_usps], frame_like_usps(images[chosen])])
    labels = np.concatenate([usps.labels[:n_usps], digits[chosen]])
    return _make_dataset("usps", np.concatenate([patterns[order], usps.patterns[n_usps:]]),
                         np.concatenate([labels[order], usps.labels[n_usps:]]), n_usps + n)


@functools.lru_cache(maxsize=2)
def _usps(train_key, test_key):
    parts = [_parse_usps(key[0], _read_verified("usps", base, key[0]))
             for key, base in ((train_key, "zip.train"), (test_key, "zip.test"))]
    patterns = np.concatenate([p for p, _ in parts])
    labels = np.concatenate([l for _, l in parts])
    return _make_dataset("usps", patterns, labels, len(parts[0][1]))


def _parse_usps(name, content):
    try:
        table = np.loadtxt(io.BytesIO(content), dtype=np.float64,
                           comments=None, ndmin=2)
    except ValueError as e:
        raise SNError(f"{name}: not a USPS table: {e}") from None
    if table.shape[1] != 257:
        raise SNError(f"{name}: expected 257 numbers per row (label, 256 pixels), "
                      f"found {table.shape[1]}")
    labels = table[:, 0]
    if not np.all(np.isin(labels, np.arange(10))):
        raise SNError(f"{name}: a label is not an integer from 0 to 9")
    return np.ascontiguousarray(table[:, 1:]), labels.astype(np.int64)


MNIST_SEED = 1337


def load_mnist16(n_train=7291, n_test=2007, download=True):
    """MNIST at 16x16 in [-1, 1]: n_train training then n_test test patterns.

    The protocol of the 2022 PyTorch reproduction of LeCun et al. 1989, made
    independent of Python's hash seed:

    - `rs = numpy.random.RandomState(1337)`; the training rows are MNIST
      training images `rs.permutation(60000)[:n_train]`, then, with the same
      `rs`, the test rows are MNIST test images `rs.permutation(10000)[:n_test]`,
      in that order;
    - pixels p in 0..255 become p / 127.5 - 1;
    - 28x28 -> 16x16 by `resize_bilinear` (PyTorch's bilinear interpolation).

    n_train may be 1..60000 and n_test 1..10000.  Cached per process.
    """
    _check_count("mnist16", "n_train", n_train, 60000)
    _check_count("mnist16", "n_test", n_test, 10000)
    names = ["train-images-idx3-ubyte", "train-labels-idx1-ubyte",
             "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"]
    paths = _require("mnist", names, download)
    return _mnist16(tuple(_file_key(p) for p in paths), int(n_train), int(n_test))


def _check_count(dataset, what, n, most):
    if isinstance(n, bool) or not isinstance(n, numbers.Integral) or not 1 <= n <= most:
        raise SNError(f"{dataset}: {what} must be an integer from 1 to {most}, "
                      f"not {n!r}")


@functools.lru_cache(maxsize=2)
def _mnist16(keys, n_train, n_test):
    rs = np.random.RandomState(MNIST_SEED)
    patterns, labels = [], []
    for pair, count, n in ((keys[0:2], 60000, n_train), (keys[2:4], 10000, n_test)):
        images, digits = _read_mnist(pair, count)
        chosen = rs.permutation(count)[:n]
        patterns.append(_mnist_patterns(images[chosen]))
        labels.append(digits[chosen])
    return _make_dataset("mnist16", np.concatenate(patterns),
                         np.concatenate(labels), n_train)


def _read_mnist(keys, count):
    """The images and labels of one MNIST split (the file keys of its two idx files)."""
    images = _read_idx(keys[0][0], 3)
    digits = _read_idx(keys[1][0], 1)
    if len(images) != count or len(digits) != count:
        raise SNError(f"{keys[0][0]}: expected {count} MNIST images and labels")
    return images, digits


def _read_idx(path, ndim):
    """An idx file of unsigned bytes (MNIST's format) as a uint8 array."""
    name = os.path.basename(path)
    base = name[:-3] if name.endswith(".gz") else name
    content = _read_verified("mnist", base, path)
    start = 4 + 4 * ndim
    if len(content) < start or content[:4] != bytes([0, 0, 8, ndim]):
        raise SNError(f"{path}: not an idx file of {ndim}-d unsigned bytes")
    dims = struct.unpack_from(f">{ndim}I", content, 4)
    if len(content) != start + math.prod(dims):
        raise SNError(f"{path}: idx file size does not match its dimensions {dims}")
    return np.frombuffer(content, np.uint8, offset=start).reshape(dims)


def _mnist_patterns(images, chunk=8192):
    out = np.empty((len(images), 256))
    for i in range(0, len(images), chunk):
        x = images[i:i + chunk].astype(np.float64) / 127.5 - 1.0
        out[i:i + chunk] = resize_bilinear(x, 16, 16).reshape(-1, 256)
    return out


def frame_like_usps(images, side=16):
    """MNIST digits (k, 28, 28) of grey values 0..255 framed as the USPS digits
    are, as (k, side * side) patterns in [-1, 1]: each digit's bounding box (the
    pixels above 38, 15% of full ink) is scaled, keeping its aspect, until its
    longer side fills `side` pixels, and centred; an output pixel is the
    average of the source area it covers. A blank image stays background."""
    out = np.full((len(images), side, side), -1.0)
    for k, image in enumerate(images):
        ink = image > 38
        rows, cols = np.flatnonzero(ink.any(1)), np.flatnonzero(ink.any(0))
        if len(rows) == 0:
            continue
        r0, r1, c0, c1 = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1
        scale = side / max(r1 - r0, c1 - c0)
        h, w = max(1, round((r1 - r0) * scale)), max(1, round((c1 - c0) * scale))
        y, x = (side - h) // 2, (side - w) // 2
        grey = image.astype(np.float64) / 127.5 - 1.0
        out[k, y:y + h, x:x + w] = (_area_weights(image.shape[0], r0, r1, h) @ grey
                                    @ _area_weights(image.shape[1], c0, c1, w).T)
    return out.reshape(len(images), side * side)


@functools.lru_cache(maxsize=None)
def _area_weights(n_in, lo, hi, n_out):
    """(n_out, n_in): row o averages the o-th of n_out equal parts of [lo, hi)."""
    edges = lo + (hi - lo) * np.arange(n_out + 1) / n_out
    left = np.arange(n_in)
    overlap = np.clip(np.minimum(edges[1:, None], left + 1)
                      - np.maximum(edges[:-1, None], left), 0.0, None)
    weights = overlap / overlap.sum(axis=1, keepdims=True)
    weights.setflags(write=False)
    return weights


def resize_bilinear(images, out_h, out_w):
    """Resize images (..., H, W) to (..., out_h, out_w) by bilinear interpolation.

    The semantics of PyTorch's `F.interpolate(x, (out_h, out_w),
    mode="bilinear", align_corners=False, antialias=False)`: along each axis,
    output index d reads the source coordinate

        s = max((d + 0.5) * in / out - 0.5, 0)

    between the pixels i0 = floor(s) and i1 = min(i0 + 1, in - 1), with
    weights 1 - (s - i0) and s - i0.  No antialiasing: when shrinking, pixels
    between two source coordinates are skipped.  The two axes are separable,
    so the result is A_h @ image @ A_w.T with A the (out, in) weight matrices.
    Computed in float64 (PyTorch computes float32 images in float32; the
    results differ by rounding only).
    """
    x = np.asarray(images, dtype=np.float64)
    rows = _bilinear_weights(x.shape[-2], out_h)
    cols = _bilinear_weights(x.shape[-1], out_w)
    return rows @ x @ cols.T


def _bilinear_weights(n_in, n_out):
    s = np.maximum((np.arange(n_out) + 0.5) * (n_in / n_out) - 0.5, 0.0)
    i0 = s.astype(np.int64)
    i1 = np.minimum(i0 + 1, n_in - 1)
    frac = s - i0
    weights = np.zeros((n_out, n_in))
    np.add.at(weights, (np.arange(n_out), i0), 1.0 - frac)
    np.add.at(weights, (np.arange(n_out), i1), frac)
    return weights
