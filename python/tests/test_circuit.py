"""provnn.Circuit: evaluation against numeric LRP and against identities, save/load, errors."""

import numpy as np
import pytest

import provnn
from conftest import load_npy, run_cli_json


@pytest.fixture(scope="module")
def mlp(data):
    return provnn.Model.load(data / "models" / "digits_mlp.onnx"), load_npy(data / "inputs" / "mlp_input_0.npy")[0]


@pytest.fixture(scope="module")
def cnn(data):
    return provnn.Model.load(data / "models" / "digits_cnn_maxpool.onnx"), load_npy(data / "inputs" / "cnn_input_0.npy")[0]


@pytest.mark.parametrize("kw", [{}, {"rule": "zero"}, {"composite": "epsilon-plus"}, {"rule": "gamma", "target": 2}])
def test_real_evaluation_equals_explain(mlp, cnn, kw):
    for model, x in (mlp, cnn):
        c = model.circuit(x, **kw)
        np.testing.assert_allclose(c.evaluate("real"), model.explain(x, **kw), rtol=1e-9, atol=1e-12)


def test_boolean_and_counting_agree_with_nonzero_paths(cnn):
    model, x = cnn
    c = model.circuit(x)
    boolean = c.evaluate("boolean")
    counting = c.evaluate("counting")
    assert boolean.shape == x.shape and set(np.unique(boolean)) <= {0.0, 1.0}
    # A feature has a path exactly when it has at least one path (counting is N, Boolean its support).
    np.testing.assert_array_equal(boolean, (counting > 0).astype(float))
    # Features with a zero value feed no path (their x token is the zero gate).
    assert np.all(boolean[x == 0] == 0)


def test_valuation_deletes_tokens(mlp):
    model, x = mlp
    c = model.circuit(x, rule="zero")
    # Setting every input token to 0 kills every input feature's relevance.
    np.testing.assert_array_equal(c.evaluate("real", valuation={"x[*]": 0}), np.zeros(64))
    # Zeroing the input tokens of half the features zeroes exactly those (R_j has the factor x_j).
    kept = c.evaluate("real", valuation={"x[1*]": 0})
    full = c.evaluate("real")
    for j in range(64):
        expected = 0.0 if str(j).startswith("1") else full[j]
        assert kept[j] == pytest.approx(expected, abs=1e-15)


def test_identity_annotation_keeps_real_values(mlp):
    model, x = mlp
    c = model.circuit(x)
    np.testing.assert_allclose(c.evaluate("real", edge_annotation="identity"), c.evaluate("real"), rtol=1e-12,
                               atol=1e-15)


def test_polynomial_evaluates_to_the_relevance(mlp):
    model, x = mlp
    c = model.circuit(x, rule="zero")
    real = c.evaluate("real")
    feature = int(np.argmax(np.abs(real)))
    p = c.polynomial(feature)
    assert isinstance(p, provnn.Polynomial) and len(p) > 0
    # Universality of N[X]: the polynomial under the natural token values is the relevance.
    nu = c.tokens()
    value = sum(coef * np.prod([nu[t] ** e for t, e in mono.items()]) for coef, mono in p)
    assert value == pytest.approx(real.ravel()[feature], rel=1e-9)
    # The same polynomial through the nx semiring (evaluation, not expansion).
    nx = c.evaluate("nx", max_terms=10**6)
    assert nx[feature] == p and str(nx[feature]) == str(p)
    assert all(isinstance(coef, int) and coef >= 1 for coef, _ in p)
    assert "·" in str(p) and "x[" in str(p)


def test_polynomial_limit(cnn):
    model, x = cnn
    c = model.circuit(x)
    feature = int(np.argmax(np.abs(c.evaluate("real"))))
    with pytest.raises(provnn.LimitError) as e:
        c.polynomial(feature, max_monomials=2)
    assert "2" in str(e.value)
    with pytest.raises(provnn.LimitError):
        c.evaluate("nx", max_terms=2)


def test_circuit_budget(cnn):
    model, x = cnn
    gates = model.circuit(x).info()["gates"]
    assert model.circuit(x, max_gates=gates).info()["gates"] == gates
    with pytest.raises(provnn.LimitError) as e:
        model.circuit(x, max_gates=gates - 1)
    assert f"max_gates = {gates - 1}" in str(e.value)
    with pytest.raises(provnn.LimitError) as e:
        model.circuit(x, max_memory=64 * 1024)
    assert "max_memory" in str(e.value)


