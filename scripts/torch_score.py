#!/usr/bin/env python3
"""Score a wgtrain run folder in PyTorch, from the weights file's metadata alone.

    pip install torch safetensors numpy
    python3 scripts/torch_score.py runs/run-001 [--data DIR_OR_TEST_CSV]

The network is rebuilt from `wgtrain.model` (the layer list in torch.nn's terms), the
weights are loaded with strict=True, the inputs are scaled as `wgtrain.input` says
(x' = (x / divide - mean) / std) and shaped as it says ([N, C, H, W] for a model that
starts with a convolution), and the test set named in `wgtrain.data` (the IDX
folder's t10k files, or the CSV test file) is scored. wgtrain is not needed.
"""
import argparse
import csv
import gzip
import json
import os
import struct

import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import load_file


def read_idx(path):
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        _, _, kind, ndim = f.read(4)
        assert kind == 0x08, f"{path}: expected unsigned bytes"
        dims = struct.unpack(">" + "I" * ndim, f.read(4 * ndim))
        return np.frombuffer(f.read(), dtype=np.uint8).reshape(dims)


def find(folder, stems):
    for stem in stems:
        for name in (stem, stem + ".gz"):
            if os.path.exists(os.path.join(folder, name)):
                return os.path.join(folder, name)
    raise SystemExit(f"{folder}: no {stems[0]}[.gz]")


def test_set(data):
    """(features as float32 [N, D] in stored units, labels [N]) of the run's test set."""
    if os.path.isdir(data):
        x = read_idx(find(data, ["t10k-images-idx3-ubyte", "test-images-idx3-ubyte"]))
        y = read_idx(find(data, ["t10k-labels-idx1-ubyte", "test-labels-idx1-ubyte"]))
        return x.reshape(len(x), -1).astype(np.float32), y.astype(np.int64)
    with open(data, newline="", encoding="utf-8-sig") as f:
        rows = [r for r in csv.reader(f) if r]
    try:
        float(rows[0][0])
    except ValueError:
        rows = rows[1:]  # a header row
    a = np.array(rows, dtype=np.float64)
    return a[:, 1:].astype(np.float32), a[:, 0].astype(np.int64)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run", help="a wgtrain run folder (or a .safetensors weights file)")
    ap.add_argument("--data", help="the IDX folder or CSV test file (default: the run's own)")
    a = ap.parse_args()
    path = os.path.join(a.run, "model.safetensors") if os.path.isdir(a.run) else a.run
    with safe_open(path, "pt") as f:
        meta = f.metadata()
    layers = json.loads(meta["wgtrain.model"])
    model = torch.nn.Sequential(*[getattr(torch.nn, l.pop("layer"))(**l) for l in [dict(l) for l in layers]])
    model.load_state_dict(load_file(path), strict=True)
    model.eval()

    spec = json.loads(meta["wgtrain.data"])
    data = a.data or (spec.get("test") or spec["data"])
    x, y = test_set(data)
    t = json.loads(meta["wgtrain.input"]) if "wgtrain.input" in meta else {"divide": 1.0, "mean": [], "std": []}
    x = x / np.float32(t["divide"])
    if t["mean"]:
        x = (x - np.array(t["mean"], dtype=np.float32)) / np.array(t["std"], dtype=np.float32)
    # Images go in as [N, C, H, W] (a model that starts with Linear takes them flat).
    shape = t.get("shape") or []
    if len(shape) == 3 and layers and layers[0]["layer"] != "Linear":
        x = x.reshape(len(x), *shape)
    with torch.no_grad():
        logits = model(torch.from_numpy(x))
        loss = torch.nn.functional.cross_entropy(logits, torch.from_numpy(y)).item()
        acc = (logits.argmax(1).numpy() == y).mean()
    print(f"{path} in PyTorch {torch.__version__}: {model}")
    print(f"{data} ({len(y)} samples): loss {loss:.4f}, accuracy {acc:.4f}")


if __name__ == "__main__":
    main()
