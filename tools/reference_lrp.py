"""Independent NumPy reference for provnn's numeric LRP (DESIGN.md section 2).

Written from the design text (and Zennit's documented semantics), never from the C++ of
this repository. Every linear layer -- dense, convolution, average pooling -- is turned
into an explicit dense matrix M (out x in) plus a connectivity mask, so the rules below are
plain matrix algebra and share no code path with a convolution loop. The whole computation
is generic over the floating dtype: make_fixtures.py runs it in float64 and in
np.longdouble and checks that both agree, which flags ill-conditioned cases.

Conventions decided here (documented in docs/fixtures.md):
  * stab(z) = z + eps * s(z), s(z) = +1 if z >= 0 else -1.
  * A unit whose stabilised denominator is exactly 0 (only possible with eps = 0, rule
    `zero`) passes nothing down; its relevance is counted in the layer's leak.
  * Average pooling is a fixed linear layer (weights 1/N, N = real inputs in the window)
    under the epsilon rule with eps = POOL_EPS = 1e-6 whatever the linear layers use
    (Zennit's Norm rule, applied to AvgPool in every Zennit composite).
  * --no-bias zeroes the biases inside the rules only; the forward pass (activations,
    ReLU pattern, max-pool winners, the target score, gamma's sign test) is unmodified.
"""
from __future__ import annotations

import dataclasses
import numpy as np

import onnx
from onnx import numpy_helper

STABILISER = 1e-6  # every non-epsilon rule
DEFAULT_EPS = 1e-6
DEFAULT_GAMMA = 0.25
POOL_EPS = 1e-6


# ----------------------------------------------------------------------------- network

@dataclasses.dataclass
class Layer:
    name: str
    op_type: str
    kind: str  # dense | conv | relu | maxpool | avgpool | reshape
    in_shape: tuple
    out_shape: tuple
    matrix: np.ndarray | None = None  # out x in, float64 (dense/conv/avgpool)
    mask: np.ndarray | None = None  # out x in, bool: real connections
    bias: np.ndarray | None = None
    windows: list | None = None  # maxpool: per output, flat input indices in window order
    attrs: dict | None = None  # the ONNX view (kernel, strides, pads, ...): only for cross-checks

    @property
    def is_linear(self):
        return self.kind in ("dense", "conv")


def _attrs(node):
    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


def _conv_matrix(w, in_shape, strides, pads, dil):
    c_in, h, wd = in_shape
    c_out, c_w, kh, kw = w.shape
    assert c_w == c_in, "group != 1 not used by the fixtures"
    pt, pl, pb, pr = pads
    ho = (h + pt + pb - dil[0] * (kh - 1) - 1) // strides[0] + 1
    wo = (wd + pl + pr - dil[1] * (kw - 1) - 1) // strides[1] + 1
    m = np.zeros((c_out * ho * wo, c_in * h * wd))
    mask = np.zeros(m.shape, dtype=bool)
    for o in range(c_out):
        for oy in range(ho):
            for ox in range(wo):
                k = (o * ho + oy) * wo + ox
                for c in range(c_in):
                    for ky in range(kh):
                        iy = oy * strides[0] - pt + ky * dil[0]
                        if not 0 <= iy < h:
                            continue
                        for kx in range(kw):
                            ix = ox * strides[1] - pl + kx * dil[1]
                            if not 0 <= ix < wd:
                                continue
                            j = (c * h + iy) * wd + ix
                            m[k, j] += w[o, c, ky, kx]
                            mask[k, j] = True
    return m, mask, (c_out, ho, wo)


def _pool_windows(in_shape, kernel, strides, pads):
    c, h, wd = in_shape
    pt, pl, pb, pr = pads
    ho = (h + pt + pb - kernel[0]) // strides[0] + 1
    wo = (wd + pl + pr - kernel[1]) // strides[1] + 1
    windows = []
    for ch in range(c):
        for oy in range(ho):
            for ox in range(wo):
                win = []
                for ky in range(kernel[0]):  # row-major window order
                    iy = oy * strides[0] - pt + ky
                    for kx in range(kernel[1]):
                        ix = ox * strides[1] - pl + kx
                        if 0 <= iy < h and 0 <= ix < wd:
                            win.append((ch * h + iy) * wd + ix)
                windows.append(win)
    return windows, (c, ho, wo)