@pytest.mark.parametrize("layout", ["fused", "structured"])
def test_fused_and_structured_layouts_give_the_plain_values_and_expand_for_annotations_and_dot(cnn, tmp_path, layout):
    model, x = cnn
    plain = model.circuit(x, rule="alphabeta")
    fused = model.circuit(x, rule="alphabeta", layout=layout)
    assert fused.info()["metadata"]["layout"] == layout
    np.testing.assert_allclose(fused.evaluate("real"), plain.evaluate("real"), rtol=1e-12, atol=1e-15)
    assert np.array_equal(fused.evaluate("counting"), plain.evaluate("counting"))
    for ann in ("threshold:0", "viterbi-maxnorm"):
        sr = "viterbi" if ann == "viterbi-maxnorm" else "counting"
        np.testing.assert_allclose(fused.evaluate(sr, edge_annotation=ann), plain.evaluate(sr, edge_annotation=ann),
                                   rtol=1e-12)
    assert "doublecircle" in fused.to_dot(max_gates=100000)
    fused.save(tmp_path / "f.pvc")
    back = provnn.Circuit.load(tmp_path / "f.pvc")
    np.testing.assert_array_equal(back.evaluate("real"), fused.evaluate("real"))
    with pytest.raises(provnn.Error) as e:
        model.circuit(x, layout="dense")
    assert "plain" in str(e.value)


def test_top_paths_sum_to_the_relevance_when_k_is_large(mlp):
    model, x = mlp
    c = model.circuit(x, rule="zero", bias=False)
    real = c.evaluate("real")
    feature = int(np.argmax(np.abs(real)))
    n_paths = len(c.polynomial(feature))
    paths = c.top_paths(n_paths + 5, feature=feature)
    # With k ≥ the number of monomials every path is listed and the scores sum to R_j.
    assert sum(s for s, _ in paths) == pytest.approx(real.ravel()[feature], rel=1e-9)
    scores = [abs(s) for s, _ in paths]
    assert scores == sorted(scores, reverse=True)
    top3 = c.top_paths(3, feature=feature)
    assert [s for s, _ in top3] == [s for s, _ in paths[:3]]
    overall = c.top_paths(5)
    assert len(overall) == 5 and abs(overall[0][0]) >= abs(top3[0][0])
    assert c.top_paths(1, feature=feature)[0][1] == paths[0][1]


def test_to_dot(mlp):
    model, x = mlp
    c = model.circuit(x)
    feature = int(np.argmax(np.abs(c.evaluate("real"))))
    dot = c.to_dot(feature, max_gates=20)
    assert dot.startswith("digraph") and dot.rstrip().endswith("}")
    assert "more gates" in dot
    assert f"x[{feature}]" in dot


def test_save_load_round_trip(cnn, tmp_path):
    model, x = cnn
    c = model.circuit(x, composite="epsilon-plus", targets=[1, 4])
    path = tmp_path / "c.pvc"
    c.save(path)
    d = provnn.Circuit.load(path)
    same = lambda info: {k: v for k, v in info.items() if k != "bytes"}  # noqa: E731 (capacity differs)
    assert same(d.info()) == same(c.info())
    assert d.input_shape == (1, 8, 8)
    for semiring in ("real", "boolean", "counting", "viterbi", "exact"):
        np.testing.assert_array_equal(d.evaluate(semiring), c.evaluate(semiring))
    both = c.evaluate("real")
    assert both.shape == (2, 1, 8, 8)
    np.testing.assert_allclose(both[1], model.explain(x, composite="epsilon-plus", target=4), rtol=1e-9, atol=1e-12)
    assert d.evaluate("topk:3") == c.evaluate("topk:3")


def test_circuit_evaluation_equals_cli_eval(cli, data, tmp_path):
    model = provnn.Model.load(data / "models" / "digits_cnn.onnx")
    x = load_npy(data / "inputs" / "cnn_input_1.npy")
    c = model.circuit(x)
    path = tmp_path / "c.pvc"
    c.save(path)
    ref = run_cli_json(cli, "eval", path, "--semiring", "viterbi")
    roots = ref[0]["roots"] if isinstance(ref, list) else ref["semirings"][0]["roots"]
    values = [r["value"] for r in roots if r["kind"] == "feature"]
    np.testing.assert_allclose(c.evaluate("viterbi").ravel(), np.asarray(values, dtype=float), rtol=1e-12)


def test_info(mlp):
    model, x = mlp
    info = model.circuit(x).info()
    assert info["feature_roots"] == 64 and info["input_shape"] == (64,)
    assert info["gates"] == sum(info["gates_by_kind"].values())
    assert info["tokens"] == sum(info["tokens_by_kind"].values())
    assert info["metadata"]["input_shape"] == "64"


def test_errors(mlp, tmp_path):
    model, x = mlp
    c = model.circuit(x)
    with pytest.raises(provnn.ParseError) as e:
        c.evaluate("no-such-semiring")
    assert "viterbi" in str(e.value) and "topk" in str(e.value)
    with pytest.raises(provnn.ParseError):
        c.evaluate("real", edge_annotation="bogus")
    with pytest.raises(provnn.Error):
        c.polynomial(64)
    bad = tmp_path / "bad.pvc"
    bad.write_bytes(b"not a circuit")
    with pytest.raises(provnn.ParseError):
        provnn.Circuit.load(bad)
    with pytest.raises(provnn.ProvnnIOError):
        provnn.Circuit.load(tmp_path / "missing.pvc")
    with pytest.raises(provnn.ProvnnIOError):
        c.save(tmp_path / "no" / "such" / "dir" / "c.pvc")
