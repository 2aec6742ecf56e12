#!/usr/bin/env python3
"""Train and export the ONNX fixtures of crates/coinfer-onnx/tests/fixtures.

Three small Fashion-MNIST classifiers a user could bring from PyTorch: a plain conv-pool
stack, a residual network with a projection shortcut, and a MobileNetV2-style network
(depthwise-separable block, inverted residuals, a MatMul+Add head). Each is trained briefly on
coinfer's embedded 6,000-image training subset, exported with torch.onnx at a different opset,
tagged with its input normalisation (metadata key `coinfer:normalization`), and run by ONNX
Runtime on coinfer's embedded 1,000-image test subset. `expected.json` records ONNX Runtime's
logits on the first images and its test accuracy; the Rust tests must reproduce both.

Also writes `unsupported_sigmoid.onnx`, a model with an operator coinfer refuses.

    pip install torch onnx onnxruntime
    python3 tools/onnx/export_fixtures.py          # writes crates/coinfer-onnx/tests/fixtures/
"""

import gzip
import json
import os
import struct
import sys

import numpy as np
import onnx
import onnxruntime as ort
import torch
import torch.nn as nn
import torch.nn.functional as F

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ASSETS = os.path.join(ROOT, "crates", "coinfer-data", "assets", "fashion-mnist-subset")
OUT = os.path.join(ROOT, "crates", "coinfer-onnx", "tests", "fixtures")
MEAN, STD = 0.2860, 0.3530  # coinfer_data::Normalization::fashion_mnist()
FIRST = 16  # images whose logits are recorded


def read_idx(name):
    with gzip.open(os.path.join(ASSETS, name), "rb") as f:
        data = f.read()
    magic = struct.unpack(">I", data[:4])[0]
    dims = magic & 0xFF
    shape = struct.unpack(">" + "I" * dims, data[4 : 4 + 4 * dims])
    return np.frombuffer(data[4 + 4 * dims :], dtype=np.uint8).reshape(shape)


def normalise(images):
    # The same arithmetic, in f32, as coinfer-data's lookup table: (p / 255 - mean) / std.
    x = images.astype(np.float32) / np.float32(255.0)
    x = (x - np.float32(MEAN)) / np.float32(STD)
    return x[:, None, :, :].astype(np.float32)


