"""provnn.torch: LRP-0 equals PyTorch's gradient × input on fresh random models."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import provnn  # noqa: E402
import provnn.torch  # noqa: E402


def grad_times_input(module, x, target):
    x = x.clone().requires_grad_(True)
    out = module(x)
    out[0, target].backward()
    return (x.grad * x).detach().numpy()


def mlp():
    return torch.nn.Sequential(
        torch.nn.Linear(12, 20), torch.nn.ReLU(), torch.nn.Linear(20, 16), torch.nn.ReLU(), torch.nn.Linear(16, 5)
    ).double()


def cnn():
    return torch.nn.Sequential(
        torch.nn.Conv2d(2, 4, 3, padding=1), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
        torch.nn.Conv2d(4, 6, 3), torch.nn.ReLU(), torch.nn.Flatten(), torch.nn.Linear(6 * 2 * 2, 7),
    ).double()


@pytest.mark.parametrize("make,shape", [(mlp, (1, 12)), (cnn, (1, 2, 8, 8))])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_lrp0_equals_gradient_times_input(make, shape, seed):
    torch.manual_seed(seed)
    module = make().eval()
    x = torch.randn(*shape, dtype=torch.float64)
    logits = module(x).detach().numpy()[0]
    for target in (int(np.argmax(logits)), 0):
        ours = provnn.torch.explain(module, x, rule="zero", bias=True, target=target)
        ref = grad_times_input(module, x, target)
        assert ours.shape == ref.shape
        scale = np.max(np.abs(ref))
        assert scale > 0
        np.testing.assert_allclose(ours, ref, rtol=1e-9, atol=1e-9 * scale)
    # The model predicts what torch computes.
    model = provnn.torch.load(module, x)
    np.testing.assert_allclose(model.predict(x.numpy()), module(x).detach().numpy(), rtol=1e-12, atol=1e-12)


def test_batch_and_training_flag_restored():
    torch.manual_seed(3)
    module = torch.nn.Sequential(torch.nn.Linear(6, 4), torch.nn.Dropout(0.5), torch.nn.ReLU(), torch.nn.Linear(4, 3))
    module.train()
    x = torch.randn(5, 6)
    rel = provnn.torch.explain(module, x)
    assert rel.shape == (5, 6) and module.training
    single = provnn.torch.explain(module, x[2:3])
    np.testing.assert_allclose(rel[2:3], single, rtol=1e-12, atol=1e-15)


def test_unsupported_module_raises():
    module = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.Tanh(), torch.nn.Linear(4, 2))
    with pytest.raises(provnn.UnsupportedError) as e:
        provnn.torch.explain(module, torch.randn(1, 4))
    assert "Tanh" in str(e.value)
