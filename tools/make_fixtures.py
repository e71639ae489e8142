#!/usr/bin/python3
"""Regenerates everything in tests/data/: the bundled ONNX models, sample and broken
inputs, and the expected LRP relevances of the independent NumPy reference
(tools/reference_lrp.py, written from DESIGN.md section 2).

    /usr/bin/python3 tools/make_fixtures.py

Needs numpy, torch, scikit-learn and onnx (tools/setup.sh --dev). Deterministic: fixed
seeds, one thread, deterministic algorithms. The format is described in docs/fixtures.md.
"""
from __future__ import annotations

import json
import os
import shutil
import struct
import sys
import zlib

import numpy as np
import torch
from torch import nn
import onnx
from onnx import numpy_helper
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import reference_lrp as ref  # noqa: E402

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "data")
ROOT = os.path.normpath(ROOT)
SEED = 20240501

torch.set_num_threads(1)
torch.use_deterministic_algorithms(True)


def p(*parts):
    return os.path.join(ROOT, *parts)


# ----------------------------------------------------------------------------- data

def digits():
    d = load_digits()
    x = (d.data / 16.0).astype(np.float32)
    raw = d.data.astype(np.uint8)
    idx = np.arange(len(x))
    i_tr, i_te = train_test_split(idx, test_size=0.25, random_state=0, stratify=d.target)
    return x, raw, d.target.astype(np.int64), i_tr, i_te


# ----------------------------------------------------------------------------- models

def mlp():
    return nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 16), nn.ReLU(), nn.Linear(16, 10))


def cnn():
    return nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(),
                         nn.Conv2d(8, 16, 3, stride=2, padding=1), nn.ReLU(),
                         nn.Flatten(), nn.Linear(16 * 4 * 4, 10))


def cnn_maxpool():
    return nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Flatten(), nn.Linear(16 * 2 * 2, 32), nn.ReLU(), nn.Dropout(0.2),
                         nn.Linear(32, 10), nn.Softmax(dim=1))


def cnn_bn():
    return nn.Sequential(nn.Conv2d(1, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8), nn.ReLU(),
                         nn.AvgPool2d(2, count_include_pad=False), nn.Conv2d(8, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 10))


# name, factory, image?, opset, epochs, dynamic batch
MODELS = [
    ("digits_mlp", mlp, False, 13, 40, True),
    ("digits_cnn", cnn, True, 9, 15, False),
    ("digits_cnn_maxpool", cnn_maxpool, True, 13, 20, False),
    ("digits_cnn_bn", cnn_bn, True, 11, 20, False),
]


def logits_part(model):
    """The model without a trailing Softmax: relevance is explained on the logits."""
    if isinstance(model[-1], nn.Softmax):
        return model[:-1]
    return model


def train(model, x, y, image, epochs, seed):
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    xt = torch.from_numpy(x.reshape(-1, 1, 8, 8) if image else x)
    yt = torch.from_numpy(y)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    net = logits_part(model)
    model.train()
    for _ in range(epochs):
        perm = torch.randperm(len(xt), generator=gen)
        for s in range(0, len(xt), 32):
            b = perm[s:s + 32]
            opt.zero_grad()
            loss = nn.functional.cross_entropy(net(xt[b]), yt[b])
            loss.backward()
            opt.step()
    model.eval()
    return model


def accuracy(model, x, y, image):
    with torch.no_grad():
        out = logits_part(model)(torch.from_numpy(x.reshape(-1, 1, 8, 8) if image else x))
    return float((out.argmax(1).numpy() == y).mean())


def export(model, path, image, opset, dynamic, keep_bn=False):
    """keep_bn: torch 1.13 fuses Conv+BatchNorm when exporting with TrainingMode.EVAL (even
    without constant folding); PRESERVE on a model in eval mode keeps the BatchNormalization
    nodes (with running statistics) so the importer has to fold them itself."""
    dummy = torch.zeros((1, 1, 8, 8) if image else (1, 64))
    mode = torch.onnx.TrainingMode.PRESERVE if keep_bn else torch.onnx.TrainingMode.EVAL
    assert not model.training
    kw = dict(input_names=["input"], output_names=["output"], opset_version=opset,
              training=mode, do_constant_folding=not keep_bn)
    if dynamic:
        kw["dynamic_axes"] = {"input": {0: "batch"}, "output": {0: "batch"}}
    torch.onnx.export(model, dummy, path, **kw)
    m = onnx.load(path)
    onnx.checker.check_model(m)
    return m


# ----------------------------------------------------------------------------- bad models