def load_onnx_chain(path):
    """Reads a chain-shaped ONNX model into Layers (BatchNorm folded, Dropout/Identity and a
    trailing Softmax skipped). Returns (input_shape_without_batch, layers)."""
    model = onnx.load(path)
    g = model.graph
    inits = {t.name: numpy_helper.to_array(t).astype(np.float64) for t in g.initializer}
    consts = {}
    real_inputs = [i for i in g.input if i.name not in inits]
    assert len(real_inputs) == 1
    dims = [d.dim_value for d in real_inputs[0].type.tensor_type.shape.dim]
    shape = tuple(dims[1:])
    layers = []
    nodes = list(g.node)
    for idx, node in enumerate(nodes):
        name = node.name or f"{node.op_type}_{idx}"
        at = _attrs(node)
        op = node.op_type
        if op == "Constant":
            consts[node.output[0]] = numpy_helper.to_array(at["value"])
            continue
        if op == "Identity" and node.input[0] in inits:  # an alias of a parameter
            inits[node.output[0]] = inits[node.input[0]]
            continue
        if op in ("Dropout", "Identity"):
            continue
        if op == "Softmax":
            assert idx == len(nodes) - 1, "Softmax only at the end"
            continue
        if op == "Gemm":
            w = inits[node.input[1]]
            assert at.get("transA", 0) == 0
            w = w if at.get("transB", 0) else w.T  # -> out x in
            w = at.get("alpha", 1.0) * w
            b = at.get("beta", 1.0) * inits[node.input[2]] if len(node.input) > 2 else np.zeros(w.shape[0])
            n_in = int(np.prod(shape))
            assert w.shape[1] == n_in
            layers.append(Layer(name, op, "dense", shape, (w.shape[0],), w.copy(),
                                np.ones(w.shape, dtype=bool), np.broadcast_to(b, (w.shape[0],)).copy()))
            shape = (w.shape[0],)
        elif op == "Conv":
            w = inits[node.input[1]]
            b = inits[node.input[2]] if len(node.input) > 2 else np.zeros(w.shape[0])
            assert at.get("group", 1) == 1
            m, mask, out = _conv_matrix(w, shape, at.get("strides", [1, 1]), at.get("pads", [0, 0, 0, 0]),
                                        at.get("dilations", [1, 1]))
            bias = np.repeat(b, out[1] * out[2])
            layers.append(Layer(name, op, "conv", shape, out, m, mask, bias,
                                attrs=dict(w=w.copy(), b=np.asarray(b, dtype=np.float64).copy(),
                                           strides=list(at.get("strides", [1, 1])),
                                           pads=list(at.get("pads", [0, 0, 0, 0])),
                                           dilations=list(at.get("dilations", [1, 1])))))
            shape = out
        elif op == "BatchNormalization":
            prev = layers[-1]
            assert prev.is_linear, "BatchNorm must follow a conv/dense layer"
            gamma, beta, mean, var = (inits[n] for n in node.input[1:5])
            eps = float(np.float32(at.get("epsilon", 1e-5)))
            scale = gamma / np.sqrt(var + eps)
            per = int(np.prod(shape)) // len(scale)
            s = np.repeat(scale, per)
            prev.matrix = prev.matrix * s[:, None]
            prev.bias = (prev.bias - np.repeat(mean, per)) * s + np.repeat(beta, per)
            if prev.attrs is not None:  # keep the kernel view in step with the folded matrix
                prev.attrs["w"] = prev.attrs["w"] * scale.reshape(-1, 1, 1, 1)
                prev.attrs["b"] = (prev.attrs["b"] - mean) * scale + beta
        elif op == "Relu":
            layers.append(Layer(name, op, "relu", shape, shape))
        elif op in ("MaxPool", "AveragePool", "GlobalAveragePool"):
            if op == "GlobalAveragePool":
                kernel, strides, pads = shape[1:], [1, 1], [0, 0, 0, 0]
            else:
                kernel, strides = at["kernel_shape"], at.get("strides", at["kernel_shape"])
                pads = at.get("pads", [0, 0, 0, 0])
                assert at.get("ceil_mode", 0) == 0
            windows, out = _pool_windows(shape, kernel, strides, pads)
            if op == "MaxPool":
                layers.append(Layer(name, op, "maxpool", shape, out, windows=windows,
                                    attrs=dict(kernel=list(kernel), strides=list(strides), pads=list(pads))))
            else:
                n_in = int(np.prod(shape))
                m = np.zeros((len(windows), n_in))
                mask = np.zeros(m.shape, dtype=bool)
                full = kernel[0] * kernel[1]
                for k, win in enumerate(windows):
                    n = full if at.get("count_include_pad", 0) else len(win)
                    m[k, win] = 1.0 / n
                    mask[k, win] = True
                layers.append(Layer(name, op, "avgpool", shape, out, m, mask, np.zeros(len(windows)),
                                    attrs=dict(kernel=list(kernel), strides=list(strides), pads=list(pads))))
            shape = out
        elif op == "Flatten":
            assert at.get("axis", 1) == 1
            out = (int(np.prod(shape)),)
            layers.append(Layer(name, op, "reshape", shape, out))
            shape = out
        else:
            raise ValueError(f"reference: unsupported op {op} in {path}")
    return tuple(dims[1:]), layers


