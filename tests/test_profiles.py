"""Profiles: the book and paper settings, overrides, errors, and one short end-to-end book run."""
import dataclasses

import pytest
import torch

from pags_core import PROFILES, Profile, generate_mask, get_profile, train
from pags_core.store import canonical


def test_book_profile_is_pilot():
    p = get_profile("book")
    assert (p.dataset, p.image_size, p.model, p.width, p.in_channels, p.num_classes) == \
        ("mnist5k", 14, "resnet18", 1 / 8, 1, 10)
    assert (p.density, p.recipe, p.score_batches, p.score_batch_size, p.device) == (0.02, "book", 3, 128, "cpu")
    assert p.population > 0 and len(p.seeds) >= 1 and p.deviations


def test_paper_profile():
    p = get_profile("PAPER")
    assert (p.dataset, p.model, p.width, p.num_classes, p.in_channels) == ("cifar100", "resnet18", 1.0, 100, 3)
    assert (p.density, p.recipe, p.population, p.score_batches, p.score_batch_size) == (0.01, "neurips2023", 2000, 4, 100)
    assert len(p.seeds) == 3 and p.device == "auto" and p.init == "paper"


def test_replace_and_frozen():
    p = get_profile("book")
    q = p.replace(epochs=3, seeds=[5, 6], density=0.05)
    assert (q.epochs, q.seeds, q.density) == (3, (5, 6), 0.05) and p.epochs is None
    with pytest.raises(dataclasses.FrozenInstanceError):
        p.density = 0.5
    with pytest.raises(TypeError, match=r"'densty'.*density"):
        p.replace(densty=0.1)
    assert get_profile(q) is q
    assert canonical(q) != canonical(p)  # usable as a RunStore key


def test_unknown_profile_lists_valid():
    with pytest.raises(KeyError, match=r"'laptop'.*book, paper"):
        get_profile("laptop")
    assert set(PROFILES.names()) == {"book", "paper"}


def test_book_profile_end_to_end_short():
    p = get_profile("book")
    data = p.load_data()
    assert data.input_shape == (1, 14, 14) and data.num_classes == p.num_classes
    model = p.build_model(seed=0)
    again = p.build_model(seed=0)
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), again.state_dict().values()))
    mask = generate_mask(model, "snip", 0.05, batches=data.sample_batches(p.score_batches, p.score_batch_size, 0),
                         device=p.device)
    res = train(model, data, p.recipe, mask=mask, device=p.device, seed=0, epochs=2, progress=False)
    assert not res.diverged and res.iters == 64 and res.final_test_acc > 0.5