def conv_bn(i, o, k, s, groups=1):
    return [nn.Conv2d(i, o, k, s, k // 2, groups=groups, bias=False), nn.BatchNorm2d(o)]


class Plain(nn.Module):
    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(
            *conv_bn(1, 8, 3, 1), nn.ReLU(), nn.MaxPool2d(2, 2),
            *conv_bn(8, 16, 3, 1), nn.ReLU(), nn.MaxPool2d(2, 2),
            *conv_bn(16, 16, 3, 1), nn.ReLU(), nn.AvgPool2d(3, 2, 1),
        )
        self.fc1 = nn.Linear(16 * 4 * 4, 32)
        self.fc2 = nn.Linear(32, 10)

    def forward(self, x):
        x = torch.flatten(self.features(x), 1)
        return self.fc2(F.relu(self.fc1(x)))


class Basic(nn.Module):
    def __init__(self, i, o, s):
        super().__init__()
        self.c1, self.b1 = conv_bn(i, o, 3, s)
        self.c2, self.b2 = conv_bn(o, o, 3, 1)
        self.short = nn.Sequential(*conv_bn(i, o, 1, s)) if s != 1 or i != o else None

    def forward(self, x):
        y = F.relu(self.b1(self.c1(x)))
        y = self.b2(self.c2(y))
        return F.relu(y + (self.short(x) if self.short is not None else x))


class Residual(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(*conv_bn(1, 8, 3, 2), nn.ReLU())
        self.b1 = Basic(8, 8, 1)
        self.b2 = Basic(8, 16, 2)
        self.fc = nn.Linear(16, 10)

    def forward(self, x):
        x = self.b2(self.b1(self.stem(x)))
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


class InvertedResidual(nn.Module):
    def __init__(self, i, e, o, s):
        super().__init__()
        self.body = nn.Sequential(
            *conv_bn(i, e, 1, 1), nn.ReLU6(),
            *conv_bn(e, e, 3, s, groups=e), nn.ReLU6(),
            *conv_bn(e, o, 1, 1),
        )
        self.residual = s == 1 and i == o

    def forward(self, x):
        y = self.body(x)
        return x + y if self.residual else y


class Mobile(nn.Module):
    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(
            *conv_bn(1, 8, 3, 2), nn.ReLU(),
            *conv_bn(8, 8, 3, 2, groups=8), nn.ReLU6(), *conv_bn(8, 16, 1, 1), nn.ReLU(),
            InvertedResidual(16, 48, 16, 1),
            InvertedResidual(16, 48, 24, 2),
            nn.AdaptiveAvgPool2d(1),
        )
        self.weight = nn.Parameter(torch.randn(24, 10) * 0.2)
        self.bias = nn.Parameter(torch.zeros(10))

    def forward(self, x):
        x = self.features(x).reshape(-1, 24)
        return x @ self.weight + self.bias  # exported as MatMul + Add


class Unsupported(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3, 1, 1)
        self.fc = nn.Linear(4 * 28 * 28, 10)

    def forward(self, x):
        return self.fc(torch.flatten(torch.sigmoid(self.conv(x)), 1))


def train(model, x, y, epochs, seed):
    torch.manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    xs, ys = torch.from_numpy(x), torch.from_numpy(y.astype(np.int64))
    for epoch in range(epochs):
        model.train()
        perm = torch.randperm(len(xs))
        for start in range(0, len(xs), 64):
            idx = perm[start : start + 64]
            opt.zero_grad()
            loss = F.cross_entropy(model(xs[idx]), ys[idx])
            loss.backward()
            opt.step()
    model.eval()
    return model


def export(model, name, opset):
    path = os.path.join(OUT, name)
    dummy = torch.zeros(1, 1, 28, 28)
    torch.onnx.export(
        model, dummy, path, opset_version=opset, input_names=["input"],
        output_names=["logits"], dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}},
        dynamo=False,
    )
    m = onnx.load(path)
    entry = m.metadata_props.add()
    entry.key = "coinfer:normalization"
    entry.value = json.dumps({"mean": [MEAN], "std": [STD]})
    onnx.checker.check_model(m)
    onnx.save(m, path)
    return path


def main():
    os.makedirs(OUT, exist_ok=True)
    torch.set_num_threads(2)
    x_train = normalise(read_idx("train-images-idx3-ubyte.gz"))
    y_train = read_idx("train-labels-idx1-ubyte.gz")
    x_test = normalise(read_idx("t10k-images-idx3-ubyte.gz"))
    y_test = read_idx("t10k-labels-idx1-ubyte.gz")
    expected = {"normalization": {"mean": [MEAN], "std": [STD]}, "first_images": FIRST,
                "test_images": int(len(x_test)), "models": {}}
    for name, model, opset, seed in [
        ("plain_cnn.onnx", Plain(), 11, 1),
        ("resnet_projection.onnx", Residual(), 13, 2),
        ("mobilenetv2_block.onnx", Mobile(), 17, 3),
    ]:
        train(model, x_train, y_train, epochs=2, seed=seed)
        path = export(model, name, opset)
        session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
        logits = session.run(None, {"input": x_test})[0]
        correct = int((logits.argmax(1) == y_test).sum())
        ops = sorted({n.op_type for n in onnx.load(path).graph.node})
        expected["models"][name] = {
            "opset": opset,
            "operators": ops,
            "first_logits": logits[:FIRST].astype(float).tolist(),
            "correct": correct,
            "test_accuracy": correct / len(x_test),
        }
        print(json.dumps({"model": name, "opset": opset, "operators": ops, "correct": correct,
                          "test_images": len(x_test), "bytes": os.path.getsize(path)}))
    export(Unsupported().eval(), "unsupported_sigmoid.onnx", 13)
    with open(os.path.join(OUT, "expected.json"), "w") as f:
        json.dump(expected, f, indent=1)


if __name__ == "__main__":
    sys.exit(main())
