"""Tests of xai_lab.explain: peer libraries, analytic properties, slow re-implementations, contract.

Peers: Captum (gradients, integrated gradients, occlusion, neuron deconvolution for explanation by
interpretation), pytorch-grad-cam (Grad-CAM, Grad-CAM++), Zennit (LRP rules). Models are the shipped
flower CNN, small random nets, and randomly initialised torchvision ResNet-18 / VGG-11
(weights=None). Nothing is trained (relevant units are fitted, a regression, not a training).
"""
from __future__ import annotations

import copy
import math
from functools import partial
from types import SimpleNamespace

import pytest
import torch
from torch import nn

from xai_lab import data, explain as E, hooks, interpret, models
from xai_lab.explain import lrp_rules
from xai_lab.explain.lime import weighted_ridge
from xai_lab.explain.lrp import LRPLayer

pytestmark = pytest.mark.filterwarnings("ignore:Setting backward hooks on ReLU:UserWarning",
                                        "ignore:.*did not already require gradients:UserWarning")


# ------------------------------------------------------------------------------------------------
# models and data
# ------------------------------------------------------------------------------------------------
class SmallNet(nn.Module):
    """A random conv net with the flower CNN's layout (features, pool, fc), no batch norm."""

    def __init__(self, k=5):
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                                      nn.Conv2d(8, 16, 3, padding=1), nn.ReLU())
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(16, k)

    def forward(self, x):
        return self.fc(self.pool(self.features(x)).flatten(1))


class SeparateReLUBlock(nn.Module):
    """A torchvision BasicBlock rewritten with two non-inplace ReLU modules and ``out + identity``."""

    def __init__(self, block):
        super().__init__()
        self.conv1, self.bn1, self.conv2, self.bn2 = block.conv1, block.bn1, block.conv2, block.bn2
        self.downsample = block.downsample
        self.relu1, self.relu2 = nn.ReLU(), nn.ReLU()

    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        out = self.bn2(self.conv2(self.relu1(self.bn1(self.conv1(x)))))
        return self.relu2(out + identity)


def randomize_batch_norms(model, seed=1):
    g = torch.Generator().manual_seed(seed)
    for b in model.modules():
        if isinstance(b, nn.BatchNorm2d):
            b.running_mean.copy_(torch.randn(b.num_features, generator=g) * 0.1)
            b.running_var.copy_(torch.rand(b.num_features, generator=g) + 0.5)
            b.weight.data.copy_(torch.rand(b.num_features, generator=g) + 0.5)
            b.bias.data.copy_(torch.randn(b.num_features, generator=g) * 0.1)
    return model


def without_inplace_or_reuse(model):
    """The same function with every ReLU a separate, non-inplace module (ResNet blocks rewritten)."""
    from torchvision.models.resnet import BasicBlock

    net = copy.deepcopy(model)
    for parent in list(net.modules()):
        for key, child in list(parent._modules.items()):
            if isinstance(child, nn.ReLU):
                parent._modules[key] = nn.ReLU()
            elif isinstance(child, BasicBlock):
                parent._modules[key] = SeparateReLUBlock(child)
    return net.eval()


@pytest.fixture(scope="module")
def flower():
    return models.load("single")


@pytest.fixture(scope="module")
def images():
    d = data.flowers(3, "single", seed=3, split="test")
    return d.images, d.labels


@pytest.fixture(scope="module")
def small():
    torch.manual_seed(0)
    return SmallNet().eval()


@pytest.fixture(scope="module")
def resnet():
    import torchvision

    torch.manual_seed(0)
    return randomize_batch_norms(torchvision.models.resnet18(weights=None, num_classes=10)).eval()


@pytest.fixture(scope="module")
def vgg():
    import torchvision

    torch.manual_seed(0)
    return torchvision.models.vgg11(weights=None, num_classes=10).eval()


@pytest.fixture(scope="module")
def plain_twins(resnet, vgg):
    """The ResNet and VGG with separate, non-inplace ReLU modules (same weights)."""
    return {id(resnet): without_inplace_or_reuse(resnet), id(vgg): without_inplace_or_reuse(vgg)}


def random_relevant_units(layer, width, classes=10, per_class=3, seed=6):
    """A RelevantUnits with ``per_class`` random positive weights per class (no fit: random
    networks have nothing to find, and the contract tests only need units to show)."""
    g = torch.Generator().manual_seed(seed)
    w = torch.zeros(width, classes)
    for c in range(classes):
        w[torch.randperm(width, generator=g)[:per_class], c] = torch.rand(per_class, generator=g) + 0.1
    return interpret.RelevantUnits(w, tuple((layer, j) for j in range(width)), 1.0)


@pytest.fixture(scope="module")
def fitted(flower):
    """Relevant units (Oramas 2019) for by_interpretation, by kind of model: the flower CNN's last
    layer, and its last two ReLU layers, fitted on 300 flowers; random ones for the random ResNet
    and VGG."""
    probe = data.flowers(300, "single", seed=2, split="train")
    fit = partial(interpret.relevant_units, progress=False)
    return {"flower": fit(flower, probe, "features.14"),
            "flower2": fit(flower, probe, ["features.10", "features.14"]),
            "resnet": random_relevant_units("layer4", 512), "vgg": random_relevant_units("features.20", 512)}


def extra(name, model, fitted):
    """Arguments a method needs beyond the common ones: by_interpretation needs relevant units."""
    if name != "by_interpretation":
        return {}
    kind = ("flower" if isinstance(model, models.FlowerCNN) else
            "resnet" if hasattr(model, "layer4") else "vgg")
    return {"relevant": fitted[kind]}


def rel_err(a, b):
    return float((a - b).abs().max() / b.abs().max().clamp(min=1e-12))


def minmax(t):
    t = t - t.flatten(1).amin(1)[:, None, None]
    return t / (t.flatten(1).amax(1)[:, None, None] + 1e-7)


FAST = {  # small settings that keep every method quick in tests
    "integrated_gradients": {"steps": 8},
    "smoothgrad": {"n": 3},
    "occlusion": {"window": 16, "stride": 16},
    "rise": {"n_masks": 8},
    "lime": {"n_samples": 12, "segments": "grid", "n_segments": 16},
}
LIGHT = {"integrated_gradients": {"steps": 2}, "smoothgrad": {"n": 2}, "occlusion": {"window": 32},
         "rise": {"n_masks": 4}, "lime": {"n_samples": 6, "segments": "grid"}}


