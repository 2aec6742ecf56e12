#!/usr/bin/env python3
"""Peer frameworks for `cargo run --release --example inference_peers`.

Builds the network the example exported (spec + trained weights, JSON) in PyTorch and in ONNX
Runtime (an ONNX graph of Conv/BatchNormalization/Relu nodes; ORT folds the batch norms itself),
checks both against the logits burn computed, then times what the example asks for. It runs as
a long-lived worker so the example can interleave burn and peer rounds: one JSON request per
line on stdin, one JSON reply per line on stdout.

Requests:
  {"cmd": "load", "weights": PATH}
      -> {"frameworks": [...], "max_abs_diff": {"torch": .., "onnxruntime": ..}, "skipped": {..}}
  {"cmd": "infer", "framework": "torch"|"onnxruntime", "threads": T, "batch": B, "iters": K}
      -> {"samples_ms": [K floats]}
  {"cmd": "train", "threads": T, "batch": B, "iters": K}   (PyTorch only; Adam, cross-entropy)
      -> {"samples_ms": [K floats]}
  {"cmd": "quit"}

Optional dependencies: numpy (required for any peer), torch, onnx + onnxruntime. Whatever is
missing is reported under "skipped" (and on stderr) and left out.
"""

import json
import sys
import time

try:
    import numpy as np
except ImportError:  # pragma: no cover - reported to the example
    np = None

try:
    import torch
    from torch import nn
except ImportError:
    torch = None

try:
    import onnx
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper
except ImportError:
    ort = None


def log(msg):
    print(f"[peers] {msg}", file=sys.stderr, flush=True)


def arr(entry):
    return np.asarray(entry["data"], dtype=np.float32).reshape(entry["shape"])


# ---------------------------------------------------------------- PyTorch


def torch_conv_bn(conv, bn):
    weight = arr(conv["weight"])
    out_c, in_c, k, _ = weight.shape
    c = nn.Conv2d(in_c, out_c, k, stride=conv["stride"], padding=conv["padding"], bias=False)
    b = nn.BatchNorm2d(out_c, eps=bn["eps"])
    with torch.no_grad():
        c.weight.copy_(torch.from_numpy(weight))
        b.weight.copy_(torch.from_numpy(arr(bn["gamma"])))
        b.bias.copy_(torch.from_numpy(arr(bn["beta"])))
        b.running_mean.copy_(torch.from_numpy(arr(bn["mean"])))
        b.running_var.copy_(torch.from_numpy(arr(bn["var"])))
    return nn.Sequential(c, b)


if torch is not None:

    class TorchBasic(nn.Module):
        def __init__(self, block):
            super().__init__()
            self.a = torch_conv_bn(block["conv1"], block["bn1"])
            self.b = torch_conv_bn(block["conv2"], block["bn2"])
            sc = block["shortcut"]
            self.shortcut = torch_conv_bn(sc["conv"], sc["bn"]) if sc else nn.Identity()

        def forward(self, x):
            y = torch.relu(self.a(x))
            return torch.relu(self.b(y) + self.shortcut(x))

    class TorchLinear(nn.Module):
        def __init__(self, block):
            super().__init__()
            weight = arr(block["weight"])  # [in, out]
            self.linear = nn.Linear(weight.shape[0], weight.shape[1], bias=block["bias"] is not None)
            with torch.no_grad():
                self.linear.weight.copy_(torch.from_numpy(weight.T.copy()))
                if block["bias"] is not None:
                    self.linear.bias.copy_(torch.from_numpy(arr(block["bias"])))
            self.relu = block["relu"]

        def forward(self, x):
            y = self.linear(x)
            return torch.relu(y) if self.relu else y


