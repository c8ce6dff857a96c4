"""Nothing silent: bad input to the spectral API is a clear error naming the offending value (issue 15)."""
import math

import numpy as np
import pytest
import torch
from torch import nn

from pags_core.spectral import layer_groups, layer_spectrum, model_spectrum, score_population


def tiny_model():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 8, 3, bias=False), nn.ReLU(), nn.Flatten(), nn.Linear(8, 4))


def tiny_mask(model, density=0.5, seed=0):
    g = torch.Generator().manual_seed(seed)
    return {k: torch.rand(p.shape, generator=g) < density for k, p in model.named_parameters() if k.endswith("weight")}


@pytest.mark.parametrize("bad,kind", [(math.nan, "NaN"), (math.inf, "inf"), (-math.inf, "inf")])
def test_non_finite_weight_inside_the_mask(bad, kind):
    m = tiny_model()
    mask = tiny_mask(m)
    idx = torch.nonzero(mask["3.weight"])[:3]
    with torch.no_grad():
        for i, j in idx.tolist():
            m[3].weight[i, j] = bad
    for call in (lambda: model_spectrum(m, mask), lambda: score_population(m, [mask], device="cpu", progress=False)):
        with pytest.raises(ValueError, match=rf"3\.weight: 3 non-finite weights inside the mask \(3 {kind}\)"):
            call()
    w = m[3].weight.detach()
    with pytest.raises(ValueError, match=r"fc: 3 non-finite"):
        layer_spectrum(mask["3.weight"], w, name="fc")
    with pytest.raises(ValueError, match=r"fc: 3 non-finite"):
        layer_groups(mask["3.weight"], w, name="fc")
    # the binary graph needs no weight, and iclr2023 scores the binary graph only: no error there
    assert model_spectrum(m, mask, weights=None)["full_spectrum"].notna().all()
    assert layer_spectrum(mask["3.weight"], w, "iclr2023").n_edges == int(mask["3.weight"].sum())


def test_non_finite_weight_outside_the_mask_is_irrelevant():
    m = tiny_model()
    mask = tiny_mask(m)
    i, j = torch.nonzero(~mask["3.weight"])[0].tolist()
    ref = model_spectrum(m, mask)
    with torch.no_grad():
        m[3].weight[i, j] = math.nan
    assert model_spectrum(m, mask).equals(ref)


def test_mask_keys_that_match_no_layer():
    m = tiny_model()
    mask = tiny_mask(m)
    typo = dict(mask)
    typo["3.wieght"] = typo.pop("3.weight")
    with pytest.raises(ValueError, match=r"1 mask key\(s\) match no prunable layer: \['3\.wieght'\]"):
        model_spectrum(m, typo)
    parallel = {f"module.{k}": v for k, v in mask.items()}
    with pytest.raises(ValueError, match=r"module\.0\.weight.*'module\.' prefix"):
        model_spectrum(m, parallel)
    with pytest.raises(ValueError, match=r"mask 1 key\(s\) match no prunable layer.*3\.wieght"):
        score_population(m, [mask, typo], device="cpu", progress=False)
    stacked = {"module.0.weight": torch.stack([mask["0.weight"]] * 2)}
    with pytest.raises(ValueError, match=r"stacked mask key.*module\.0\.weight.*prefix"):
        score_population(m, stacked, device="cpu", progress=False)
    both = dict(mask, **{"0": mask["0.weight"]})  # the parameter name and the module name of the same layer
    with pytest.raises(ValueError, match=r"layer 0\.weight twice"):
        model_spectrum(m, both)


