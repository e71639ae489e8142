#!/usr/bin/python3
"""Writes ONNX models and input batches for measuring `provnn batch` (issue 5: batch scaling).

    /usr/bin/python3 tools/make_bench_models.py OUT_DIR [N]

OUT_DIR/mlp.onnx      784-300-100-10 MLP (ReLU), He-uniform weights, zero biases
OUT_DIR/lenet5.onnx   LeNet-5 on 28×28×1 (conv6·5 pad 2, pool, conv16·5, pool, 120, 84, 10)
OUT_DIR/mlp_batch.npy, OUT_DIR/lenet5_batch.npy   N samples (default 64), U(0, 1), float64

Fixed seeds, so every run measures the same work. Not used by the tests (the models are
generated, not committed: they are benchmark inputs; the MLP is ≈ 1 MB).
Needs Debian's python3-torch and python3-numpy (/usr/bin/python3).
"""
import os
import sys

import numpy as np
import torch
from torch import nn


def he_uniform(model):
    for m in model.modules():
        if isinstance(m, (nn.Linear, nn.Conv2d)):
            nn.init.kaiming_uniform_(m.weight, nonlinearity="relu")
            nn.init.zeros_(m.bias)


def main():
    out = sys.argv[1]
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 64
    os.makedirs(out, exist_ok=True)
    torch.manual_seed(20261130)
    rng = np.random.default_rng(20261130)
    models = {
        "mlp": (nn.Sequential(nn.Flatten(), nn.Linear(784, 300), nn.ReLU(), nn.Linear(300, 100), nn.ReLU(),
                              nn.Linear(100, 10)), (1, 784)),
        "lenet5": (nn.Sequential(nn.Conv2d(1, 6, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
                                 nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                                 nn.Linear(400, 120), nn.ReLU(), nn.Linear(120, 84), nn.ReLU(),
                                 nn.Linear(84, 10)), (1, 1, 28, 28)),
    }
    for name, (model, shape) in models.items():
        he_uniform(model)
        model.eval()
        torch.onnx.export(model, torch.zeros(shape), os.path.join(out, name + ".onnx"), opset_version=13,
                          input_names=["x"], output_names=["logits"])
        np.save(os.path.join(out, name + "_batch.npy"), rng.uniform(0.0, 1.0, (n,) + shape[1:]))
        print(f"{out}/{name}.onnx, {out}/{name}_batch.npy ({n} samples)")


if __name__ == "__main__":
    main()