def build_torch(model):
    layers = []
    for block in model["blocks"]:
        kind = block["kind"]
        if kind == "conv_bn_relu":
            layers += [torch_conv_bn(block["conv"], block["bn"]), nn.ReLU()]
        elif kind == "basic":
            layers.append(TorchBasic(block))
        elif kind == "max_pool":
            layers.append(nn.MaxPool2d(block["kernel"], block["stride"], block["padding"]))
        elif kind == "avg_pool":
            layers.append(
                nn.AvgPool2d(block["kernel"], block["stride"], block["padding"], count_include_pad=True)
            )
        elif kind == "global_avg_pool":
            layers.append(nn.AdaptiveAvgPool2d(1))
        elif kind == "flatten":
            layers.append(nn.Flatten())
        elif kind == "linear":
            layers.append(TorchLinear(block))
        else:
            raise ValueError(f"unknown block kind {kind}")
    return nn.Sequential(*layers)


# ---------------------------------------------------------------- ONNX Runtime


def build_onnx(model):
    nodes, inits = [], []
    counter = [0]

    def name(prefix):
        counter[0] += 1
        return f"{prefix}{counter[0]}"

    def const(values):
        n = name("w")
        inits.append(numpy_helper.from_array(np.ascontiguousarray(values), n))
        return n

    def conv_bn(x, conv, bn):
        weight = arr(conv["weight"])
        p = conv["padding"]
        y = name("conv")
        nodes.append(
            helper.make_node(
                "Conv",
                [x, const(weight)],
                [y],
                strides=[conv["stride"]] * 2,
                pads=[p, p, p, p],
                kernel_shape=list(weight.shape[2:]),
            )
        )
        z = name("bn")
        nodes.append(
            helper.make_node(
                "BatchNormalization",
                [y, const(arr(bn["gamma"])), const(arr(bn["beta"])), const(arr(bn["mean"])), const(arr(bn["var"]))],
                [z],
                epsilon=bn["eps"],
            )
        )
        return z

    def relu(x):
        y = name("relu")
        nodes.append(helper.make_node("Relu", [x], [y]))
        return y

    x = "input"
    for block in model["blocks"]:
        kind = block["kind"]
        if kind == "conv_bn_relu":
            x = relu(conv_bn(x, block["conv"], block["bn"]))
        elif kind == "basic":
            sc = block["shortcut"]
            skip = conv_bn(x, sc["conv"], sc["bn"]) if sc else x
            y = relu(conv_bn(x, block["conv1"], block["bn1"]))
            y = conv_bn(y, block["conv2"], block["bn2"])
            s = name("add")
            nodes.append(helper.make_node("Add", [y, skip], [s]))
            x = relu(s)
        elif kind in ("max_pool", "avg_pool"):
            y = name("pool")
            p = block["padding"]
            op = "MaxPool" if kind == "max_pool" else "AveragePool"
            extra = {} if kind == "max_pool" else {"count_include_pad": 1}
            nodes.append(
                helper.make_node(
                    op,
                    [x],
                    [y],
                    kernel_shape=[block["kernel"]] * 2,
                    strides=[block["stride"]] * 2,
                    pads=[p, p, p, p],
                    **extra,
                )
            )
            x = y
        elif kind == "global_avg_pool":
            y = name("gap")
            nodes.append(helper.make_node("GlobalAveragePool", [x], [y]))
            x = y
        elif kind == "flatten":
            y = name("flat")
            nodes.append(helper.make_node("Flatten", [x], [y], axis=1))
            x = y
        elif kind == "linear":
            y = name("fc")
            inputs = [x, const(arr(block["weight"]))]
            if block["bias"] is not None:
                inputs.append(const(arr(block["bias"])))
            nodes.append(helper.make_node("Gemm", inputs, [y]))
            x = relu(y) if block["relu"] else y
        else:
            raise ValueError(f"unknown block kind {kind}")
    c, h, w = model["input"]
    graph = helper.make_graph(
        nodes,
        "coinfer",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", c, h, w])],
        [helper.make_tensor_value_info(x, TensorProto.FLOAT, ["N", model["check_logits"]["shape"][1]])],
        inits,
    )
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    proto.ir_version = 8
    onnx.checker.check_model(proto)
    return proto.SerializeToString()