def bad_models(mlp_model, mlp_path):
    d = p("models", "bad")
    os.makedirs(d, exist_ok=True)
    torch.manual_seed(SEED + 7)
    export(nn.Sequential(nn.Linear(64, 16), nn.Sigmoid(), nn.Linear(16, 10)).eval(),
           os.path.join(d, "unknown_op.onnx"), False, 13, False)

    class Residual(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b, self.out = nn.Linear(64, 16), nn.Linear(16, 16), nn.Linear(16, 10)

        def forward(self, x):
            h = torch.relu(self.a(x))
            return self.out(torch.relu(self.b(h)) + h)

    class TwoInputs(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b = nn.Linear(64, 10), nn.Linear(64, 10)

        def forward(self, x, y):
            return self.a(x) + self.b(y)

    export(Residual().eval(), os.path.join(d, "residual.onnx"), False, 13, False)
    torch.onnx.export(TwoInputs().eval(), (torch.zeros(1, 64), torch.zeros(1, 64)),
                      os.path.join(d, "two_inputs.onnx"), input_names=["x", "y"], output_names=["output"],
                      opset_version=13)
    m = onnx.load(mlp_path)
    init = m.graph.initializer[0]
    arr = numpy_helper.to_array(init).copy()
    arr.flat[5] = np.nan
    init.CopyFrom(numpy_helper.from_array(arr, init.name))
    onnx.save(m, os.path.join(d, "nan_weight.onnx"))
    data = open(mlp_path, "rb").read()
    open(os.path.join(d, "truncated.onnx"), "wb").write(data[:len(data) // 2])
    open(os.path.join(d, "not_onnx.onnx"), "wb").write(np.random.default_rng(SEED).bytes(512))
    return {
        "models/bad/unknown_op.onnx": "Gemm, Sigmoid, Gemm: Sigmoid is not supported",
        "models/bad/residual.onnx": "a residual Add of two branches: not a chain",
        "models/bad/two_inputs.onnx": "two graph inputs x and y",
        "models/bad/nan_weight.onnx": f"digits_mlp with {init.name}[5] (flat index) set to NaN",
        "models/bad/truncated.onnx": "the first half of digits_mlp.onnx",
        "models/bad/not_onnx.onnx": "512 random bytes",
    }


# ----------------------------------------------------------------------------- inputs

def write_png_gray8(path, img, color=False):
    """Minimal PNG writer (8-bit grayscale or RGB, no interlace) with zlib + struct."""
    h, w = img.shape
    ctype = 2 if color else 0
    rows = b""
    for r in range(h):
        px = img[r].astype(np.uint8)
        if color:
            px = np.repeat(px, 3)
        rows += b"\x00" + px.tobytes()

    def chunk(tag, data):
        c = struct.pack(">I", len(data)) + tag + data
        return c + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)

    png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, ctype, 0, 0, 0))
    png += chunk(b"IDAT", zlib.compress(rows, 9)) + chunk(b"IEND", b"")
    open(path, "wb").write(png)


def make_inputs(x, raw, y, i_te, correct):
    """correct[i]: every bundled model classifies dataset row i right. The single-digit
    inputs are the first such test rows with pairwise different labels, so the default
    explanation (predicted class) explains the true class."""
    d = p("inputs")
    os.makedirs(d, exist_ok=True)
    info = {}
    picks, labels = [], set()
    for i in i_te:
        if correct[i] and y[i] not in labels:
            picks.append(int(i))
            labels.add(y[i])
        if len(picks) == 3:
            break
    for n, i in enumerate(picks[:2]):
        np.save(os.path.join(d, f"mlp_input_{n}.npy"), x[i].reshape(1, 64))
        np.save(os.path.join(d, f"cnn_input_{n}.npy"), x[i].reshape(1, 1, 8, 8))
        info[f"inputs/mlp_input_{n}.npy"] = f"float32 (1,64): test digit {int(y[i])} (dataset row {i}), pixels/16"
        info[f"inputs/cnn_input_{n}.npy"] = f"float32 (1,1,8,8): same digit as mlp_input_{n}"
    i2 = picks[2]
    np.save(os.path.join(d, "mlp_input_f64.npy"), x[i2].astype(np.float64).reshape(64))
    np.save(os.path.join(d, "cnn_input_f64.npy"), x[i2].astype(np.float64).reshape(1, 8, 8))
    info["inputs/mlp_input_f64.npy"] = f"float64 (64,), no batch dimension: test digit {int(y[i2])} (row {i2})"
    info["inputs/cnn_input_f64.npy"] = "float64 (1,8,8), no batch dimension: same digit"
    batch = [int(i) for i in i_te[3:7]]
    np.save(os.path.join(d, "mlp_batch_u8.npy"), raw[batch].reshape(4, 64))
    np.save(os.path.join(d, "cnn_batch_u8.npy"), raw[batch].reshape(4, 1, 8, 8))
    info["inputs/mlp_batch_u8.npy"] = ("uint8 (4,64): 4 test digits " + str([int(y[i]) for i in batch]) +
                                       " as RAW sklearn values 0..16 (NOT divided by 16); read as-is")
    info["inputs/cnn_batch_u8.npy"] = "uint8 (4,1,8,8): the same raw batch"
    np.save(os.path.join(d, "mlp_input_i64.npy"), raw[picks[0]].astype(np.int64).reshape(64))
    info["inputs/mlp_input_i64.npy"] = "int64 (64,): raw 0..16 values of mlp_input_0's digit, read as-is"
    img = np.round(x[picks[0]].astype(np.float64) * 255).astype(np.uint8).reshape(8, 8)
    write_png_gray8(os.path.join(d, "digit_0.png"), img)
    write_png_gray8(os.path.join(d, "digit_0_rgb.png"), img, color=True)
    np.save(os.path.join(d, "digit_0_png_values.npy"), img.astype(np.float64).reshape(1, 8, 8) / 255.0)
    info["inputs/digit_0.png"] = ("8x8 8-bit grayscale PNG of mlp_input_0's digit, pixel = round(x*255); "
                                  "expected cases read it as pixel/255 (see digit_0_png_values.npy)")
    info["inputs/digit_0_rgb.png"] = "the same image as 8-bit RGB (three equal channels)"
    info["inputs/digit_0_png_values.npy"] = "float64 (1,8,8): digit_0.png's pixels / 255"
    # per-feature z^B bounds: low 0, high = the largest training value of each pixel
    hi = x.max(axis=0).astype(np.float64)
    lo = np.zeros(64)
    np.save(os.path.join(d, "zbox_low_mlp.npy"), lo)
    np.save(os.path.join(d, "zbox_high_mlp.npy"), hi)
    np.save(os.path.join(d, "zbox_low_cnn.npy"), lo.reshape(1, 8, 8))
    np.save(os.path.join(d, "zbox_high_cnn.npy"), hi.reshape(1, 8, 8))
    info["inputs/zbox_low_mlp.npy"] = "float64 (64,) per-feature z^B lower bounds (zeros)"
    info["inputs/zbox_high_mlp.npy"] = "float64 (64,) per-feature z^B upper bounds (max over the dataset)"
    info["inputs/zbox_low_cnn.npy"] = "float64 (1,8,8), same bounds"
    info["inputs/zbox_high_cnn.npy"] = "float64 (1,8,8), same bounds"
    # a user-given initial relevance (10 classes, mixed signs)
    np.save(os.path.join(d, "initial_relevance.npy"), np.array([0.5, -0.25, 1.0, 0.0, 2.0, -1.0, 0.125, 0.0, 0.75, -0.5]))
    info["inputs/initial_relevance.npy"] = "float64 (10,): an initial relevance vector for --target FILE.npy"
    # broken inputs
    f = np.asfortranarray(x[picks[0]].reshape(1, 1, 8, 8))
    assert f.flags.f_contiguous and not f.flags.c_contiguous
    np.save(os.path.join(d, "fortran_order.npy"), f)
    np.save(os.path.join(d, "wrong_shape.npy"), x[picks[0]][:63].reshape(1, 63))
    np.save(os.path.join(d, "bad_dtype.npy"), x[picks[0]].astype(np.complex64).reshape(1, 64))
    np.save(os.path.join(d, "bad_dtype_str.npy"), np.array([["a", "b"]], dtype="<U1"))
    nan = x[picks[0]].reshape(1, 64).copy()
    nan[0, 10] = np.nan
    np.save(os.path.join(d, "nan_input.npy"), nan)
    good = open(os.path.join(d, "mlp_input_0.npy"), "rb").read()
    open(os.path.join(d, "truncated.npy"), "wb").write(good[:len(good) - 100])
    info["inputs/fortran_order.npy"] = "float32 (1,1,8,8) stored with fortran_order: True (refuse)"
    info["inputs/wrong_shape.npy"] = "float32 (1,63) (no model takes 63 features)"
    info["inputs/bad_dtype.npy"] = "complex64 (1,64) (unsupported dtype)"
    info["inputs/bad_dtype_str.npy"] = "<U1 string array (unsupported dtype)"
    info["inputs/nan_input.npy"] = "float32 (1,64) with NaN at flat index 10"
    info["inputs/truncated.npy"] = "mlp_input_0.npy without its last 100 bytes (data shorter than the header says)"
    return info


# ----------------------------------------------------------------------------- cases

RULES = ["zero", "epsilon", "epsilon:0.1", "gamma", "gamma:0.5", "zplus", "alphabeta", "alphabeta:1,0",
         "flat", "wsquare"]
COMPOSITES = ["epsilon-plus", "epsilon-gamma-box:0,1", "epsilon-alpha2-beta1", "epsilon-plus-flat"]


def resolve_rules(layers, rule, overrides, composite, bounds):
    """Rule per linear layer for a case (DESIGN section 2 composites, Zennit semantics)."""
    lin = [L for L in layers if L.is_linear]
    out = []
    for i, L in enumerate(lin):
        if composite is None:
            r = rule
        else:
            name, _, arg = composite.partition(":")
            conv = L.kind == "conv"
            if name == "epsilon-plus":
                r = "zplus" if conv else "epsilon"
            elif name == "epsilon-alpha2-beta1":
                r = "alphabeta:2,1" if conv else "epsilon"
            elif name == "epsilon-gamma-box":
                r = ("zbox:" + arg if i == 0 else "gamma") if conv else "epsilon"
            elif name == "epsilon-plus-flat":
                r = "flat" if i == 0 else ("zplus" if conv else "epsilon")
            else:
                raise ValueError(composite)
        for key, val in overrides.items():
            if (key == "first" and i == 0) or key == str(i) or key == L.name:
                r = val
        out.append(r)
    return [ref.parse_rule(r, bounds) for r in out], out


# ----------------------------------------------------------------------------- torch cross-check

def _t(a):
    return torch.as_tensor(np.asarray(a, dtype=np.float64))


def torch_layer_lrp(L, a, R, rule, bias_on):
    """One layer of LRP the way Zennit computes it: modified copies of the layer's own
    torch op (F.linear / F.conv2d / pooling) and autograd for the transposed products. No
    matrix of reference_lrp is used, so this checks the conv->matrix conversion, padding,
    fan-in counting and each rule's terms independently. Returns the input relevance (flat)."""
    F = nn.functional
    shape = (1,) + tuple(L.in_shape)
    a = _t(a).reshape(shape)
    R = _t(R).reshape((1,) + tuple(L.out_shape))
    if L.kind == "maxpool":
        at = L.attrs
        assert at["pads"] == [0, 0, 0, 0]
        out, idx = F.max_pool2d(a, at["kernel"], at["strides"], return_indices=True)
        R_in = torch.zeros(a.numel(), dtype=torch.float64)
        R_in.index_add_(0, (idx + torch.arange(idx.shape[1]).reshape(1, -1, 1, 1) * a.shape[2] * a.shape[3]).reshape(-1),
                        R.reshape(-1))
        return R_in.numpy()
    if L.kind == "dense":
        w, b = _t(L.matrix), _t(L.bias)

        def op(x, w, b):
            return F.linear(x.reshape(1, -1), w, b).reshape(R.shape)
    elif L.kind == "conv":
        at = L.attrs
        pt, pl, pb, pr = at["pads"]
        assert (pt, pl) == (pb, pr)
        w, b = _t(at["w"]), _t(at["b"])

        def op(x, w, b):
            return F.conv2d(x, w, b, stride=at["strides"], padding=(pt, pl), dilation=at["dilations"])
    elif L.kind == "avgpool":
        at = L.attrs
        assert at["pads"] == [0, 0, 0, 0]
        w, b = None, None
        rule = ref.Rule("epsilon", eps=ref.POOL_EPS)
        bias_on = False

        def op(x, w, b):
            return F.avg_pool2d(x, at["kernel"], at["strides"])
    else:
        return R.reshape(-1).numpy()
    zero_b = None if b is None else torch.zeros_like(b)
    be = b if bias_on else zero_b
    pos = lambda t: None if t is None else t.clamp(min=0)
    neg = lambda t: None if t is None else t.clamp(max=0)

    def stab(z, e):
        return z + e * (z >= 0).double() * 2 - e

    def div(r, d, keep=None):
        ok = d != 0 if keep is None else (d != 0) & keep
        return torch.where(ok, r / torch.where(ok, d, torch.ones_like(d)), torch.zeros_like(r))

    def back(x, w, b, c):  # sum_k c_k d out_k / d x  = W^T c
        x = x.clone().requires_grad_(True)
        g, = torch.autograd.grad((op(x, w, b) * c).sum(), x)
        return g

    st = ref.STABILISER
    name = rule.name
    if name == "epsilon":
        c = div(R, stab(op(a, w, be), rule.eps))
        R_in = a * back(a, w, be, c)
    elif name in ("zplus", "alphabeta"):
        al, be_ = (1.0, 0.0) if name == "zplus" else (rule.alpha, rule.beta)
        ap, an = pos(a), neg(a)
        cp = div(R, stab(op(ap, pos(w), pos(be)) + op(an, neg(w), zero_b), st))
        zn = op(ap, neg(w), neg(be)) + op(an, pos(w), zero_b)
        cn = div(R, stab(zn, st), keep=zn != 0)
        R_in = al * (ap * back(ap, pos(w), zero_b, cp) + an * back(an, neg(w), zero_b, cp)) \
            - be_ * (ap * back(ap, neg(w), zero_b, cn) + an * back(an, pos(w), zero_b, cn))
    elif name == "gamma":
        g = rule.gamma
        z = op(a, w, b)  # sign test on the unmodified layer
        ap, an = pos(a), neg(a)
        wP, wN = w + g * pos(w), w + g * neg(w)
        dP = op(ap, wP, be + g * pos(be)) + op(an, wN, zero_b)
        dN = op(ap, wN, be + g * neg(be)) + op(an, wP, zero_b)
        cP = div(R * (z > 0), stab(dP, st))
        cN = div(R * (z < 0), stab(dN, st))
        R_in = ap * (back(ap, wP, zero_b, cP) + back(ap, wN, zero_b, cN)) \
            + an * (back(an, wN, zero_b, cP) + back(an, wP, zero_b, cN))
    elif name == "zbox":
        lo = torch.broadcast_to(_t(rule.low).reshape(-1), (a.numel(),)).reshape(shape)
        hi = torch.broadcast_to(_t(rule.high).reshape(-1), (a.numel(),)).reshape(shape)
        c = div(R, stab(op(a, w, b) - op(lo, pos(w), pos(b)) - op(hi, neg(w), neg(b)), st))
        R_in = a * back(a, w, zero_b, c) - lo * back(lo, pos(w), zero_b, c) - hi * back(hi, neg(w), zero_b, c)
    elif name == "flat":
        ones = torch.ones_like(a)
        c = div(R, stab(op(ones, torch.ones_like(w), zero_b), st))
        R_in = back(ones, torch.ones_like(w), zero_b, c)
    elif name == "wsquare":
        ones = torch.ones_like(a)
        c = div(R, stab(op(ones, w * w, be * be), st))
        R_in = back(ones, w * w, zero_b, c)
    else:
        raise ValueError(name)
    return R_in.reshape(-1).detach().numpy()


def crosscheck(layers, rules, bias, bnd, x, checks):
    acts, _ = ref.forward(layers, x)
    li = 0
    for i, L in enumerate(layers):
        rule = None
        if L.is_linear:
            rule = rules[li]
            li += 1
        got = torch_layer_lrp(L, acts[i], bnd[i + 1], rule, bias)
        scale = max(np.abs(bnd[i]).max(), 1e-300)
        err = np.abs(got - bnd[i]).max() / scale
        checks.note("torch (Zennit-style) layer LRP vs NumPy matrices (relative)", err)
        assert err < 1e-10, (L.name, L.kind, None if rule is None else rule.spec(), bias, err)


def save_npy(rel, arr):
    path = p(rel)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    np.save(path, np.ascontiguousarray(arr, dtype=np.float64))
    return rel


def slug(s):
    return s.replace(":", "").replace(",", "_").replace("/", "_").replace(".npy", "").replace(".png", "_png").replace("=", "-")


class Checks:
    def __init__(self):
        self.worst = {}

    def note(self, what, val):
        self.worst[what] = max(self.worst.get(what, 0.0), float(val))


def run_case(model_rel, short, layers, x_sample, input_rel, index, rule, overrides, composite, bias,
             bounds, checks, target=None, tag=None, note=None, initial=None):
    rules, rule_strs = resolve_rules(layers, rule, overrides, composite, bounds)
    R0 = None if initial is None else np.load(p(initial))
    r64 = ref.lrp(layers, x_sample, rules, bias_on=bias, target=target, R0=R0, dtype=np.float64)
    rld = ref.lrp(layers, x_sample, rules, bias_on=bias, target=target, R0=R0, dtype=np.longdouble)
    assert r64["target"] == rld["target"]
    # the longdouble run is more accurate; the float64 run shows how well conditioned the case is
    bnd = [b.astype(np.float64) for b in rld["boundaries"]]
    scale = max(np.abs(b).max() for b in bnd)
    diff = max(np.abs(a.astype(np.float64) - b).max() for a, b in zip(r64["boundaries"], bnd)) / scale
    checks.note("float64 vs longdouble, relative to max|R|", diff)
    assert diff < 1e-11, (short, rule, composite, bias, diff)
    # sum R_out = sum R_in + bias + leak per layer, the leak from its own formula
    for res, bl, lk, R in zip(rld["residual_per_layer"], rld["bias_per_layer"], rld["leak_per_layer"], bnd[1:]):
        err = abs(res - lk) / max(1.0, np.abs(R).sum())
        checks.note("per-layer conservation identity (relative)", err)
        assert err < 1e-12, (short, rule, res, lk)
    crosscheck(layers, rules, bias, bnd, x_sample, checks)
    inp = bnd[0].reshape(layers[0].in_shape)
    in_slug = slug(os.path.basename(input_rel)).replace("mlp_", "").replace("cnn_", "")
    name = tag or f"{short}_{in_slug}" + (f"_i{index}" if index is not None else "") + \
        "_" + (slug(composite) if composite else slug(rule)) + \
        "".join(f"_{slug(k)}-{slug(v)}" for k, v in overrides.items()) + ("" if bias else "_nobias") + \
        (f"_t{target}" if target is not None else "")
    rel_r = save_npy(f"expected/{short}/{name}.npy", inp)
    flat = np.concatenate([b.reshape(-1) for b in bnd])
    rel_l = save_npy(f"expected/{short}/{name}.layers.npy", flat)
    offs = np.cumsum([0] + [b.size for b in bnd]).tolist()
    case = {
        "name": name,
        "model": model_rel,
        "input": input_rel,
        "index": index,
        "rule": rule if composite is None else None,
        "overrides": overrides,
        "composite": composite,
        "bias": bias,
        "target_arg": target,
        "initial_relevance": initial,
        "target": None if initial else rld["target"],
        "score": None if initial else rld["score"],
        "layer_rules": rule_strs,
        "relevance": rel_r,
        "layers": rel_l,
        "layer_offsets": offs[:-1],
        "layer_lengths": [int(b.size) for b in bnd],
        "bias_share": float(sum(rld["bias_per_layer"])),
        "bias_per_layer": rld["bias_per_layer"],
        "leak": float(sum(rld["leak_per_layer"])),
        "leak_per_layer": rld["leak_per_layer"],
        "sum": float(inp.sum()),
        "max_abs": float(np.abs(inp).max()),
    }
    total = float(bnd[-1].sum())  # score, or the sum of the given initial relevance
    gap = abs(total - (case["sum"] + case["bias_share"] + case["leak"])) / max(1.0, abs(total))
    checks.note("network: initial = sum + bias_share + leak (relative)", gap)
    assert gap < 1e-12, (name, gap)
    if note:
        case["note"] = note
    if input_rel.endswith(".png"):
        case["input_values"] = "inputs/digit_0_png_values.npy"
    return case, rld


def torch_float64(model):
    net = logits_part(model)
    import copy
    m = copy.deepcopy(net).double().eval()
    for mod in m.modules():
        if isinstance(mod, nn.BatchNorm2d):
            mod.eps = float(np.float32(mod.eps))  # the value the ONNX file stores (a float32 attribute)
    return m


def grad_x_input(model64, x, image, target):
    xt = torch.tensor(np.asarray(x, dtype=np.float64).reshape((1, 1, 8, 8) if image else (1, 64)),
                      requires_grad=True)
    out = model64(xt)
    out[0, target].backward()
    return (xt.grad * xt).detach().numpy().reshape(-1), out.detach().numpy().reshape(-1)


def layer_descr(layers):
    return [{"name": L.name, "op_type": L.op_type, "kind": L.kind, "in_shape": list(L.in_shape),
             "out_shape": list(L.out_shape)} for L in layers]


def main():
    for sub in ("models", "inputs", "expected"):
        shutil.rmtree(p(sub), ignore_errors=True)
    os.makedirs(p("models"), exist_ok=True)
    x, raw, y, i_tr, i_te = digits()
    trained = []
    correct = np.ones(len(x), dtype=bool)
    for k, (name, factory, image, opset, epochs, dynamic) in enumerate(MODELS):
        torch.manual_seed(SEED + k)
        model = factory()
        train(model, x[i_tr], y[i_tr], image, epochs, SEED + k)
        with torch.no_grad():
            out = logits_part(model)(torch.from_numpy(x.reshape(-1, 1, 8, 8) if image else x))
        correct &= out.argmax(1).numpy() == y
        trained.append(model)
    input_info = make_inputs(x, raw, y, i_te, correct)
    checks = Checks()
    manifest = {"format": 1, "generator": "tools/make_fixtures.py", "reference": "tools/reference_lrp.py",
                "conventions": {"stabiliser": ref.STABILISER, "default_epsilon": ref.DEFAULT_EPS,
                                "default_gamma": ref.DEFAULT_GAMMA, "pool_epsilon": ref.POOL_EPS,
                                "zero_denominator": "a unit whose stabilised denominator is exactly 0 passes nothing",
                                "paths": "relative to tests/data"},
                "inputs": input_info, "models": {}, "bad_models": {}, "cases": []}
    for k, (name, factory, image, opset, epochs, dynamic) in enumerate(MODELS):
        model = trained[k]
        acc = accuracy(model, x[i_te], y[i_te], image)
        rel = f"models/{name}.onnx"
        om = export(model, p(rel), image, opset, dynamic, keep_bn=(name == "digits_cnn_bn"))
        ops = [n.op_type for n in om.graph.node]
        if name == "digits_cnn_bn":
            assert ops.count("BatchNormalization") == 2, ops
        in_shape, layers = ref.load_onnx_chain(p(rel))
        model64 = torch_float64(model)
        short = name.replace("digits_", "")
        pre = "cnn" if image else "mlp"
        bounds = {f"inputs/zbox_low_{pre}.npy": np.load(p("inputs", f"zbox_low_{pre}.npy")),
                  f"inputs/zbox_high_{pre}.npy": np.load(p("inputs", f"zbox_high_{pre}.npy"))}
        entry = {"opset": opset, "ops": ops, "dynamic_batch": dynamic, "test_accuracy": acc,
                 "input_shape": list(in_shape), "layers": layer_descr(layers), "forward": []}

        def sample(rel_in, index=None, scale=None):
            if rel_in.endswith(".png"):
                return np.load(p("inputs", "digit_0_png_values.npy"))
            a = np.load(p(rel_in))
            if index is not None:
                a = a[index]
            elif a.ndim == len(in_shape) + 1:
                a = a[0]
            return a.astype(np.float64).reshape(in_shape)

        # forward checks and gradient x input on every input the cases use
        fwd_inputs = [(f"inputs/{pre}_input_0.npy", None), (f"inputs/{pre}_input_1.npy", None),
                      (f"inputs/{pre}_input_f64.npy", None), (f"inputs/{pre}_batch_u8.npy", 2)]
        if image:
            fwd_inputs.append(("inputs/digit_0.png", None))
        else:
            fwd_inputs.append(("inputs/mlp_input_i64.npy", None))
        for rel_in, index in fwd_inputs:
            xs = sample(rel_in, index)
            acts, _ = ref.forward(layers, xs)
            tgt = int(np.argmax(acts[-1]))
            gxi, logits_t = grad_x_input(model64, xs, image, tgt)
            d = np.abs(acts[-1] - logits_t).max()
            checks.note("NumPy forward vs PyTorch float64 logits (abs)", d)
            assert d < 1e-9, (name, rel_in, d)
            # ReLU / max-pool decisions must not hinge on rounding: report the smallest margin
            for L, a_in, a_out in zip(layers, acts[:-1], acts[1:]):
                if L.kind == "relu":
                    nz = np.abs(a_in[a_in != 0])
                    if nz.size:
                        checks.note("-log10 smallest nonzero |z| at a ReLU", -np.log10(nz.min()))
            # LRP-0 with bias kept equals gradient x input (average pools without stabiliser)
            r0 = ref.lrp(layers, xs, [ref.Rule("epsilon", eps=0.0)] * sum(L.is_linear for L in layers),
                         bias_on=True, dtype=np.longdouble, pool_eps=0.0)
            R = r0["boundaries"][0].astype(np.float64)
            err = np.abs(R - gxi).max() / np.abs(gxi).max()
            checks.note("LRP-0 (bias kept) vs gradient x input (relative to max)", err)
            assert err < 1e-10, (name, rel_in, err)
            # LRP-0 without bias: sum R_input = logit exactly (minus relevance of units with z = 0)
            rn = ref.lrp(layers, xs, [ref.Rule("epsilon", eps=0.0)] * sum(L.is_linear for L in layers),
                         bias_on=False, dtype=np.longdouble, pool_eps=0.0)
            s = float(rn["boundaries"][0].sum())
            dropped = float(sum(rn["leak_per_layer"]))
            cons = abs(s + dropped - rn["score"]) / abs(rn["score"])
            checks.note("LRP-0 no-bias conservation sum+dropped vs logit (relative)", cons)
            assert cons < 1e-12, (name, rel_in, s, dropped, rn["score"])
            if not image:
                assert dropped == 0.0  # no unit of the MLP has all-zero inputs: exact conservation
            gname = f"expected/{short}/grad_x_input_{slug(os.path.basename(rel_in))}" + \
                (f"_i{index}" if index is not None else "") + ".npy"
            save_npy(gname, gxi.reshape(in_shape))
            entry["forward"].append({"input": rel_in, "index": index, "logits": logits_t.tolist(),
                                     "predicted": tgt, "grad_x_input": gname,
                                     "lrp0_nobias_sum": s, "lrp0_nobias_dropped": dropped})
        entry["logits"] = entry["forward"][0]["logits"]
        entry["grad_x_input"] = entry["forward"][0]["grad_x_input"]
        manifest["models"][rel] = entry

        cases = manifest["cases"]
        in0 = f"inputs/{pre}_input_0.npy"
        x0 = sample(in0)
        zbox_arr = f"zbox:inputs/zbox_low_{pre}.npy,inputs/zbox_high_{pre}.npy"
        for bias in (True, False):
            for r in RULES:
                cases.append(run_case(rel, short, layers, x0, in0, None, r, {}, None, bias, bounds, checks)[0])
            for ov in ("zbox:0,1", zbox_arr):
                cases.append(run_case(rel, short, layers, x0, in0, None, "epsilon", {"first": ov}, None, bias,
                                      bounds, checks,
                                      tag=f"{short}_input_0_zbox{'_array' if 'npy' in ov else '0_1'}"
                                          f"{'' if bias else '_nobias'}")[0])
            for c in COMPOSITES:
                cases.append(run_case(rel, short, layers, x0, in0, None, None, {}, c, bias, bounds, checks)[0])
        # a second digit: a few rules
        in1 = f"inputs/{pre}_input_1.npy"
        x1 = sample(in1)
        for r in ("zero", "epsilon", "gamma", "alphabeta", "flat"):
            cases.append(run_case(rel, short, layers, x1, in1, None, r, {}, None, True, bounds, checks)[0])
        cases.append(run_case(rel, short, layers, x1, in1, None, None, {}, COMPOSITES[1 if image else 0], True,
                              bounds, checks)[0])
        # per-layer overrides by index and by ONNX node name
        lin = [L for L in layers if L.is_linear]
        cases.append(run_case(rel, short, layers, x0, in0, None, "epsilon",
                              {"1": "gamma:0.5", lin[-1].name: "zero"}, None, True, bounds, checks,
                              tag=f"{short}_input_0_overrides")[0])
        # a user-given initial relevance vector instead of one-hot x score
        cases.append(run_case(rel, short, layers, x0, in0, None, "epsilon", {}, None, True, bounds, checks,
                              tag=f"{short}_input_0_initial", initial="inputs/initial_relevance.npy",
                              note="initial relevance from inputs/initial_relevance.npy; no target/score")[0])
        # an explicit, non-predicted target
        pred = int(np.argmax(ref.forward(layers, x0)[0][-1]))
        other = (pred + 3) % 10
        for r in ("epsilon", "zplus"):
            cases.append(run_case(rel, short, layers, x0, in0, None, r, {}, None, True, bounds, checks,
                                  target=other)[0])
        # other input encodings (no batch, uint8 batch + index, int64, PNG), default rule
        for rel_in, index in fwd_inputs[2:]:
            xs = sample(rel_in, index)
            note = "PNG pixels read as value/255" if rel_in.endswith(".png") else "values read as-is"
            cases.append(run_case(rel, short, layers, xs, rel_in, index, "epsilon", {}, None, True, bounds,
                                  checks, note=note)[0])
    manifest["bad_models"] = bad_models(None, p("models", "digits_mlp.onnx"))
    with open(p("expected", "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=1)
        f.write("\n")
    print(f"{len(manifest['cases'])} cases")
    for what, val in checks.worst.items():
        print(f"  worst {what}: {val:.3g}")
    for rel, m in manifest["models"].items():
        print(f"  {rel}: opset {m['opset']}, test accuracy {m['test_accuracy']:.3f}, ops {m['ops']}")
    total = 0
    count = 0
    for dp, _, fs in os.walk(ROOT):
        for fn in fs:
            total += os.path.getsize(os.path.join(dp, fn))
            count += 1
    print(f"tests/data: {count} files, {total / 1e6:.2f} MB")
    return manifest, checks


if __name__ == "__main__":
    main()
