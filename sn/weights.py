"""Weights on disk: save-net / load-net and SN2.8's ascii .WEI form.

Binary format (little-endian), version 1:

    8 bytes   magic b"SNWEIGHT"
    uint32    format version (1)
    uint32    units, uint32 connections, uint32 weights  (the network's shape)
    int64     age
    32 bytes  sha256 of the structure: (from, to, weight) of every connection
    float64   weights[weights]

Loading checks the shape and the structure before changing anything: a file of
another network, of another format or cut short is refused with a message.

Ascii form (SN2.8's save-ascii-net): a line `.WEI units age`, then one line
`from to value` per connection. merge-net reads it into existing connections.
Every file is written atomically.
"""

import hashlib
import struct

import numpy as np

from .data import atomic_write
from .datum import to_string
from .errors import SNError
from .netlib import units_of
from .registry import builtin

MAGIC = b"SNWEIGHT"
VERSION = 1
HEADER = struct.Struct("<8sIIIIq32s")


def structure(net):
    """The live connections as (from, to, weight) rows, in creation order."""
    live = net.alive()
    return np.stack([net.csrc[live], net.cdst[live], net.cw[live]], axis=1).astype(np.int64)


def structure_hash(net):
    return hashlib.sha256(np.ascontiguousarray(structure(net)).tobytes()).digest()


def save_net(net, path, age):
    header = HEADER.pack(MAGIC, VERSION, net.nunits, len(net.alive()), net.nweights, int(age),
                         structure_hash(net))
    weights = np.ascontiguousarray(net.w[: net.nweights], dtype="<f8")
    atomic_write(path, header + weights.tobytes())


def read_net(net, path, data=None):
    """The weights and age stored in `path` (its bytes `data` when already
    read), checked against `net`."""
    if data is None:
        data = _read(path, "load-net")
    if not data.startswith(MAGIC):
        raise SNError(f"load-net: {path} is not a weight file of sn "
                      "(for SN2.8's ascii .WEI files use merge-net)")
    if len(data) < HEADER.size:
        raise SNError(f"load-net: {path} is truncated (its header is incomplete)")
    _, version, units, conns, nweights, age, digest = HEADER.unpack_from(data)
    if version != VERSION:
        raise SNError(f"load-net: {path} has format version {version}; this sn reads version {VERSION}")
    here = (net.nunits, len(net.alive()), net.nweights)
    if (units, conns, nweights) != here:
        raise SNError(f"load-net: {path} holds a network of {units} units, {conns} connections "
                      f"and {nweights} weights; this one has {here[0]}, {here[1]} and {here[2]}")
    if digest != structure_hash(net):
        raise SNError(f"load-net: {path} holds a network of the same size but other "
                      "connections or sharing")
    expected = HEADER.size + 8 * nweights
    if len(data) != expected:
        raise SNError(f"load-net: {path} is truncated or has trailing bytes: "
                      f"{len(data)} bytes, expected {expected}")
    weights = np.frombuffer(data, dtype="<f8", offset=HEADER.size, count=nweights)
    if not np.all(np.isfinite(weights)):
        raise SNError(f"load-net: {path} holds weights that are NaN or infinite")
    return weights, age


def _read(path, fn):
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as err:
        raise SNError(f"{fn}: cannot read {path}: {err.strerror or err}") from None


def save_ascii_net(net, path, age):
    live = net.alive()
    lines = [f".WEI {net.nunits - 1} {int(age)}\n"]
    values = net.w[net.cw[live]]
    for a, b, v in zip(net.csrc[live].tolist(), net.cdst[live].tolist(), values.tolist()):
        lines.append(f"{a:4d} {b:4d} {v:10.7f}\n")
    atomic_write(path, "".join(lines))


def read_ascii_net(net, path, mapping):
    """(connection, value) pairs of a .WEI file, checked against `net`; file
    unit k is unit mapping[k] of the network."""
    text = _read(path, "merge-net").decode("ascii", errors="replace")
    lines = text.splitlines()
    head = lines[0].split() if lines else []
    if len(head) != 3 or head[0] != ".WEI":
        raise SNError(f"merge-net: {path} does not start with a '.WEI units age' line")
    try:
        age = int(head[2])
    except ValueError:
        raise SNError(f"merge-net: {path}:1: the age {head[2]!r} is not a number") from None
    conns, values = [], []
    for number, line in enumerate(lines[1:], start=2):
        fields = line.split()
        if not fields:
            continue
        try:
            a, b, v = int(fields[0]), int(fields[1]), float(fields[2])
            if len(fields) != 3:
                raise ValueError
        except (ValueError, IndexError):
            raise SNError(f"merge-net: {path}:{number}: expected 'from to value', "
                          f"found {line.strip()!r}") from None
        if not (0 <= a < len(mapping) and 0 <= b < len(mapping)):
            raise SNError(f"merge-net: {path}:{number}: unit {a if not 0 <= a < len(mapping) else b} "
                          f"is not in the network ({len(mapping)} units are mapped)")
        c = net.find(int(mapping[a]), int(mapping[b]))
        if c is None:
            raise SNError(f"merge-net: {path}:{number}: there is no connection "
                          f"{mapping[a]} -> {mapping[b]}: create the connections first")
        conns.append(c)
        values.append(v)
    return np.array(conns, dtype=np.int64), np.array(values), age


def _file_arg(name, fn):
    if not isinstance(name, str):
        raise SNError(f"{fn}: the file name must be a string, not {to_string(name)}")
    return name


@builtin("save-net", interp=True)
def save_net_(interp, name):
    """(save-net "f"): the weights in sn's binary format."""
    save_net(interp.net, interp.resolve(_file_arg(name, "save-net")), interp.get("age"))
    return name


@builtin("load-net", interp=True)
def load_net_(interp, name):
    """(load-net "f"): weights saved by save-net (or an ascii .WEI file) into
    this network; a file of another network changes nothing."""
    path = interp.resolve(_file_arg(name, "load-net"))
    data = _read(path, "load-net")
    if data.startswith(b".WEI"):
        return merge_net_(interp, name)
    weights, age = read_net(interp.net, path, data)
    net = interp.net
    net.w[: net.nweights] = weights
    net.delta[: net.nweights] = 0.0
    net.weights_version += 1
    interp.set("age", age)
    return name


@builtin("save-ascii-net", interp=True)
def save_ascii_net_(interp, name):
    """(save-ascii-net "f"): SN2.8's .WEI text form, one 'from to value' line per connection."""
    save_ascii_net(interp.net, interp.resolve(_file_arg(name, "save-ascii-net")), interp.get("age"))
    return name


@builtin("merge-net", interp=True)
def merge_net_(interp, name, *layers):
    """(merge-net "f" [l ...]): values of a .WEI file into existing connections.
    With layers, file unit k (from 1) is the k-th unit of the layers, in order."""
    net = interp.net
    path = interp.resolve(_file_arg(name, "merge-net"))
    if layers:
        units = np.concatenate([units_of(layer, "merge-net", net) for layer in layers])
        mapping = np.concatenate([[0], units])
    else:
        mapping = np.arange(net.nunits)
    conns, values, age = read_ascii_net(net, path, mapping)
    net.w[net.cw[conns]] = values
    net.weights_version += 1
    interp.set("age", age)
    return name

