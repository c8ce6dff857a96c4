"""A torchvision model zoo at small sizes: every Conv/Linear/attention weight masked at the density by every
generator, the spectral report, a small PAGS population and one masked training step that keeps pruned weights at 0.

Models (PyTorch/torchvision default init, 32x32 inputs, batch 2): ResNet-50 (bottleneck width 8), MobileNetV2
(width 1/4, depthwise), EfficientNet-B0 (width 1/4, depth 1/2; depthwise + squeeze-excitation), RegNetY (grouped +
SE), ConvNeXt (depthwise 7x7, LayerNorm, Linear MLPs) and a VisionTransformer (patch 8, 2 layers, hidden 32,
attention).  ``make bench``-style timing is not asserted here; the file runs in well under a minute on 2 cores.
"""
import warnings

import pytest
import torch
from torch import nn

import pags_core as pc

tvm = pytest.importorskip("torchvision.models")

DENSITY = 0.1


def _vit():
    m = tvm.VisionTransformer(image_size=32, patch_size=8, num_layers=2, num_heads=2, hidden_dim=32, mlp_dim=64,
                              num_classes=10)
    m.heads.head.reset_parameters()  # torchvision starts the head at 0, which would leave no gradient to score
    return m


def _efficientnet():
    from functools import partial

    from torchvision.models.efficientnet import EfficientNet, MBConvConfig
    conf = partial(MBConvConfig, width_mult=0.25, depth_mult=0.5)  # torchvision's B0 stages at width 1/4, depth 1/2
    stages = [conf(1, 3, 1, 32, 16, 1), conf(6, 3, 2, 16, 24, 2), conf(6, 5, 2, 24, 40, 2), conf(6, 3, 2, 40, 80, 3),
              conf(6, 5, 1, 80, 112, 3), conf(6, 5, 2, 112, 192, 4), conf(6, 3, 1, 192, 320, 1)]
    return EfficientNet(stages, dropout=0.2, num_classes=10)


def _regnet():
    from torchvision.models.regnet import BlockParams, RegNet
    return RegNet(BlockParams.from_init_params(depth=4, w_0=16, w_a=8.0, w_m=2.0, group_width=8, se_ratio=0.25),
                  num_classes=10, stem_width=16)


def _convnext():
    from torchvision.models.convnext import CNBlockConfig, ConvNeXt
    return ConvNeXt([CNBlockConfig(16, 32, 1), CNBlockConfig(32, None, 1)], num_classes=10)


# name -> (builder, the generator its PAGS population uses: each generator once over the zoo)
ZOO = {
    "resnet50": (lambda: tvm.resnet50(num_classes=10, width_per_group=8), "snip"),
    "mobilenet_v2": (lambda: tvm.mobilenet_v2(num_classes=10, width_mult=0.25), "synflow"),
    "efficientnet_b0": (_efficientnet, "erk"),
    "regnet_y": (_regnet, "grasp"),
    "convnext": (_convnext, "magnitude"),
    "vit": (_vit, "random"),
}


def _build(name):
    torch.manual_seed(0)
    return pc.add_log_softmax(ZOO[name][0]())


def _expected_weights(model: nn.Module) -> list:
    """Every Conv/Linear weight and attention input projection, listed independently of pags_core."""
    out = []
    for mname, m in model.named_modules():
        prefix = f"{mname}." if mname else ""
        if isinstance(m, nn.MultiheadAttention):
            out.append(prefix + "in_proj_weight")
        elif isinstance(m, (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)):
            out.append(prefix + "weight")
    return out


@pytest.fixture(scope="module")
def data():
    return pc.load_dataset("synthetic", num_classes=10, in_channels=3, image_size=32, n_train=4, n_test=2,
                           val_fraction=0.0)


@pytest.mark.filterwarnings("ignore:.*pruned .* to nothing")
@pytest.mark.parametrize("name", sorted(ZOO))
def test_zoo_masks_spectrum_pags_and_training(name, data):
    model = _build(name)
    expected = _expected_weights(model)
    assert list(pc.prunable_parameters(model, strict=True)) == expected
    geo = pc.layer_geometry(model)
    grouped = [n for n, g in geo.items() if g.groups > 1]
    assert bool(grouped) == (name not in ("resnet50", "vit"))
    if name == "vit":
        assert sum(g.kind == "attention" for g in geo.values()) == 2
    batches = data.sample_batches(1, 2, seed=0)
    n_total = sum(p.numel() for p in pc.prunable_parameters(model).values())

    masks = {}
    for method in ("random", "erk", "snip", "grasp", "synflow", "magnitude"):
        m = pc.generate_mask(model, method, DENSITY, batches=batches, rounds=2, device="cpu")
        assert list(m) == expected, method
        assert m.num_total == n_total and m.num_kept == round(DENSITY * n_total), method
        m.check(model, complete=True)
        masks[method] = m
    for n in grouped + [n for n, g in geo.items() if g.kind == "attention"]:
        assert masks["random"].layer_densities()[n] < 1.0, n  # grouped and attention weights really pruned
    counts = pc.erk_counts({n: g.shape for n, g in geo.items()}, DENSITY)
    assert {n: k for n, (k, _) in masks["erk"].layer_counts().items()} == counts

    df = pc.model_spectrum(model, masks["erk"], progress=False)
    assert list(df.index) == expected  # every prunable weight has its row, attention projections included
    assert [tuple(s) for s in df["shape"]] == [tuple(geo[n].shape) for n in expected]
    assert [int(g) for g in df["groups"]] == [geo[n].groups for n in expected]  # read as its true graph
    assert df["mu0"].notna().all()

    generator = ZOO[name][1]
    res = pc.pags(model, data, generator, DENSITY, population=4, score_batches=1, score_batch_size=2,
                  baseline_batches=1, rounds=2, device="cpu", progress=False)
    assert res.layer_names == expected and list(res.mask) == expected
    assert res.population["kept"].shape == (4, len(expected))
    res.mask.check(model, complete=True)

    before = {n: p.detach().clone() for n, p in pc.prunable_parameters(model).items()}
    recipe = pc.get_recipe("book").replace(batch_size=2, test_batch_size=2, lr=0.05)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        out = pc.train(model, data, recipe, mask=res.mask, device="cpu", max_iters=1, epochs=1, progress=False)
    assert not out.diverged and out.history[-1]["iters"] == 1
    params = dict(model.named_parameters())
    moved = 0
    for n, keep in res.mask.items():
        assert torch.all(params[n][~keep] == 0), n  # pruned weights exactly zero after the step
        moved += int((params[n][keep] != before[n][keep]).sum())
    assert moved > 0  # the step did update kept weights
