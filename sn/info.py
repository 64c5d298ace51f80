"""`sn info`: one row per layer of a network, counted the paper's way.

Units count the layers' units (inputs included) but not the bias, the
background units or the desired layer; connections include bias connections;
weights are the free parameters (a shared weight counts once).
"""

import json

import numpy as np

from .netlib import current_nlf


def summary(interp):
    """{"units", "connections", "weights", "layers": [...]} of the interpreter's network."""
    net = interp.net
    live = net.alive()
    dst, w = net.cdst[live], net.cw[live]
    default = current_nlf(interp)
    layers = []
    covered = np.zeros(net.nunits, dtype=bool)
    for layer in net.layers:
        into = (dst >= layer.lo) & (dst < layer.lo + layer.n)
        covered[layer.lo: layer.lo + layer.n] = True
        computed = bool(into.any())
        layers.append({
            "name": layer.name,
            "shape": list(layer.shape) if layer.shape else [layer.n],
            "units": layer.n,
            "connections": int(into.sum()),
            "weights": int(len(np.unique(w[into]))),
            "nlf": (layer.nlf or default).source if computed else "",
        })
    loose = ~covered[dst]
    if loose.any():
        units = np.unique(dst[loose])
        layers.append({"name": "(other units)", "shape": [len(units)], "units": len(units),
                       "connections": int(loose.sum()), "weights": int(len(np.unique(w[loose]))),
                       "nlf": default.source})
    return {
        "units": sum(l["units"] for l in layers),
        "connections": int(len(live)),
        "weights": int(len(np.unique(w))),
        "layers": layers,
    }


def as_json(info):
    keep = ("name", "shape", "units", "connections", "weights")
    return json.dumps({"units": info["units"], "connections": info["connections"],
                       "weights": info["weights"],
                       "layers": [{k: l[k] for k in keep} for l in info["layers"]]}, indent=2)


def as_table(info, title=""):
    rows = [("layer", "shape", "units", "connections", "weights", "nonlinearity")]
    for l in info["layers"]:
        rows.append((l["name"], "x".join(map(str, l["shape"])), str(l["units"]),
                     str(l["connections"]), str(l["weights"]), l["nlf"]))
    rows.append(("total", "", str(info["units"]), str(info["connections"]), str(info["weights"]), ""))
    widths = [max(len(r[i]) for r in rows) for i in range(6)]
    right = (False, False, True, True, True, False)
    lines = [title] if title else []
    for k, r in enumerate(rows):
        cells = [c.rjust(wd) if rt else c.ljust(wd) for c, wd, rt in zip(r, widths, right)]
        lines.append("  ".join(cells).rstrip())
        if k == 0 or k == len(rows) - 2:
            lines.append("  ".join("-" * wd for wd in widths))
    return "\n".join(lines)