# ----------------------------------------------------------------------------- forward

def forward(layers, x, dtype=np.float64):
    """Activations at every boundary (flat, in dtype), and max-pool winners (first maximum)."""
    acts = [np.asarray(x).astype(dtype).reshape(-1)]
    winners = []
    for L in layers:
        a = acts[-1]
        win = None
        if L.kind in ("dense", "conv", "avgpool"):
            out = L.matrix.astype(dtype) @ a + L.bias.astype(dtype)
        elif L.kind == "relu":
            out = np.maximum(a, 0)
        elif L.kind == "maxpool":
            win = []
            out = np.empty(len(L.windows), dtype=dtype)
            for k, w in enumerate(L.windows):
                best = w[0]
                for j in w[1:]:
                    if a[j] > a[best]:  # strict: ties keep the first in window order
                        best = j
                win.append(best)
                out[k] = a[best]
        else:
            out = a.copy()
        acts.append(out)
        winners.append(win)
    return acts, winners


# ----------------------------------------------------------------------------- rules

@dataclasses.dataclass
class Rule:
    name: str  # epsilon | gamma | zplus | alphabeta | zbox | flat | wsquare
    eps: float = DEFAULT_EPS
    gamma: float = DEFAULT_GAMMA
    alpha: float = 2.0
    beta: float = 1.0
    low: object = 0.0  # float or array with the layer's input size
    high: object = 1.0

    def spec(self):
        if self.name == "epsilon":
            return f"epsilon:{self.eps!r}"
        if self.name == "gamma":
            return f"gamma:{self.gamma!r}"
        if self.name == "alphabeta":
            return f"alphabeta:{self.alpha!r},{self.beta!r}"
        if self.name == "zbox":
            lo = "array" if np.ndim(self.low) else repr(float(self.low))
            hi = "array" if np.ndim(self.high) else repr(float(self.high))
            return f"zbox:{lo},{hi}"
        return self.name


def parse_rule(text, bounds=None):
    """CLI rule string -> Rule. `bounds` maps a zbox bound token (a .npy path) to its array."""
    name, _, arg = text.partition(":")
    if name == "zero":
        return Rule("epsilon", eps=0.0)
    if name == "epsilon":
        return Rule("epsilon", eps=float(arg) if arg else DEFAULT_EPS)
    if name == "gamma":
        return Rule("gamma", gamma=float(arg) if arg else DEFAULT_GAMMA)
    if name == "zplus":
        return Rule("zplus")
    if name == "alphabeta":
        a, b = (float(v) for v in arg.split(",")) if arg else (2.0, 1.0)
        assert a - b == 1.0
        return Rule("alphabeta", alpha=a, beta=b)
    if name == "zbox":
        lo, hi = arg.split(",")
        conv = lambda t: np.asarray(bounds[t], dtype=np.float64).reshape(-1) if bounds and t in bounds else float(t)
        return Rule("zbox", low=conv(lo), high=conv(hi))
    if name in ("flat", "wsquare"):
        return Rule(name)
    raise ValueError(text)