# ------------------------------------------------------------------------------------------------
# peer libraries
# ------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module", params=["flower", "small"])
def net(request, flower, small):
    return {"flower": flower, "small": small}[request.param]


def test_saliency_matches_captum(net, images):
    from captum.attr import Saliency

    x, y = images
    y = y % 5
    ref = Saliency(net).attribute(x.clone().requires_grad_(), target=y, abs=True).amax(1)
    assert rel_err(E.saliency(net, x, y), ref) < 1e-6


@pytest.mark.parametrize("name", ["guided_backprop", "deconvnet"])
def test_modified_gradients_match_captum(net, images, name):
    from captum.attr import Deconvolution, GuidedBackprop

    x, y = images
    y = y % 5
    peer = {"guided_backprop": GuidedBackprop, "deconvnet": Deconvolution}[name](net)
    ref = peer.attribute(x.clone().requires_grad_(), target=y)
    assert rel_err(E.METHODS[name](net, x, y), ref.abs().amax(1)) < 1e-6
    assert rel_err(E.METHODS[name](net, x, y, reduce="sum"), ref.sum(1)) < 1e-6


@pytest.mark.parametrize("method", ["riemann_middle", "gausslegendre"])
def test_integrated_gradients_matches_captum(net, images, method):
    from captum.attr import IntegratedGradients

    x, y = images
    y = y % 5
    ref = IntegratedGradients(net).attribute(x, target=y, n_steps=12, method=method, baselines=0.2)
    ours = E.integrated_gradients(net, x, y, steps=12, method=method, baseline=0.2, batch_size=7)
    assert rel_err(ours, ref.sum(1)) < 1e-5


@pytest.mark.parametrize("window,stride,baseline", [(16, 8, 0.5), (10, 7, 0.0)])
def test_occlusion_matches_captum(net, images, window, stride, baseline):
    from captum.attr import Occlusion

    x, y = images
    y = y % 5
    ref = Occlusion(net).attribute(x, target=y, sliding_window_shapes=(3, window, window),
                                   strides=(3, stride, stride), baselines=baseline, perturbations_per_eval=64)
    ours = E.occlusion(net, x, y, window=window, stride=stride, baseline=baseline, batch_size=100)
    assert rel_err(ours, ref[:, 0]) < 1e-5


@pytest.mark.parametrize("name", ["grad_cam", "grad_cam_pp"])
def test_cams_match_pytorch_grad_cam(net, images, name):
    from pytorch_grad_cam import GradCAM, GradCAMPlusPlus
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    x, y = images
    y = y % 5
    # pytorch-grad-cam divides by (max + 1e-7): maps of the random net are scaled up to make that
    # 1e-7 negligible
    net = copy.deepcopy(net)
    net.fc.weight.data *= 1e4
    peer = {"grad_cam": GradCAM, "grad_cam_pp": GradCAMPlusPlus}[name]
    with peer(model=net, target_layers=[net.features[-1]]) as method:
        ref = torch.from_numpy(method(input_tensor=x, targets=[ClassifierOutputTarget(int(t)) for t in y]))
    # pytorch-grad-cam min-max scales its maps: compare after the same scaling
    assert (minmax(E.METHODS[name](net, x, y)) - ref).abs().max() < 1e-4


def zennit_lrp(body, x, y, k, rule, first, canonizers=()):
    from zennit.attribution import Gradient
    from zennit.composites import SpecialFirstLayerMapComposite
    from zennit.rules import Norm, Pass
    from zennit.types import Activation, AvgPool, Linear

    layer_map = [(Activation, Pass()), (AvgPool, Norm()), (Linear, rule)]
    composite = SpecialFirstLayerMapComposite(layer_map, [] if first is None else [(Linear, first)],
                                              canonizers=list(canonizers))
    with Gradient(model=body, composite=composite) as attributor:
        _, rel = attributor(x.clone().requires_grad_(), lambda out: torch.eye(k)[y] * out)
    return rel.sum(1)


def zennit_rule(rule):
    from zennit.rules import AlphaBeta, Epsilon, Gamma

    return {"0": Epsilon(0.0), "epsilon": Epsilon(1e-6), "gamma": Gamma(0.25),
            "alpha_beta": AlphaBeta(2.0, 1.0)}[rule]


RULES = [("epsilon", "zb"), ("gamma", "zb"), ("alpha_beta", "zb"), ("epsilon", "flat"),
         ("gamma", None), ("alpha_beta", None), ("0", None)]


@pytest.mark.parametrize("rule,input_rule", RULES)
def test_lrp_matches_zennit_with_batch_norm(flower, images, rule, input_rule):
    from zennit.canonizers import SequentialMergeBatchNorm
    from zennit.rules import Flat, ZBox

    x, y = images
    # Zennit's merge leaves each BatchNorm dividing by sqrt(1 + eps); eps = 0 makes its merge exact
    # (with the default eps the two differ by ~4e-5 relative, Zennit's approximation).
    model = copy.deepcopy(flower)
    for b in model.modules():
        if isinstance(b, nn.BatchNorm2d):
            b.eps = 0.0
    # Zennit sees the normalised image, with the z^B bounds mapped by the model's normalisation
    body = nn.Sequential(model.features, model.pool, nn.Flatten(), model.fc).eval()
    low, high = model.normalize(torch.zeros(1, 3, 1, 1)), model.normalize(torch.ones(1, 3, 1, 1))
    first = {"zb": ZBox(low, high), "flat": Flat(), None: None}[input_rule]
    ref = zennit_lrp(body, model.normalize(x), y, 6, zennit_rule(rule), first, [SequentialMergeBatchNorm()])
    assert rel_err(E.lrp(model, x, y, rule=rule, input_rule=input_rule), ref) < 1e-4


@pytest.mark.parametrize("rule,input_rule", RULES)
def test_lrp_matches_zennit_without_batch_norm(small, images, rule, input_rule):
    from zennit.rules import Flat, ZBox

    x, y = images
    y = y % 5
    first = {"zb": ZBox(0.0, 1.0), "flat": Flat(), None: None}[input_rule]
    ref = zennit_lrp(small, x, y, 5, zennit_rule(rule), first)
    assert rel_err(E.lrp(small, x, y, rule=rule, input_rule=input_rule), ref) < 1e-4


