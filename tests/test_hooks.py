"""xai_lab.hooks.capture: activations and gradients by name; hooks always removed."""
import pytest
import torch
from torch import nn

from xai_lab.hooks import capture, resolve_layer


def no_hooks(model):
    return all(not m._forward_hooks and not m._backward_hooks for m in model.modules())


def test_activations_and_gradients_match_autograd(single_model, single_test):
    m, x = single_model, single_test.images[:3]
    with capture(m, ["features.12", m.features[14]]) as cap:
        out = m(x)
        out[:, 2].sum().backward()
    manual = m.features[:13](m.normalize(x))  # conv output
    assert torch.allclose(cap.activations["features.12"], manual, atol=1e-5)
    assert torch.allclose(cap.activations["features.14"], m.features[13:](manual), atol=1e-5)
    a = manual.detach().requires_grad_()
    score = m.fc(m.pool(m.features[13:](a)).flatten(1))[:, 2].sum()
    (grad,) = torch.autograd.grad(score, a)
    assert torch.allclose(cap.gradients["features.12"], grad, atol=1e-6)
    assert no_hooks(m)
    m.zero_grad(set_to_none=True)


def test_hooks_removed_when_the_block_raises(single_model):
    with pytest.raises(RuntimeError):
        with capture(single_model, "features.6"):
            single_model(torch.rand(1, 4, 64, 64))  # wrong channel count
    assert no_hooks(single_model)


def test_no_gradient_under_no_grad(single_model, single_test):
    with torch.no_grad(), capture(single_model, "features.6") as cap:
        single_model(single_test.images[:2])
    assert cap["features.6"].shape == (2, 32, 32, 32) and cap.gradients == {}


def test_reused_module_counts_calls():
    relu = nn.ReLU()
    model = nn.Sequential(nn.Linear(3, 3), relu, nn.Linear(3, 3), relu)
    with capture(model, "1") as cap:
        y = model(torch.randn(2, 3))
    assert cap.calls["1"] == 2 and torch.equal(cap["1"], y)


@pytest.mark.parametrize("layer, err", [("features.99", ValueError), (nn.ReLU(), ValueError), (3.0, TypeError)])
def test_bad_layers_raise(single_model, layer, err):
    with pytest.raises(err, match="layer"):
        resolve_layer(single_model, layer)


def test_frozen_restores_modes_and_flags_also_on_error():
    from xai_lab.hooks import frozen

    model = nn.Sequential(nn.Linear(3, 3), nn.BatchNorm1d(3), nn.Dropout())
    model.train()
    model[1].eval()  # mixed modes must come back as they were
    model[0].bias.requires_grad_(False)
    with pytest.raises(RuntimeError):
        with frozen(model):
            assert not model.training and not any(p.requires_grad for p in model.parameters())
            raise RuntimeError("boom")
    assert model.training and not model[1].training and model[2].training
    assert model[0].weight.requires_grad and not model[0].bias.requires_grad
