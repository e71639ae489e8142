"""provnn.dask on a LocalCluster of two worker processes on loopback, against one process."""

import time

import numpy as np
import pytest

da = pytest.importorskip("dask.array")
distributed = pytest.importorskip("distributed")

import provnn  # noqa: E402
import provnn.dask  # noqa: E402


@pytest.fixture(scope="module")
def client():
    start = time.monotonic()
    cluster = distributed.LocalCluster(
        n_workers=2, processes=True, threads_per_worker=1, host="127.0.0.1", dashboard_address=None
    )
    c = distributed.Client(cluster)
    c.wait_for_workers(2, timeout=60)
    print(f"LocalCluster up in {time.monotonic() - start:.1f} s")
    yield c
    c.close()
    cluster.close()


@pytest.fixture(scope="module")
def samples(data):
    rng = np.random.default_rng(7)
    raw = np.load(data / "inputs" / "cnn_batch_u8.npy").astype(np.float64) / 16.0  # (4, 1, 8, 8)
    noise = rng.uniform(0, 1, size=(10, 1, 8, 8))
    return np.concatenate([raw, noise])  # (14, 1, 8, 8)


def test_explain_on_cluster_equals_single_process(client, data, samples):
    path = data / "models" / "digits_cnn.onnx"
    x = da.from_array(samples, chunks=(3, 1, 8, 8))
    lazy = provnn.dask.explain(path, x, rule="epsilon")
    assert isinstance(lazy, da.Array) and lazy.shape == samples.shape
    result = lazy.compute()
    expected = provnn.Model.load(path).explain(samples, rule="epsilon")
    np.testing.assert_array_equal(result, expected)
    # Both workers took part, and each loaded the model at most once for 5 tasks.
    infos = client.run(lambda: provnn.dask.load_model.cache_info().misses)
    assert len(infos) == 2
    assert all(misses <= 1 for misses in infos.values()), infos
    assert sum(infos.values()) >= 1


def test_semiring_summary_on_cluster(client, data, samples):
    path = data / "models" / "digits_mlp.onnx"
    flat = samples.reshape(14, 64)
    x = da.from_array(flat, chunks=(5, 64))
    result = provnn.dask.evaluate(path, x, semiring="boolean").compute()
    model = provnn.Model.load(path)
    for i in range(flat.shape[0]):
        np.testing.assert_array_equal(result[i], model.circuit(flat[i]).evaluate("boolean"))


def test_explain_options_pass_through(client, data, samples):
    path = data / "models" / "digits_cnn.onnx"
    x = da.from_array(samples[:4], chunks=(2, 1, 8, 8))
    result = provnn.dask.explain(path, x, composite="epsilon-plus", target=3, bias=False).compute()
    expected = provnn.Model.load(path).explain(samples[:4], composite="epsilon-plus", target=3, bias=False)
    np.testing.assert_array_equal(result, expected)