def test_lrp_alpha1_beta0_matches_zennit_zplus(small, images):
    from zennit.rules import ZPlus

    x, y = images
    ref = zennit_lrp(small, x, y % 5, 5, ZPlus(), None)
    assert rel_err(E.lrp(small, x, y % 5, rule="alpha_beta", alpha=1, beta=0, input_rule=None), ref) < 1e-4


def slow_lrp_rule(name, w, b, a, r, low=None, high=None, eps=1e-6, gamma=0.25, alpha=2.0, beta=1.0):
    """A rule on a Linear layer the obvious way: every contribution z_ij = a_i w_ji spelled out
    ``(N, J, I)``, the relevance R_i = sum_j (modified z_ij / its z_j) R_j."""
    def stab(d, e):  # d + e sign(d), sign(0) = +1; with e = 0, 0 / 0 -> 0
        d = d + torch.where(d >= 0, e, -e)
        return d if e else torch.where(d == 0, torch.ones_like(d), d)

    z = a[:, None, :] * w[None]  # (N, J, I)
    zj = z.sum(2) + b  # (N, J)
    if name in ("0", "epsilon"):
        return (z / stab(zj, 0.0 if name == "0" else eps)[..., None] * r[..., None]).sum(1)
    if name == "gamma":  # z_ij + gamma z_ij^+ where z_j > 0, z_ij + gamma z_ij^- where z_j < 0
        out = 0
        for part, bias, mask in ((z.clamp(min=0), b.clamp(min=0), zj > 0),
                                 (z.clamp(max=0), b.clamp(max=0), zj < 0)):
            zg = z + gamma * part
            out = out + (zg / stab(zg.sum(2) + b + gamma * bias, 1e-6)[..., None]
                         * (r * mask)[..., None]).sum(1)
        return out
    if name == "alpha_beta":
        zp, zn = z.clamp(min=0), z.clamp(max=0)
        return (alpha * zp / stab(zp.sum(2) + b.clamp(min=0), 1e-6)[..., None]
                - beta * zn / stab(zn.sum(2) + b.clamp(max=0), 1e-6)[..., None]).mul(r[..., None]).sum(1)
    if name == "zb":
        zb = z - low[:, None, :] * w.clamp(min=0)[None] - high[:, None, :] * w.clamp(max=0)[None]
        return (zb / stab(zb.sum(2), 1e-6)[..., None] * r[..., None]).sum(1)
    assert name == "flat"
    spread = torch.ones_like(z) / stab(torch.full_like(zj, a.shape[1]), 1e-6)[..., None]  # 1 / inputs of j
    return (spread * r[..., None]).sum(1)


@pytest.mark.parametrize("name", [*lrp_rules.RULES, *lrp_rules.INPUT_RULES])
def test_lrp_rule_table_matches_slow_formulas(name):
    g = torch.Generator().manual_seed(8)
    linear = nn.Linear(7, 5).double()
    layer = LRPLayer(linear, None, state=None)
    a = torch.randn(3, 7, generator=g, dtype=torch.float64)  # signed inputs
    r = torch.randn(3, 5, generator=g, dtype=torch.float64)
    z = layer.fn(a, layer.weight, layer.bias)
    low, high = a.amin(0, keepdim=True) - 1, a.amax(0, keepdim=True) + 1  # (1, 7) bounds around the inputs
    if name in lrp_rules.RULES:
        rule, takes = lrp_rules.RULES[name]
        params = {"epsilon": 1e-6, "gamma": 0.25, "alpha": 2.0, "beta": 1.0}
        ours = rule(layer, a, z, r, **{p: params[p] for p in takes})
    else:
        bounds = {"low": low, "high": high} if name == "zb" else {}
        ours = lrp_rules.INPUT_RULES[name](layer, a, z, r, **bounds)
    w, b = linear.weight.detach(), linear.bias.detach()
    ref = slow_lrp_rule(name, w, b, a, r, low.expand(3, 7), high.expand(3, 7))
    assert torch.allclose(ours, ref, rtol=1e-10, atol=1e-12), name
    # the table is what lrp() accepts, and each rule states its equation
    assert set(lrp_rules.RULES) == {"0", "epsilon", "gamma", "alpha_beta"}
    fn = lrp_rules.RULES[name][0] if name in lrp_rules.RULES else lrp_rules.INPUT_RULES[name]
    assert "R_" in fn.__doc__


def test_lrp_matches_zennit_on_vgg(vgg):
    from zennit.rules import ZBox
    from zennit.torchvision import VGGCanonizer

    x, y = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(0)), torch.tensor([3])
    ref = zennit_lrp(vgg, x, y, 10, zennit_rule("epsilon"), ZBox(0.0, 1.0), [VGGCanonizer()])
    assert rel_err(E.lrp(vgg, x, y), ref) < 1e-4