def _stab(z, eps):
    return z + eps * np.where(z >= 0, 1, -1).astype(z.dtype)


def _ratio(r, den, keep=None):
    """c_k = R_k / den_k; 0 where den_k = 0 (possible with eps = 0 only) or keep is False.
    Returns (c, relevance of the units left out)."""
    ok = den != 0
    if keep is not None:
        ok = ok & keep
    c = np.zeros_like(r)
    c[ok] = r[ok] / den[ok]
    return c, r[~ok].sum()


def linear_rule(rule, M, mask, b, a, R, bias_on, z_orig):
    """One linear layer, relevance R (out) -> (R_in, bias share, expected leak).

    M: out x in, b: out, a: input activations, z_orig: the unmodified pre-activation (real
    bias) -- only gamma's sign test reads it. The leak returned is computed from its own
    formula (stabiliser terms + dropped units) so the caller can check
    sum(R) = sum(R_in) + bias + leak independently."""
    dt = M.dtype
    be = b if bias_on else np.zeros_like(b)
    ap, an = np.maximum(a, 0), np.minimum(a, 0)
    Mp, Mn = np.maximum(M, 0), np.minimum(M, 0)
    bp, bn = np.maximum(be, 0), np.minimum(be, 0)
    name = rule.name
    if name == "epsilon":
        eps = dt.type(rule.eps)
        z = M @ a + be
        den = _stab(z, eps)
        c, dropped = _ratio(R, den)
        R_in = a * (M.T @ c)
        bias = (be * c).sum()
        leak = (eps * np.where(z >= 0, 1, -1) * c).sum() + dropped
    elif name in ("zplus", "alphabeta"):
        alpha, beta = (1.0, 0.0) if name == "zplus" else (rule.alpha, rule.beta)
        alpha, beta = dt.type(alpha), dt.type(beta)
        st = dt.type(STABILISER)
        zp = Mp @ ap + Mn @ an + bp
        dp = _stab(zp, st)
        cp, _ = _ratio(R, dp)
        pos = ap * (Mp.T @ cp) + an * (Mn.T @ cp)
        zn = Mn @ ap + Mp @ an + bn
        dn = _stab(zn, st)
        # a unit with z-_k = 0 contributes no negative share
        cn, _ = _ratio(R, dn, keep=(zn != 0))
        neg = ap * (Mn.T @ cn) + an * (Mp.T @ cn)
        R_in = alpha * pos - beta * neg if beta != 0 else alpha * pos
        bias = alpha * (bp * cp).sum() - beta * (bn * cn).sum()
        # sum R = alpha sum R - beta sum R; the rest is what the stabiliser / dropped units keep
        leak = alpha * (st * np.where(zp >= 0, 1, -1) * cp).sum() \
            - beta * (st * np.where(zn >= 0, 1, -1) * cn).sum() - beta * R[zn == 0].sum()
    elif name == "gamma":
        g = dt.type(rule.gamma)
        st = dt.type(STABILISER)
        pos_unit, neg_unit = z_orig > 0, z_orig < 0  # sign test on the unmodified z
        Pp, Pn = M + g * Mp, M + g * Mn  # z>0: a+ with w+g w+, a- with w+g w-
        Np_, Nn = M + g * Mn, M + g * Mp  # z<0: a+ with w+g w-, a- with w+g w+
        bP, bN = be + g * bp, be + g * bn
        dP = Pp @ ap + Pn @ an + bP
        dN = Np_ @ ap + Nn @ an + bN
        cP, _ = _ratio(np.where(pos_unit, R, 0), _stab(dP, st))
        cN, _ = _ratio(np.where(neg_unit, R, 0), _stab(dN, st))
        R_in = ap * (Pp.T @ cP + Np_.T @ cN) + an * (Pn.T @ cP + Nn.T @ cN)
        bias = (bP * cP).sum() + (bN * cN).sum()
        leak = (st * np.where(dP >= 0, 1, -1) * cP).sum() + (st * np.where(dN >= 0, 1, -1) * cN).sum() \
            + R[z_orig == 0].sum()
    elif name == "zbox":
        st = dt.type(STABILISER)
        lo = np.broadcast_to(np.asarray(rule.low, dtype=dt), a.shape)
        hi = np.broadcast_to(np.asarray(rule.high, dtype=dt), a.shape)
        z = M @ a - Mp @ lo - Mn @ hi  # the bias cancels between the three terms
        den = _stab(z, st)
        c, _ = _ratio(R, den)
        R_in = a * (M.T @ c) - lo * (Mp.T @ c) - hi * (Mn.T @ c)
        bias = dt.type(0)
        leak = (st * np.where(z >= 0, 1, -1) * c).sum()
    elif name == "flat":
        st = dt.type(STABILISER)
        ones = mask.astype(dt)
        fan_in = ones.sum(axis=1)  # real inputs only: padding is not a connection
        c, _ = _ratio(R, _stab(fan_in, st))
        R_in = ones.T @ c
        bias = dt.type(0)
        leak = (st * c).sum()
    elif name == "wsquare":
        st = dt.type(STABILISER)
        W2 = M * M
        den = W2.sum(axis=1) + be * be
        c, _ = _ratio(R, _stab(den, st))
        R_in = W2.T @ c
        bias = (be * be * c).sum()
        leak = (st * c).sum()
    else:
        raise ValueError(name)
    return R_in, bias, leak


