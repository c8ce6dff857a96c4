"""Models: every registered model builds, masks, runs forward/backward; layer counts; init statistics."""
import math

import pytest
import torch
from torch import nn

from pags_core import MODELS, Mask, generate_mask, init_random, make_model, prunable_layers, prunable_parameters

# name -> (prunable layers, width used here, input size)
EXPECTED = {
    "resnet18": (21, 1 / 8, 14),
    "resnet34": (37, 1 / 8, 32),
    "vgg16": (16, 1 / 8, 32),
    "resnet34_tv": (37, 1.0, 32),
    "vgg16_bn_tv": (16, 1.0, 32),
}
TV_NAMES = {
    "resnet34_tv": {"conv1", "layer1.0.conv1", "layer2.0.downsample.0", "fc"},
    "vgg16_bn_tv": {"features.0", "features.40", "classifier.0", "classifier.6"},
}


def test_registry_lists_every_model():
    assert set(MODELS.names()) == set(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_smoke_build_mask_forward_backward(name):
    n_layers, width, size = EXPECTED[name]
    torch.manual_seed(0)
    model = make_model(name.upper(), num_classes=7, in_channels=3, width=width, init="default")
    assert len(prunable_layers(model)) == n_layers
    if name in TV_NAMES:  # layer names follow torchvision (the ICLR CSVs use them)
        assert TV_NAMES[name] <= set(prunable_layers(model))
    if name.endswith("_tv"):  # 21M / 134M weights: a hand-made mask keeps the test fast
        mask = Mask.ones(model)
        for t in mask.values():
            t.view(-1)[::2] = False
    else:
        mask = generate_mask(model, "random", 0.1, device="cpu")
    mask.check(model).apply_(model)
    model.train()
    out = model(torch.randn(2, 3, size, size))
    assert out.shape == (2, 7)
    assert torch.allclose(out.exp().sum(1), torch.ones(2), atol=1e-5)  # log-probabilities
    out[:, 0].sum().backward()
    params = dict(model.named_parameters())
    for n, m in mask.items():
        assert params[n].grad is not None, n
        assert torch.all(params[n][~m] == 0), n


def test_resnet_width_and_book_size():
    m = make_model("resnet18", num_classes=10, in_channels=1, width=1 / 8)
    assert m.conv1.weight.shape == (8, 1, 3, 3)
    assert m.layer4[0].conv1.weight.shape == (64, 32, 3, 3)
    assert m.linear.weight.shape == (10, 64) and m.linear.bias is None
    assert sum(p.numel() for p in prunable_parameters(m).values()) == 175_048  # PILOT
    assert isinstance(m.layer2[0].shortcut[0], nn.Conv2d) and m.layer2[0].shortcut[0].kernel_size == (1, 1)
    assert len(m.layer1[0].shortcut) == 0  # identity shortcut
    assert not any(isinstance(x, nn.MaxPool2d) for x in m.modules())
    # 14x14 and 32x32 both work thanks to the adaptive pool
    assert m(torch.randn(1, 1, 14, 14)).shape == (1, 10) and m(torch.randn(1, 1, 32, 32)).shape == (1, 10)


def test_vgg16_structure():
    m = make_model("vgg16", num_classes=10)
    convs = [x for x in m.modules() if isinstance(x, nn.Conv2d)]
    assert len(convs) == 13 and all(c.bias is not None for c in convs)
    assert [type(x).__name__ for x in m.classifier] == ["Linear", "ReLU", "BatchNorm1d", "Linear", "ReLU",
                                                        "BatchNorm1d", "Linear"]
    assert not any(isinstance(x, nn.Dropout) for x in m.modules())
    with pytest.raises(ValueError, match="32x32"):
        m.eval()(torch.randn(1, 3, 16, 16))


def test_paper_init_statistics():
    torch.manual_seed(0)
    m = make_model("resnet18", num_classes=10, width=1.0, init="paper")
    for name, mod in m.named_modules():
        if isinstance(mod, nn.Conv2d) and mod.weight.numel() > 20_000:
            kh, kw = mod.kernel_size
            expected = math.sqrt(2.0 / (kh * kw * mod.out_channels))
            assert mod.weight.std().item() == pytest.approx(expected, rel=0.03), name
            assert abs(mod.weight.mean().item()) < 0.05 * expected, name
        if isinstance(mod, nn.BatchNorm2d):
            assert torch.all(mod.weight == 0.5) and torch.all(mod.bias == 0), name
    assert m.linear.weight.std().item() == pytest.approx(0.01, rel=0.05)
    v = make_model("vgg16", num_classes=10, init="paper")
    conv = v.features[0]
    assert torch.all(conv.bias == 0)
    lin = v.classifier[0]
    assert lin.weight.std().item() == pytest.approx(0.01, rel=0.05) and torch.all(lin.bias == 0)
    bn1 = v.classifier[2]
    assert isinstance(bn1, nn.BatchNorm1d) and torch.all(bn1.weight == 1)  # BN1d is not matched by init_random


def test_default_init_keeps_pytorch():
    torch.manual_seed(0)
    m = make_model("resnet18", num_classes=10, width=1 / 8, init="default")
    assert torch.all(m.bn1.weight == 1.0)  # PyTorch default, not 0.5


def test_init_random_works_on_any_module():
    net = nn.Sequential(nn.Conv2d(1, 4, 5), nn.BatchNorm2d(4), nn.Flatten(), nn.Linear(4, 2))
    init_random(net)
    assert torch.all(net[1].weight == 0.5) and torch.all(net[3].bias == 0) and torch.all(net[0].bias == 0)


def test_prunable_layers_on_user_module():
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Sequential(nn.Linear(4, 5)), nn.BatchNorm1d(5))
    assert list(prunable_layers(net)) == ["0", "2.0"]
    assert list(prunable_parameters(net)) == ["0.weight", "2.0.weight"]


def test_make_model_errors_name_value_and_choices():
    with pytest.raises(KeyError, match=r"'resnet99'.*resnet18.*vgg16"):
        make_model("resnet99", num_classes=10)
    with pytest.raises(ValueError, match=r"'xavier'.*paper, default"):
        make_model("resnet18", num_classes=10, init="xavier")
    with pytest.raises(ValueError, match="width"):
        make_model("resnet34_tv", num_classes=10, width=0.5)
    with pytest.raises(ValueError, match="num_classes"):
        make_model("resnet18", num_classes=0)


def test_init_random_on_the_new_layer_kinds_is_as_documented():
    """Conv2d (grouped too) and Linear subclasses are re-drawn; Conv1d/Conv3d, transposed convs and attention input
    projections keep their PyTorch initialisation."""
    from layer_kinds import all_kinds

    net = all_kinds(seed=0)
    before = {k: v.detach().clone() for k, v in net.state_dict().items()}
    init_random(net, generator=torch.Generator().manual_seed(1))
    after = net.state_dict()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert changed == {"conv.weight", "conv.bias", "dw.weight", "dw.bias", "grouped.weight", "grouped.bias",
                       "attn.out_proj.weight", "cross.out_proj.weight", "head.weight", "head.bias"}
    # out_proj.bias starts at 0 in PyTorch already, so zeroing it changes nothing
    assert torch.all(after["attn.out_proj.bias"] == 0) and torch.all(after["head.bias"] == 0)