def test_lrp_residual_block_matches_zennit(resnet):
    """A torchvision BasicBlock (one in-place ReLU module used twice, ``out += identity``) against
    Zennit on the same function written with two ReLU modules and Zennit's Sum layer. (Given the
    torchvision block itself, Zennit's ResNetCanonizer sends relevance through the reused ReLU
    twice: its maps double at every block.)"""
    from zennit.attribution import Gradient
    from zennit.canonizers import SequentialMergeBatchNorm
    from zennit.composites import SpecialFirstLayerMapComposite
    from zennit.layer import Sum
    from zennit.rules import Norm, Pass, ZBox
    from zennit.types import Activation, AvgPool, Linear

    class Net(nn.Module):
        def __init__(self, block):
            super().__init__()
            self.conv, self.relu, self.block = nn.Conv2d(3, 64, 3, padding=1), nn.ReLU(), block
            self.gap, self.fc = nn.AdaptiveAvgPool2d(1), nn.Linear(64, 4)

        def forward(self, x):
            return self.fc(self.gap(self.block(self.relu(self.conv(x)))).flatten(1))

    class ZennitBlock(nn.Module):
        def __init__(self, b):
            super().__init__()
            self.conv1, self.bn1, self.relu1 = b.conv1, b.bn1, nn.ReLU()
            self.conv2, self.bn2, self.sum, self.relu2 = b.conv2, b.bn2, Sum(), nn.ReLU()

        def forward(self, x):
            out = self.bn2(self.conv2(self.relu1(self.bn1(self.conv1(x)))))
            return self.relu2(self.sum(torch.stack([x, out], -1)))

    torch.manual_seed(3)
    block = copy.deepcopy(resnet.layer1[0])
    for b in (block.bn1, block.bn2):
        b.eps = 0.0  # Zennit's merge is exact only then (see test_lrp_matches_zennit_with_batch_norm)
    net = Net(block).eval()
    twin = copy.deepcopy(net)
    twin.block = ZennitBlock(twin.block)
    x, y = torch.rand(2, 3, 8, 8), torch.tensor([1, 3])
    composite = SpecialFirstLayerMapComposite(
        [(Activation, Pass()), (AvgPool, Norm()), (Sum, Norm()), (Linear, zennit_rule("epsilon"))],
        [(Linear, ZBox(0.0, 1.0))], canonizers=[SequentialMergeBatchNorm()])
    with Gradient(model=twin, composite=composite) as attributor:
        _, ref = attributor(x.clone().requires_grad_(), lambda out: torch.eye(4)[y] * out)
    assert rel_err(E.lrp(net, x, y), ref.sum(1)) < 1e-4


# ------------------------------------------------------------------------------------------------
# analytic properties and slow re-implementations
# ------------------------------------------------------------------------------------------------
def test_cam_equals_grad_cam_up_to_a_positive_factor(flower, images):
    x, y = images
    # Grad-CAM's weights on a GAP + linear head are w_c / (h w): the same map before the ReLU
    h, w = 8, 8  # features.14 of the flower CNN at 64 px
    assert rel_err(E.grad_cam(flower, x, y, relu=False) * (h * w), E.cam(flower, x, y)) < 1e-5
    # with the ReLU too, on a net without downsampling (no upsampling after the ReLU)
    torch.manual_seed(1)
    net = SmallNet()
    net.features = nn.Sequential(*[m for m in net.features if not isinstance(m, nn.MaxPool2d)])
    maps = E.cam(net.eval(), x, y % 5)
    assert rel_err(E.grad_cam(net, x, y % 5) * 64 * 64, torch.relu(maps)) < 1e-5


def test_cam_refuses_models_without_gap_linear_head(vgg):
    x = torch.rand(1, 3, 32, 32)
    with pytest.raises(ValueError, match="fc"):
        E.cam(vgg, x, 0)
    with pytest.raises(ValueError, match="global average pool"):
        E.cam(vgg, x, 0, fc="classifier.6")


def test_integrated_gradients_completeness(flower, images):
    x, y = images[0][:2], images[1][:2]
    maps = E.integrated_gradients(flower, x, y, steps=32, method="gausslegendre")
    with torch.no_grad():
        gap = flower(x).gather(1, y[:, None])[:, 0] - flower(torch.zeros_like(x)).gather(1, y[:, None])[:, 0]
    assert torch.allclose(maps.sum((1, 2)), gap, rtol=0.02, atol=0.02)


def bias_free_residual_net():
    """A bias-free ReLU net with max pooling, a residual sum written ``+=`` and average pooling."""

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1 = nn.Conv2d(3, 8, 3, padding=1, bias=False)
            self.relu = nn.ReLU(inplace=True)  # reused and in place
            self.pool = nn.MaxPool2d(2)
            self.conv2 = nn.Conv2d(8, 8, 3, padding=1, bias=False)
            self.gap = nn.AdaptiveAvgPool2d(1)
            self.fc = nn.Linear(8, 4, bias=False)

        def forward(self, x):
            a = self.pool(self.relu(self.conv1(x)))
            out = self.conv2(a)
            out += a
            return self.fc(self.gap(self.relu(out)).flatten(1))

    torch.manual_seed(2)
    return Net().eval()


def test_lrp0_conserves_relevance_on_bias_free_relu_net():
    net = bias_free_residual_net()
    x, y = torch.rand(3, 3, 16, 16), torch.tensor([0, 1, 3])
    maps = E.lrp(net, x, y, rule="0", input_rule=None)
    with torch.no_grad():
        logits = net(x).gather(1, y[:, None])[:, 0]
    assert torch.allclose(maps.sum((1, 2)), logits, rtol=1e-4, atol=1e-6)
    # contrastive LRP starts from +y_target, -y_foil: it conserves the difference
    foil = torch.tensor([2, 0, 1])
    with torch.no_grad():
        diff = net(x).gather(1, y[:, None])[:, 0] - net(x).gather(1, foil[:, None])[:, 0]
    maps = E.contrastive(net, x, y, foil, method="lrp", rule="0", input_rule=None)
    assert torch.allclose(maps.sum((1, 2)), diff, rtol=1e-4, atol=1e-6)


def test_rise_reproducible_and_matches_slow_version(small, images):
    x, y = images
    y = y % 5
    x, y = x[:2], y[:2]
    a = E.rise(small, x, y, n_masks=20, s=4, p=0.4, seed=7, batch_size=16)
    assert torch.equal(a, E.rise(small, x, y, n_masks=20, s=4, p=0.4, seed=7, batch_size=16))
    # the masks do not depend on the batching (only the order of float sums does)
    assert rel_err(a, E.rise(small, x, y, n_masks=20, s=4, p=0.4, seed=7, batch_size=25)) < 1e-6
    assert rel_err(a, E.rise(small, x, y, n_masks=20, s=4, p=0.4, seed=8)) > 1e-2
    # slow version of the published recipe, mask by mask, image by image
    gen = torch.Generator().manual_seed(7)
    grids = (torch.rand(20, 1, 4, 4, generator=gen) < 0.4).float()
    dx, dy = torch.randint(0, 16, (20,), generator=gen), torch.randint(0, 16, (20,), generator=gen)
    slow = torch.zeros(2, 64, 64)
    with torch.no_grad():
        for m in range(20):
            up = torch.nn.functional.interpolate(grids[m:m + 1], size=(80, 80), mode="bilinear")[0, 0]
            mask = up[dx[m]:dx[m] + 64, dy[m]:dy[m] + 64]
            for i in range(2):
                prob = small((x[i] * mask)[None]).softmax(1)[0, y[i]]
                slow[i] += prob * mask
    assert rel_err(a, slow / (20 * 0.4)) < 1e-5