class Peers:
    def __init__(self):
        self.model = None
        self.torch_model = None
        self.onnx_bytes = None
        self.sessions = {}

    def load(self, path):
        with open(path) as f:
            self.model = json.load(f)
        x = arr(self.model["check_input"])
        want = arr(self.model["check_logits"])
        reply = {"frameworks": [], "max_abs_diff": {}, "skipped": {}}
        if np is None:
            reply["skipped"] = {"torch": "numpy is not installed", "onnxruntime": "numpy is not installed"}
            return reply
        if torch is None:
            reply["skipped"]["torch"] = "torch is not installed"
        else:
            self.torch_model = build_torch(self.model).eval()
            with torch.no_grad():
                got = self.torch_model(torch.from_numpy(x)).numpy()
            reply["frameworks"].append("torch")
            reply["max_abs_diff"]["torch"] = float(np.abs(got - want).max())
        if ort is None:
            reply["skipped"]["onnxruntime"] = "onnx/onnxruntime is not installed"
        else:
            self.onnx_bytes = build_onnx(self.model)
            got = self.session(1).run(None, {"input": x})[0]
            reply["frameworks"].append("onnxruntime")
            reply["max_abs_diff"]["onnxruntime"] = float(np.abs(got - want).max())
        return reply

    def session(self, threads):
        if threads not in self.sessions:
            opts = ort.SessionOptions()
            opts.intra_op_num_threads = threads
            opts.inter_op_num_threads = 1
            opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
            self.sessions[threads] = ort.InferenceSession(
                self.onnx_bytes, opts, providers=["CPUExecutionProvider"]
            )
        return self.sessions[threads]

    def input(self, batch):
        c, h, w = self.model["input"]
        return np.random.default_rng(0).standard_normal((batch, c, h, w)).astype(np.float32)

    def infer(self, framework, threads, batch, iters):
        x = self.input(batch)
        samples = []
        if framework == "torch":
            torch.set_num_threads(threads)
            xt = torch.from_numpy(x)
            with torch.inference_mode():
                for _ in range(iters):
                    start = time.perf_counter()
                    self.torch_model(xt)
                    samples.append((time.perf_counter() - start) * 1e3)
        elif framework == "onnxruntime":
            session = self.session(threads)
            for _ in range(iters):
                start = time.perf_counter()
                session.run(None, {"input": x})
                samples.append((time.perf_counter() - start) * 1e3)
        else:
            raise ValueError(f"unknown framework {framework}")
        return {"samples_ms": samples}

    def train(self, threads, batch, iters):
        torch.set_num_threads(threads)
        if not hasattr(self, "train_state"):
            torch.manual_seed(0)
            net = build_torch(self.model).train()
            opt = torch.optim.Adam(net.parameters(), lr=2e-3, weight_decay=1e-4)
            self.train_state = (net, opt)
        net, opt = self.train_state
        loss_fn = nn.CrossEntropyLoss()
        x = torch.from_numpy(self.input(batch))
        classes = self.model["check_logits"]["shape"][1]
        labels = torch.randint(0, classes, (batch,))
        samples = []
        for _ in range(iters):
            start = time.perf_counter()
            opt.zero_grad(set_to_none=True)
            loss = loss_fn(net(x), labels)
            loss.backward()
            opt.step()
            loss.item()
            samples.append((time.perf_counter() - start) * 1e3)
        return {"samples_ms": samples}


def main():
    peers = Peers()
    for line in sys.stdin:
        line = line.strip()
        if not line:
            continue
        req = json.loads(line)
        cmd = req["cmd"]
        try:
            if cmd == "quit":
                break
            if cmd == "load":
                reply = peers.load(req["weights"])
            elif cmd == "infer":
                reply = peers.infer(req["framework"], req["threads"], req["batch"], req["iters"])
            elif cmd == "train":
                reply = peers.train(req["threads"], req["batch"], req["iters"])
            else:
                reply = {"error": f"unknown command {cmd}"}
        except Exception as e:  # reported to the example, which names the request
            reply = {"error": f"{type(e).__name__}: {e}"}
        print(json.dumps(reply), flush=True)


if __name__ == "__main__":
    main()