def lrp(layers, x, rules, bias_on=True, target=None, R0=None, dtype=np.float64, pool_eps=POOL_EPS):
    """Runs LRP. rules: one Rule per linear (dense/conv) layer, in order.

    Returns dict with target, score, boundaries (relevance at every layer boundary: [0] is
    the input, [len(layers)] the output), bias_per_layer, leak_per_layer (expected from the
    formulas), residual_per_layer (sum R_out - sum R_in - bias, measured)."""
    acts, winners = forward(layers, x, dtype)
    logits = acts[-1]
    if target is None:
        target = int(np.argmax(logits))
    if R0 is None:
        R = np.zeros(len(logits), dtype=dtype)
        R[target] = acts[-1][target]
    else:
        R = np.asarray(R0, dtype=dtype).copy()
    n_lin = sum(L.is_linear for L in layers)
    assert len(rules) == n_lin
    bounds = [None] * (len(layers) + 1)
    bounds[-1] = R
    bias_l = [0.0] * len(layers)
    leak_l = [0.0] * len(layers)
    resid_l = [0.0] * len(layers)
    li = n_lin
    for i in range(len(layers) - 1, -1, -1):
        L = layers[i]
        a = acts[i]
        if L.kind in ("dense", "conv"):
            li -= 1
            M, b = L.matrix.astype(dtype), L.bias.astype(dtype)
            z_orig = M @ a + b
            R_in, bias, leak = linear_rule(rules[li], M, L.mask, b, a, R, bias_on, z_orig)
        elif L.kind == "avgpool":
            M = L.matrix.astype(dtype)
            R_in, bias, leak = linear_rule(Rule("epsilon", eps=pool_eps), M, L.mask,
                                           np.zeros(M.shape[0], dtype=dtype), a, R, False, None)
        elif L.kind == "maxpool":
            R_in = np.zeros(len(a), dtype=dtype)
            for k, j in enumerate(winners[i]):
                R_in[j] += R[k]
            bias = leak = dtype(0)
        else:  # relu passes relevance, reshape re-indexes
            R_in = R.copy()
            bias = leak = dtype(0)
        bias_l[i], leak_l[i] = float(bias), float(leak)
        resid_l[i] = float(R.sum() - R_in.sum() - bias)
        R = R_in
        bounds[i] = R
    return dict(target=target, score=float(logits[target]), logits=logits.astype(np.float64), winners=winners, boundaries=bounds,
                bias_per_layer=bias_l, leak_per_layer=leak_l, residual_per_layer=resid_l)