def test_occlusion_matches_slow_version(small, images):
    x, y = images
    y = y % 5
    window, stride, base = 16, 12, 0.3
    count = math.ceil((64 - window) / stride) + 1
    total, cover = torch.zeros(3, 64, 64), torch.zeros(64, 64)
    with torch.no_grad():
        full = small(x).gather(1, y[:, None])[:, 0]
        for r in range(count):
            for c in range(count):
                r0, c0 = r * stride, c * stride
                xo = x.clone()
                xo[:, :, r0:r0 + window, c0:c0 + window] = base
                drop = full - small(xo).gather(1, y[:, None])[:, 0]
                total[:, r0:r0 + window, c0:c0 + window] += drop[:, None, None]
                cover[r0:r0 + window, c0:c0 + window] += 1
    ours = E.occlusion(small, x, y, window=window, stride=stride, baseline=base, batch_size=17)
    assert rel_err(ours, total / cover) < 1e-5


class CellModel(nn.Module):
    """Logit 0 = 5 x the mean of the pixels of cell ``k`` of a 4 x 4 grid (linear); logit 1 = 0."""

    def __init__(self, k, size=16):
        super().__init__()
        mask = torch.zeros(size, size)
        r, c = divmod(k, 4)
        mask[r * size // 4:(r + 1) * size // 4, c * size // 4:(c + 1) * size // 4] = 1
        self.register_buffer("mask", mask)

    def forward(self, x):
        s = 5 * (x * self.mask).sum((1, 2, 3)) / self.mask.sum()
        return torch.stack([s, torch.zeros_like(s)], 1)


@pytest.mark.parametrize("probability", [False, True])
def test_lime_recovers_the_driving_superpixel(probability):
    x = torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(0)) * 0.5 + 0.5
    model = CellModel(k=6).eval()
    maps = E.lime(model, x, 0, n_samples=300, segments="grid", n_segments=16, hide_color=0.0,
                  probability=probability)
    cell = model.mask.bool()
    assert (maps[:, cell].amin(1) > 0).all()
    assert (maps[:, ~cell].abs().amax(1) < 0.1 * maps[:, cell].amin(1)).all()


def test_lime_ridge_matches_sklearn():
    from sklearn.linear_model import Ridge

    g = torch.Generator().manual_seed(0)
    z = (torch.rand(2, 50, 6, generator=g) < 0.5).float()
    y, w = torch.randn(2, 50, generator=g), torch.rand(2, 50, generator=g)
    ours = weighted_ridge(z, y, w, 1.0)
    for i in range(2):
        ref = Ridge(alpha=1.0).fit(z[i].numpy(), y[i].numpy(), sample_weight=w[i].numpy()).coef_
        assert torch.allclose(ours[i].float(), torch.from_numpy(ref).float(), atol=1e-5)


def test_superpixels_are_contiguous_labels(images):
    x, _ = images
    for segments in ("slic", "grid", torch.randint(5, 9, (64, 64)) * 3):
        seg = E.superpixels(x, segments, n_segments=16)
        assert seg.shape == (3, 64, 64) and seg.dtype == torch.long
        for s in seg:
            assert torch.equal(s.unique(), torch.arange(int(s.max()) + 1))


def test_superpixels_default_gives_enough_segments_on_flowers():
    """SLIC's default number of superpixels keeps the small centre of a 64 px flower apart: on 40
    test flowers of each kind a median of about 50 superpixels and at least 15 (n_segments=50 gave
    a median of 30 and as few as 4)."""
    for variant in ("single", "double"):
        x = data.flowers(40, variant, seed=0, split="test").images
        d = (E.superpixels(x).flatten(1).amax(1) + 1).float()  # superpixels per image
        assert 40 <= d.median() <= 65 and d.min() >= 15, (variant, d.median(), d.min())


def test_smoothgrad_wraps_any_method(flower, images):
    x, y = images[0][:2], images[1][:2]
    # no noise: the wrapped method itself
    assert rel_err(E.smoothgrad(flower, x, y, method=E.guided_backprop, sigma=0.0, n=2),
                   E.guided_backprop(flower, x, y)) < 1e-6
    assert rel_err(E.smoothgrad(flower, x, y, method="grad_cam", sigma=0.0, n=2), E.grad_cam(flower, x, y)) < 1e-6
    # noise of copy i depends on (seed, i) only: batching does not change the result
    a = E.smoothgrad(flower, x, y, n=4, batch_size=3, reduce="sum")
    assert rel_err(a, E.smoothgrad(flower, x, y, n=4, batch_size=100, reduce="sum")) < 1e-5
    assert not torch.equal(a, E.smoothgrad(flower, x, y, n=4, seed=1, reduce="sum"))


def test_contrastive_is_the_difference_of_scores(flower, images):
    x, y = images
    foil = (y + 1) % 6
    for name in ("grad_cam", "saliency", "integrated_gradients", "occlusion", "cam", "lrp"):
        kw = {"integrated_gradients": {"steps": 4}, "occlusion": {"window": 16}}.get(name, {})
        assert rel_err(E.contrastive(flower, x, 2, 5, method=name, **kw),
                       E.METHODS[name](flower, x, lambda z: z[:, 2] - z[:, 5], **kw)) < 1e-5, name
    # per-image classes; Grad-CAM is linear in the score before its ReLU
    a = E.contrastive(flower, x, y, foil, relu=False)
    b = E.grad_cam(flower, x, y, relu=False) - E.grad_cam(flower, x, foil, relu=False)
    assert rel_err(a, b) < 1e-5
    for name in ("rise", "lime"):
        with pytest.raises(ValueError, match="not meaningful"):
            E.contrastive(flower, x, y, foil, method=name)
    with pytest.raises(ValueError, match="foil must differ"):
        E.contrastive(flower, x, y, y)