def test_soft_mask_needs_a_threshold():
    m = tiny_model()
    mask = tiny_mask(m)
    soft = {k: v.float() * 0.5 for k, v in mask.items()}  # a "soft" mask: 0 / 0.5
    with pytest.raises(ValueError, match=r"0\.weight: mask holds \d+ entries that are neither 0 nor 1 \(e\.g\. 0\.5\).*mask_threshold"):
        model_spectrum(m, soft)
    with pytest.raises(ValueError, match=r"neither 0 nor 1 \(e\.g\. 0\.5\)"):
        layer_spectrum(soft["3.weight"], None)
    with pytest.raises(ValueError, match=r"neither 0 nor 1"):
        score_population(m, [soft], device="cpu", progress=False)
    a = model_spectrum(m, soft, mask_threshold=0.25)
    b = model_spectrum(m, mask)
    assert a.equals(b)
    float01 = {k: v.float() for k, v in mask.items()}  # 0/1 floats are a valid mask
    assert model_spectrum(m, float01).equals(b)
    nan_mask = dict(float01)
    nan_mask["3.weight"] = nan_mask["3.weight"].clone()
    nan_mask["3.weight"][0, 0] = math.nan
    with pytest.raises(ValueError, match=r"3\.weight: mask holds 1 NaN entries"):
        model_spectrum(m, nan_mask, mask_threshold=0.5)
    for thr in ("0.5", math.nan, True):
        with pytest.raises(ValueError, match=rf"mask_threshold={thr!r}"):
            model_spectrum(m, mask, mask_threshold=thr)


def test_model_without_prunable_layers_and_empty_population():
    with pytest.raises(ValueError, match=r"model Sequential has no prunable layer"):
        model_spectrum(nn.Sequential(nn.ReLU(), nn.BatchNorm1d(3)), None)
    with pytest.raises(ValueError, match=r"weights mapping has no prunable layer"):
        score_population({}, [{}], device="cpu", progress=False)
    m = tiny_model()
    with pytest.raises(ValueError, match=r"population is empty"):
        score_population(m, [], device="cpu", progress=False)
    with pytest.raises(ValueError, match=r"got list"):
        model_spectrum([torch.ones(3, 3)], None)
    with pytest.raises(ValueError, match=r"mapping parameter name -> bool tensor.*got Tensor"):
        model_spectrum(m, torch.ones(3))


@pytest.mark.parametrize("softness", ["x", math.nan, math.inf, None, True])
def test_bad_softness(softness):
    m = tiny_model()
    for call in (lambda: layer_spectrum(np.ones((4, 4), bool), None, softness=softness),
                 lambda: model_spectrum(m, None, softness=softness),
                 lambda: score_population(m, [None], device="cpu", softness=softness, progress=False)):
        with pytest.raises(ValueError, match=rf"softness={softness!r}: expected a finite real number"):
            call()


def test_unknown_choices_name_the_value_and_the_valid_ones():
    m = tiny_model()
    with pytest.raises(ValueError, match=r"'neurips2024'.*iclr2023, neurips2023"):
        model_spectrum(m, None, "neurips2024")
    with pytest.raises(ValueError, match=r"2023.*iclr2023, neurips2023"):
        layer_spectrum(np.ones((4, 4), bool), None, 2023)
    with pytest.raises(ValueError, match=r"'tight'.*bipartite, regular, spectral, mean_degree"):
        score_population(m, [None], bound="tight", device="cpu", progress=False)
    with pytest.raises(ValueError, match=r"'dense'.*auto, batched, per_mask"):
        score_population(m, [None], engine="dense", device="cpu", progress=False)
    with pytest.raises(ValueError, match=r"groups names unknown layer\(s\) \['conv9'\]"):
        model_spectrum({"w": torch.ones(4, 4)}, None, groups={"conv9": 2})
    with pytest.raises(ValueError, match=r"groups= is read from the model"):
        model_spectrum(m, None, groups={"0.weight": 1})
    with pytest.raises(ValueError, match=r"layer 3\.weight \(sample 1\): mask shape \(4, 7\) does not match"):
        score_population(m, [None, {"3.weight": torch.ones(4, 7, dtype=torch.bool)}], device="cpu", progress=False)
