"""provnn.Model against the command-line tool on the bundled models, and its error paths."""

import numpy as np
import pytest

import provnn
from conftest import load_npy, run_cli_json

MODELS = {
    "mlp": ("digits_mlp.onnx", "mlp_input_0.npy"),
    "cnn": ("digits_cnn.onnx", "cnn_input_0.npy"),
    "cnn_bn": ("digits_cnn_bn.onnx", "cnn_input_1.npy"),
    "cnn_maxpool": ("digits_cnn_maxpool.onnx", "cnn_input_0.npy"),
}

# (python keyword arguments, the same options on the command line)
CONFIGS = [
    ({}, []),
    ({"rule": "zero"}, ["--rule", "zero"]),
    ({"rule": "gamma:0.5", "target": 3}, ["--rule", "gamma:0.5", "--target", "3"]),
    ({"composite": "epsilon-plus", "bias": False}, ["--composite", "epsilon-plus", "--no-bias"]),
    ({"rules": {"first": "flat", 1: "zplus"}}, ["--rule", "first=flat", "--rule", "1=zplus"]),
    ({"rule": "alphabeta:2,1", "target": 7}, ["--rule", "alphabeta:2,1", "--target", "7"]),
]


@pytest.mark.parametrize("name", sorted(MODELS))
def test_explain_fp32_equals_cli_fp32_and_is_near_fp64(cli, data, name):
    model_file, input_file = MODELS[name]
    model = provnn.Model.load(data / "models" / model_file)
    x = load_npy(data / "inputs" / input_file)
    ours = model.explain(x, rule="gamma", precision="fp32")
    assert ours.shape == x.shape and ours.dtype == np.float64
    ref = run_cli_json(cli, "explain", data / "models" / model_file, "--input", data / "inputs" / input_file,
                       "--rule", "gamma", "--precision", "fp32")
    assert ref["precision"] == "fp32"
    np.testing.assert_array_equal(ours.ravel(), np.asarray(ref["relevance"]).ravel())
    assert np.all(ours == ours.astype(np.float32))  # float values, widened exactly
    fp64 = model.explain(x, rule="gamma")
    scale = np.abs(fp64).max()
    assert 0 < np.abs(ours - fp64).max() <= 1e-4 * scale
    with pytest.raises(provnn.ParseError, match="fp16"):
        model.explain(x, precision="fp16")


@pytest.mark.parametrize("name", sorted(MODELS))
@pytest.mark.parametrize("config", range(len(CONFIGS)))
def test_explain_equals_cli(cli, data, name, config):
    model_file, input_file = MODELS[name]
    kw, flags = CONFIGS[config]
    model = provnn.Model.load(data / "models" / model_file)
    x = load_npy(data / "inputs" / input_file)
    ours = model.explain(x, **kw)
    assert ours.shape == x.shape and ours.dtype == np.float64
    ref = run_cli_json(cli, "explain", data / "models" / model_file, "--input", data / "inputs" / input_file, *flags)
    np.testing.assert_allclose(ours.ravel(), np.asarray(ref["relevance"]).ravel(), rtol=1e-12, atol=1e-15)
    logits = model.predict(x).ravel()
    assert int(np.argmax(logits)) == ref["prediction"]
    assert logits[ref["target"]] == pytest.approx(ref["score"], rel=1e-12)


def test_model_from_bytes_equals_from_path(data):
    path = data / "models" / "digits_mlp.onnx"
    x = load_npy(data / "inputs" / "mlp_input_1.npy")
    a = provnn.Model.load(path)
    b = provnn.Model.load(path.read_bytes())
    assert a.input_shape == (64,) and b.source == "<bytes>"
    np.testing.assert_array_equal(a.explain(x), b.explain(x))


def test_batch_explains_each_sample(data):
    model = provnn.Model.load(data / "models" / "digits_cnn.onnx")
    batch = load_npy(data / "inputs" / "cnn_batch_u8.npy") / 16.0  # (4, 1, 8, 8)
    rel = model.explain(batch, rule="epsilon")
    assert rel.shape == batch.shape
    for i in range(batch.shape[0]):
        np.testing.assert_array_equal(rel[i], model.explain(batch[i]))
    logits = model.predict(batch)
    assert logits.shape == (4, 10)
    np.testing.assert_array_equal(logits[2], model.predict(batch[2]))