def test_count_passes(flower, images, fitted):
    x, y = images
    n = len(x)
    expected = {  # method: (kwargs, forward images, backward images)
        "by_interpretation": ({"relevant": fitted["flower2"], "k": 2}, n, 2 * n),  # backward from units
        "saliency": ({}, n, n),
        "integrated_gradients": ({"steps": 5, "batch_size": 4}, 5 * n, 5 * n),
        "occlusion": ({"window": 16, "stride": 16}, n * 17, 0),
        "rise": ({"n_masks": 10}, 10 * n, 0),
        "lime": ({"n_samples": 7, "segments": "grid"}, 7 * n, 0),
        "grad_cam": ({}, n, n),
        "cam": ({}, n, 0),
        "lrp": ({}, n, n),
    }
    for name, (kw, forward, backward) in expected.items():
        with E.count_passes(flower) as passes:
            E.METHODS[name](flower, x, y, **kw)
        assert (passes.forward, passes.backward) == (forward, backward), name
    assert not flower._forward_hooks


def test_normalise(flower, images):
    x, y = images
    for name in ("saliency", "grad_cam", "lrp"):
        maps = E.METHODS[name](flower, x, y, normalise=True)
        assert torch.allclose(maps.abs().flatten(1).amax(1), torch.ones(3))


# ------------------------------------------------------------------------------------------------
# explanation by interpretation
# ------------------------------------------------------------------------------------------------
def slow_by_interpretation(model, x, y, relevant, k):
    """Image by image, unit by unit: energies by interpret.filter_energies, scores by
    RelevantUnits.scores, each unit's deconvnet by Captum's NeuronDeconvolution."""
    from captum.attr import NeuronDeconvolution

    layers = dict(model.named_modules())
    names = list(dict.fromkeys(name for name, _ in relevant.units))
    energies, units = interpret.filter_energies(model, x, names, progress=False)
    out = torch.zeros(len(x), *x.shape[-2:], dtype=x.dtype)
    for i in range(len(x)):
        s = relevant.scores(energies[i:i + 1], int(y[i]))[0]
        for d in torch.argsort(s, descending=True)[:k].tolist():
            if s[d] > 0:
                name, u = units[d]
                g = NeuronDeconvolution(model, layers[name]).attribute(
                    x[i:i + 1], neuron_selector=lambda a: (a[:, u] ** 2).sum((1, 2)) / 2)  # sends A_u down
                out[i] = torch.maximum(out[i], minmax(g.abs().amax(1))[0])
    return out


@pytest.mark.parametrize("which,k,batch_size", [("flower", 3, 64), ("flower2", 3, 2), ("flower2", 5, 64)])
def test_by_interpretation_matches_slow_version(flower, images, fitted, which, k, batch_size):
    # float64: deconvnet ignores the ReLU masks, so its gradient also runs through max-pool windows
    # of near ties, whose winners float32 rounding (a batch of 3 vs 1 image) can flip
    model = copy.deepcopy(flower).double()
    x, y = images[0].double(), images[1]
    fast = E.by_interpretation(model, x, y, relevant=fitted[which], k=k, batch_size=batch_size)
    assert fast.shape == (3, 64, 64) and fast.dtype == torch.float32
    assert torch.equal(fast.flatten(1).amax(1), torch.ones(3)) and fast.min() == 0
    assert rel_err(fast, slow_by_interpretation(model, x, y, fitted[which], k)) < 1e-5


def test_by_interpretation_fits_relevant_units_from_data(odd_flower, flower, images):
    x, y = images
    probe = data.flowers(60, "single", seed=2, split="train")
    before = snapshot(odd_flower)
    maps = E.by_interpretation(odd_flower, x, y, data=probe, layers="features.10", mu=5.0)
    assert_same(odd_flower, before)
    fit = interpret.relevant_units(flower, probe, "features.10", mu=5.0, progress=False)
    assert torch.equal(maps, E.by_interpretation(flower, x, y, relevant=fit))
    default = interpret.relevant_units(flower, probe, "features.14", progress=False)  # the default layer
    assert torch.equal(E.by_interpretation(flower, x, y, data=probe),
                       E.by_interpretation(flower, x, y, relevant=default))


def test_by_interpretation_lands_on_the_discriminative_part(flower, fitted):
    """On the single-feature flowers the class is the centre's colour: the relevant units' maps put
    more of their mass on the centre than its share of the image (measured: every image, and the
    mean mass inside is several times the mean area)."""
    test = data.flowers(32, "single", seed=7, split="test")
    maps = E.by_interpretation(flower, test.images, test.labels, relevant=fitted["flower"])
    inside = (maps * test.gt_masks).flatten(1).sum(1) / maps.flatten(1).sum(1)  # (N,)
    area = test.gt_masks.flatten(1).float().mean(1)
    assert (inside > area).float().mean() >= 0.9, (inside, area)
    assert inside.mean() > 3 * area.mean(), (inside.mean(), area.mean())


def test_by_interpretation_bad_arguments(flower, images, fitted):
    x, y = images
    ru = fitted["flower"]
    truncated = interpret.RelevantUnits(ru.weights[:100], ru.units[:100], ru.mu)
    bad = [
        ({}, ValueError, "relevant .* or data .* got neither"),
        ({"relevant": ru, "data": SimpleNamespace()}, ValueError, "got both"),
        ({"relevant": "units"}, TypeError, "relevant must be an interpret.RelevantUnits, got str"),
        ({"relevant": ru, "layers": "features.10"}, ValueError, "layers goes with data"),
        ({"relevant": ru, "k": 0}, ValueError, "k must be an int >= 1"),
        ({"relevant": ru, "k": 2.0}, TypeError, "k must be an int"),
        ({"relevant": ru, "reduce": "max"}, ValueError, "reduce must be one of"),
        ({"relevant": ru, "target": lambda z: z[:, 0]}, TypeError, "target must be an int class index"),
        ({"relevant": ru, "target": 6}, ValueError, "target must be a class index < 6"),
        ({"relevant": fitted["resnet"]}, ValueError, "layer 'layer4' is not a module"),
        ({"relevant": truncated}, ValueError, "relevant was fitted on other layers"),
    ]
    for kwargs, error, words in bad:
        with pytest.raises(error, match=words):
            E.by_interpretation(**{"model": flower, "x": x, "target": y, **kwargs})
    with pytest.raises(ValueError, match="not meaningful with method='by_interpretation'"):
        E.contrastive(flower, x, y, (y + 1) % 6, method="by_interpretation", relevant=ru)


# ------------------------------------------------------------------------------------------------
# the contract, for every method
# ------------------------------------------------------------------------------------------------
ALL = list(E.METHODS)


