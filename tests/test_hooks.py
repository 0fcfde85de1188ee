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


# --- the one tap mechanism ----------------------------------------------------------------------
from xai_lab.hooks import StopForward, count_passes, forward_to, input_of, run, swapped, taps  # noqa: E402


def _net():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 5), nn.ReLU(inplace=True), nn.Linear(5, 3))


def test_copy_mode_is_safe_from_later_in_place_operations():
    net, x = _net(), torch.randn(6, 4)
    with taps(net, "0") as t:
        net(x)
    expected = net[0](x).detach()
    assert torch.equal(t["0"].value, expected), "the in-place ReLU after the layer must not change the copy"
    assert t["0"].calls == 1 and no_hooks(net)


def test_leaf_mode_stops_the_backward_at_the_layer():
    net, x = _net(), torch.randn(6, 4, requires_grad=True)
    with taps(net, "0", mode="leaf") as t:
        out = net(x)
    a = t["0"].value
    assert a.is_leaf and a.requires_grad
    (g,) = torch.autograd.grad(out[:, 1].sum(), a)
    manual = (net[0](x) > 0).float() * net[2].weight[1]
    assert torch.allclose(g, manual.detach(), atol=1e-6)
    assert x.grad is None and no_hooks(net)


def test_graph_mode_keeps_the_graph_down_to_the_input():
    net, x = _net(), torch.randn(6, 4, requires_grad=True)
    with taps(net, "0", mode="graph") as t:
        net(x)
    (g,) = torch.autograd.grad(t["0"].value[:, 2].sum(), x)
    assert torch.allclose(g, net[0].weight[2].expand(6, 4))


def test_stop_ends_the_forward_once_every_tap_has_a_value():
    net, x = _net(), torch.randn(2, 4)
    ran = []
    net[2].register_forward_hook(lambda *a: ran.append(1))
    with taps(net, "0", stop=True) as t:
        assert run(net, x) is None
    assert t["0"].calls == 1 and ran == []
    with pytest.raises(StopForward):
        with taps(net, "0", stop=True):
            net(x)  # not through run: the caller sees the stop


def test_forward_to_and_input_of():
    net, x = _net(), torch.randn(3, 4)
    acts = forward_to(net, x, ["0", "2"])
    assert torch.allclose(acts["2"], net(x))
    inp = input_of(net, "2", x)
    assert torch.allclose(inp, net[0](x).clamp(min=0)), "the input of layer 2 is the ReLU's output"
    class Unused(nn.Module):
        def __init__(self):
            super().__init__()
            self.used, self.spare = nn.Linear(4, 4), nn.Linear(4, 4)  # spare: never called

        def forward(self, x):
            return self.used(x)

    unused = Unused()
    with pytest.raises(ValueError, match="did not run"):
        forward_to(unused, x, "spare")


def test_once_refuses_a_reused_module():
    relu = nn.ReLU()
    net = nn.Sequential(nn.Linear(3, 3), relu, nn.Linear(3, 3), relu)
    with pytest.raises(ValueError, match="more than once"):
        with taps(net, "1", once=True):
            net(torch.randn(2, 3))
    assert no_hooks(net)


def test_tap_arguments_are_checked():
    with pytest.raises(ValueError, match="mode"):
        with taps(_net(), "0", mode="clone"):
            pass
    with pytest.raises(ValueError, match="at"):
        with taps(_net(), "0", at="middle"):
            pass


def test_count_passes_and_swapped_restore_the_model():
    net = _net()
    before = [m for m in net.modules()]
    with count_passes(net) as n, swapped(net, lambda m: nn.Identity() if isinstance(m, nn.ReLU) else None):
        out = net(torch.randn(5, 4, requires_grad=True))
        out.sum().backward()
    assert (n.forward, n.backward, n.forward_calls) == (5, 5, 1)
    assert [m for m in net.modules()] == before and no_hooks(net)