def test_layer_relevances_conserve_under_lrp0(data):
    model = provnn.Model.load(data / "models" / "digits_mlp.onnx")
    x = load_npy(data / "inputs" / "mlp_input_0.npy")
    layers = model.layer_relevances(x, rule="zero", bias=False)
    assert len(layers) == len(model.layers) + 1
    np.testing.assert_array_equal(layers[0].reshape(x.shape), model.explain(x, rule="zero", bias=False))
    logits = model.predict(x).ravel()
    target = int(np.argmax(logits))
    expected_initial = np.zeros_like(logits)
    expected_initial[target] = logits[target]
    np.testing.assert_array_equal(layers[-1], expected_initial)
    for r, layer in zip(layers[1:], model.layers):
        assert r.shape == layer["out_shape"]


def test_initial_relevance_target(cli, data):
    model = provnn.Model.load(data / "models" / "digits_mlp.onnx")
    x = load_npy(data / "inputs" / "mlp_input_0.npy")
    r0 = load_npy(data / "inputs" / "initial_relevance.npy")
    ref = run_cli_json(cli, "explain", data / "models" / "digits_mlp.onnx", "--input", data / "inputs" / "mlp_input_0.npy",
                       "--target", data / "inputs" / "initial_relevance.npy")
    np.testing.assert_allclose(model.explain(x, target=r0).ravel(), ref["relevance"], rtol=1e-12, atol=1e-15)


# ---- errors: the same messages as the CLI ----------------------------------------------------

def test_bad_model_bytes_is_parse_error():
    with pytest.raises(provnn.ParseError) as e:
        provnn.Model.load(b"this is not an ONNX model")
    assert "<bytes>" in str(e.value)
    assert issubclass(provnn.ParseError, provnn.Error)


def test_missing_file_is_io_error(tmp_path):
    with pytest.raises(provnn.ProvnnIOError) as e:
        provnn.Model.load(tmp_path / "nope.onnx")
    assert "nope.onnx" in str(e.value)


def test_bad_models_raise_provnn_errors(data):
    bad = sorted((data / "models" / "bad").glob("*.onnx"))
    assert bad
    for path in bad:
        with pytest.raises(provnn.Error):
            provnn.Model.load(path)


def test_unsupported_op_is_unsupported_error(data):
    with pytest.raises(provnn.UnsupportedError) as e:
        provnn.Model.load(data / "models" / "bad" / "unknown_op.onnx")
    assert "unknown_op.onnx" in str(e.value)


def test_nan_weight_is_plain_error(data):
    with pytest.raises(provnn.Error) as e:
        provnn.Model.load(data / "models" / "bad" / "nan_weight.onnx")
    assert not isinstance(e.value, (provnn.ParseError, provnn.UnsupportedError, provnn.LimitError))


def test_wrong_input_shape_is_error(data):
    model = provnn.Model.load(data / "models" / "digits_mlp.onnx")
    with pytest.raises(provnn.Error) as e:
        model.explain(np.zeros(63))
    assert "(63)" in str(e.value) and "(64)" in str(e.value)
    with pytest.raises(provnn.Error):
        model.predict(np.zeros((2, 3)))


def test_nan_input_is_error(data):
    model = provnn.Model.load(data / "models" / "digits_mlp.onnx")
    x = np.zeros(64)
    x[10] = np.nan
    with pytest.raises(provnn.Error) as e:
        model.explain(x)
    assert "10" in str(e.value)


def test_bad_rule_target_and_layer(data):
    model = provnn.Model.load(data / "models" / "digits_mlp.onnx")
    x = np.zeros(64)
    with pytest.raises(provnn.ParseError):
        model.explain(x, rule="nonsense")
    with pytest.raises(provnn.ParseError):
        model.explain(x, composite="no-such-preset")
    with pytest.raises(provnn.ParseError):
        model.explain(x, rules={"no_such_layer": "zero"})
    with pytest.raises(provnn.Error) as e:
        model.explain(x, target=10)
    assert "10 outputs" in str(e.value)
    with pytest.raises(provnn.Error):
        model.explain(x, target=np.ones(3))


def test_semirings_listing():
    rows = provnn.semirings()
    names = [r["name"] for r in rows]
    assert len(rows) == 19
    assert names[0] == "real" and "topk:K" in names and "nx" in names
    boolean = rows[names.index("boolean")]
    assert "commutative" in boolean["properties"] and boolean["question"]


def test_retain_freed_memory_then_circuits_still_equal(data):
    # Process-wide and idempotent; whether it applies depends on the C library and on the
    # user's MALLOC_* settings, so only the type is fixed. Circuits built after it are the same.
    model = provnn.Model.load(data / "models" / "digits_mlp.onnx")
    x = load_npy(data / "inputs" / "mlp_input_0.npy")
    before = model.circuit(x).evaluate("real")
    assert isinstance(provnn.retain_freed_memory(), bool)
    assert isinstance(provnn.retain_freed_memory(), bool)
    after = model.circuit(x).evaluate("real")
    assert np.array_equal(np.asarray(before), np.asarray(after))