@pytest.mark.parametrize("name", ALL)
def test_per_image_targets(flower, images, fitted, name):
    x = images[0][:2]
    targets = torch.tensor([4, 2])
    kw = {**FAST.get(name, {}), **extra(name, flower, fitted)}
    maps = E.METHODS[name](flower, x, targets, **kw)
    assert maps.shape == (2, 64, 64) and maps.dtype == torch.float32
    for i, t in enumerate(targets.tolist()):
        assert rel_err(maps[i], E.METHODS[name](flower, x, t, **kw)[i]) < 1e-5, i


@pytest.mark.parametrize("name", ["cam", "grad_cam", "grad_cam_pp"])
def test_layer_as_module_or_name(flower, images, name):
    x, y = images
    index = 14 if name == "cam" else 10  # CAM needs the layer just before the pooling
    by_name = E.METHODS[name](flower, x, y, layer=f"features.{index}")
    assert torch.equal(by_name, E.METHODS[name](flower, x, y, layer=flower.features[index]))
    if name != "cam":
        assert not torch.equal(by_name, E.METHODS[name](flower, x, y))


def snapshot(model):
    return {
        "modules": [(n, id(m), m.training, m.__dict__.get("forward")) for n, m in model.named_modules()],
        "hooks": [(n, len(m._forward_hooks), len(m._forward_pre_hooks), len(m._backward_hooks),
                   len(m._backward_pre_hooks)) for n, m in model.named_modules()],
        "grad": [(n, p.requires_grad, p.grad is None) for n, p in model.named_parameters()],
        "state": {k: v.clone() for k, v in model.state_dict().items()},
    }


def assert_same(model, before):
    after = snapshot(model)
    for key in ("modules", "hooks", "grad"):
        assert after[key] == before[key], key
    assert all(torch.equal(after["state"][k], v) for k, v in before["state"].items())


@pytest.fixture(scope="module")
def odd_flower(flower):
    """The flower CNN in a state a method must not normalise: train mode with one block in eval,
    one frozen parameter, a user hook."""
    model = copy.deepcopy(flower).train()
    model.features[5].eval()
    model.features[0].bias.requires_grad_(False)
    model.fc.register_forward_hook(lambda *args: None)
    return model


@pytest.mark.parametrize("name", ALL)
def test_model_restored_after_call_and_after_error(odd_flower, resnet, images, fitted, name):
    x, y = images
    for model, layer in ((odd_flower, None), (resnet, "layer4")):
        kw_model = {**LIGHT.get(name, {}), **extra(name, model, fitted)}
        if name in ("cam", "grad_cam", "grad_cam_pp") and layer:
            kw_model["layer"] = layer
        before = snapshot(model)
        xm = x[:2, :, :32, :32] if model is resnet else x[:2]
        xx = xm.clone().requires_grad_(True)
        E.METHODS[name](model, xx, torch.tensor([1, 2]), **kw_model)
        assert_same(model, before)
        assert xx.grad is None and torch.equal(xx.detach(), xm)
        with pytest.raises(ValueError, match="target"):  # raises inside the forward/backward machinery
            E.METHODS[name](model, xm, 99, **kw_model)
        assert_same(model, before)

        def failing(logits):
            raise RuntimeError("boom")

        # by_interpretation takes classes only: a callable target is refused before anything runs
        error, words = (TypeError, "target") if name == "by_interpretation" else (RuntimeError, "boom")
        with pytest.raises(error, match=words):
            E.METHODS[name](model, xm, failing, **kw_model)
        assert_same(model, before)


@pytest.mark.parametrize("name", ALL)
def test_inplace_and_reused_relus_give_the_same_maps(resnet, vgg, plain_twins, fitted, name):
    g = torch.Generator().manual_seed(4)
    for model, n, size, kw in ((resnet, 2, 48, {"layer": "layer4"}), (vgg, 1, 32, {})):
        x, y = torch.rand(n, 3, size, size, generator=g), torch.tensor([2, 7])[:n]
        kw = {**LIGHT.get(name, {}), **(kw if name in ("cam", "grad_cam", "grad_cam_pp") else {}),
              **extra(name, model, fitted)}
        plain = plain_twins[id(model)]
        if name == "cam" and model is vgg:
            with pytest.raises(ValueError):
                E.cam(model, x, y)
            continue
        assert rel_err(E.METHODS[name](model, x, y, **kw), E.METHODS[name](plain, x, y, **kw)) < 1e-5


def test_functional_relu_is_refused_by_relu_rules(images):
    class Functional(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv, self.fc = nn.Conv2d(3, 4, 3), nn.Linear(4, 2)

        def forward(self, x):
            return self.fc(torch.relu(self.conv(x)).mean((2, 3)))

    x, _ = images
    for method in (E.guided_backprop, E.deconvnet):
        with pytest.raises(ValueError, match="functional relu"):
            method(Functional(), x, 0)


def test_all_methods_on_torchvision_models_at_224(resnet, vgg, fitted):
    x = torch.rand(1, 3, 224, 224, generator=torch.Generator().manual_seed(5))
    settings = {"occlusion": {"window": 224}, "rise": {"n_masks": 2}, "smoothgrad": {"n": 1},
                "lime": {"n_samples": 2, "segments": "grid"}, "integrated_gradients": {"steps": 1}}
    for model, layer in ((resnet, "layer4"), (vgg, None)):
        for name in ALL:
            if name == "cam" and model is vgg:
                continue  # VGG's head is not GAP + linear (tested above)
            kw = dict(settings.get(name, {}), **({"layer": layer} if layer and "cam" in name else {}),
                      **extra(name, model, fitted))
            maps = E.METHODS[name](model, x, 3, **kw)
            assert maps.shape == (1, 224, 224) and maps.isfinite().all(), name


BAD = [  # (method, kwargs, error, words in the message)
    ("saliency", {"x": [[0.0]]}, TypeError, "x must be a torch.Tensor"),
    ("saliency", {"x": torch.rand(3, 8, 8)}, ValueError, "x must be a non-empty batch"),
    ("saliency", {"x": torch.zeros(1, 3, 8, 8, dtype=torch.long)}, TypeError, "float"),
    ("saliency", {"target": 2.5}, TypeError, "target must be an int"),
    ("saliency", {"target": torch.tensor([1, 2])}, ValueError, "shape (3,)"),
    ("saliency", {"target": torch.tensor([0.0, 1.0, 2.0])}, TypeError, "integer class"),
    ("saliency", {"target": -1}, ValueError, "target must be a class index"),
    ("saliency", {"target": 6}, ValueError, "target must be a class index < 6"),
    ("saliency", {"target": lambda z: z}, ValueError, "target callable"),
    ("saliency", {"model": "resnet"}, TypeError, "model must be a torch.nn.Module"),
    ("saliency", {"reduce": "max"}, ValueError, "reduce must be one of"),
    ("grad_cam", {"layer": "features.99"}, ValueError, "layer 'features.99'"),
    ("grad_cam", {"layer": 3}, TypeError, "layer must be"),
    ("grad_cam", {"layer": nn.Conv2d(1, 1, 1)}, ValueError, "not a submodule"),
    ("grad_cam", {"layer": "fc"}, ValueError, "(N, C, h, w)"),
    ("integrated_gradients", {"steps": 0}, ValueError, "steps must be an int >= 1"),
    ("integrated_gradients", {"baseline": torch.zeros(2, 3, 64, 64)}, ValueError, "baseline must broadcast"),
    ("integrated_gradients", {"method": "trapezoid"}, ValueError, "method must be one of"),
    ("smoothgrad", {"sigma": -1}, ValueError, "sigma must be"),
    ("smoothgrad", {"method": "nope"}, ValueError, "method must be one of"),
    ("occlusion", {"window": 100}, ValueError, "window must fit"),
    ("occlusion", {"stride": 0}, ValueError, "stride must be an int >= 1"),
    ("occlusion", {"batch_size": 0}, ValueError, "batch_size must be an int >= 1"),
    ("rise", {"p": 0.0}, ValueError, "p must be"),
    ("rise", {"n_masks": 1.5}, TypeError, "n_masks must be an int"),
    ("lime", {"segments": "quickshift"}, ValueError, "segments must be one of"),
    ("lime", {"kernel_width": 0}, ValueError, "kernel_width must be"),
    ("lrp", {"rule": "z+"}, ValueError, "rule must be one of"),
    ("lrp", {"rule": "alpha_beta", "alpha": 2, "beta": 2}, ValueError, "alpha - beta must equal 1"),
    ("lrp", {"input_rule": "wsquare"}, ValueError, "input_rule must be one of"),
    ("lrp", {"low": 1.0, "high": 0.0}, ValueError, "low must be < high"),
    ("cam", {"fc": "features.0"}, ValueError, "fc must be an nn.Linear"),
    ("saliency", {"foo": 1}, TypeError, "foo"),
]


@pytest.mark.parametrize("name,kwargs,error,words", BAD, ids=[f"{b[0]}-{list(b[1])[0]}" for b in BAD])
def test_bad_arguments_name_the_argument(flower, images, name, kwargs, error, words):
    x, y = images
    call = {"model": flower, "x": x, "target": y, **kwargs}
    with pytest.raises(error, match=words.replace("(", r"\(").replace(")", r"\)").replace("+", r"\+")):
        E.METHODS[name](**call)


def test_cam_layer_that_runs_twice_is_refused(resnet):
    with pytest.raises(ValueError, match="ran more than once"):
        E.grad_cam(resnet, torch.rand(1, 3, 32, 32), 0, layer="layer4.1.relu")  # a reused ReLU


def test_lrp_refuses_what_it_cannot_explain():
    x = torch.rand(1, 3, 8, 8)
    first_bn = nn.Sequential(nn.BatchNorm2d(3), nn.Conv2d(3, 4, 3), nn.Flatten(), nn.LazyLinear(2)).eval()
    first_bn(x)  # materialise the lazy layer
    with pytest.raises(ValueError, match="cannot merge BatchNorm '0'"):
        E.lrp(first_bn, x, 0)
    layer_norm = nn.Sequential(nn.Conv2d(3, 4, 3), nn.LayerNorm([4, 6, 6]), nn.Flatten(), nn.Linear(144, 2))
    with pytest.raises(ValueError, match="no rule for '1' \\(LayerNorm\\)"):
        E.lrp(layer_norm.eval(), x, 0)

    class ReLUBeforeBatchNorm(nn.Module):  # registered conv, bn, relu; runs bn(relu(conv(x)))
        def __init__(self):
            super().__init__()
            self.conv, self.bn = nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4)
            self.relu, self.fc = nn.ReLU(), nn.Linear(4, 2)

        def forward(self, x):
            return self.fc(self.bn(self.relu(self.conv(x))).mean((2, 3)))

    with pytest.raises(ValueError, match="does not take that layer's output"):
        E.lrp(ReLUBeforeBatchNorm().eval(), x, 0)
    with pytest.raises(ValueError, match="per-pixel increasing affine"):
        E.lrp(nn.Sequential(nn.Upsample(scale_factor=2), nn.Flatten(), nn.Linear(768, 2)).eval(), x, 0)


def test_layer_required_without_features(resnet):
    with pytest.raises(ValueError, match="layer is required"):
        E.grad_cam(resnet, torch.rand(1, 3, 32, 32), 0)


def test_package_exports():
    """Pass counting is xai_lab.hooks' (one mechanism); every registered method is exported."""
    assert E.count_passes is hooks.count_passes and E.Passes is hooks.Passes
    assert set(E.__all__) <= set(dir(E)) and set(E.METHODS) <= set(E.__all__)


def test_show_draws_images_by_methods(flower, images):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    x, y = images
    fig = E.show(flower, x[:2], y[:2], methods=("saliency", "grad_cam"), options={"grad_cam": {"relu": False}})
    assert len(fig.axes) == 2 * 3
    fig2 = E.show(flower, x[:2], y[:2], methods=("grad_cam",), foil=(y[:2] + 1) % 6)
    assert "not" in fig2.axes[0].get_ylabel()
    from xai_lab.viz import explain as figures  # where the figure is made

    fig3 = figures.show(flower, x[:1], 2, methods=("saliency",), titles=["a flower"])
    assert len(fig3.axes) == 2 and fig3.axes[0].get_ylabel() == "a flower"
    plt.close("all")
