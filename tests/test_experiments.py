"""The experiment layer: run keys from specs, plans in waves, resume after a crash, the same results serially and in
the process pool, a store that heals corrupt files, leases, and PEGS trained from θ_N."""
from __future__ import annotations

import dataclasses
import json
import os

import pandas as pd
import pytest
import torch

import pags_core as pc
from pags_core.experiments import (ExecSpec, ModelSpec, Plan, PlanIncomplete, Train, execute_unit, resolve,
                                   run_key, run_plan, table_plan, table_runs)
from pags_core.experiments.units import Pretrain, Shuffle, Ticket
from pags_core.store import LeaseHeld, RunStore

pytestmark = pytest.mark.filterwarnings("ignore:.*pruned .* layer\\(s\\) to nothing:UserWarning")


def tiny(tmp_path, **kw) -> "pc.experiments.ChapterConfig":
    """A PEGS-chapter configuration that trains in about a second per run (synthetic 8x8 data, width 1/16)."""
    base = dict(dataset="synthetic", seeds=[0], generators=["erk"], population=2, epochs=1, pretrain_iters=[2],
                baselines=[], controls=["shuffle"], executor="serial", store=str(tmp_path / "store"))
    cfg = resolve("pegs", profile="book", **{**base, **kw})
    return dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, width=1 / 16))


def test_a_key_changes_with_every_field_and_holds_threads_and_device(tmp_path):
    cfg = tiny(tmp_path)
    t = table_plan(cfg).rows[0].train
    assert run_key(t) == run_key(dataclasses.replace(t))  # stable
    variants = [dataclasses.replace(t, seed=1), dataclasses.replace(t, exec=ExecSpec("cpu", 2)),
                dataclasses.replace(t, exec=ExecSpec("cuda", 1)),
                dataclasses.replace(t, train=dataclasses.replace(t.train, epochs=2)),
                dataclasses.replace(t, model=dataclasses.replace(t.model, width=0.5)),
                dataclasses.replace(t, ticket=dataclasses.replace(t.ticket, seed=5))]
    keys = {run_key(v) for v in variants}
    assert len(keys) == len(variants) and run_key(t) not in keys
    # a shuffle of a ticket and the ticket itself never share a key, nor do two kinds with equal fields
    s = Shuffle(t.ticket, 0)
    assert run_key(s) != run_key(t.ticket)


def test_plan_waves_follow_the_dependencies(tmp_path):
    tp = table_plan(tiny(tmp_path, baselines=["lth"], lth_rounds=2, controls=["shuffle", "dense",
                                                                               "generator_at_start"]))
    waves = tp.plan.waves()
    where = {u.key: i for i, w in enumerate(waves) for u in w}
    for u in tp.plan.units():
        assert all(where[d.key] < where[u.key] for d in u.deps()), u.label()
    kinds = [{type(u).__name__ for u in w} for w in waves]
    assert "Pretrain" in kinds[0]
    assert all(u.ticket is None for u in waves[0] if isinstance(u, Train))  # only the dense run starts at once
    assert [r.method for r in tp.rows] == ["baseline", "PAGS", "generator@2", "PEGS@2", "shuffle(PAGS)",
                                           "shuffle(PEGS@2)", "dense", "LTH"]  # ERK's own shuffle is ERK again
    snip = table_plan(dataclasses.replace(tiny(tmp_path), generators=("snip",))).rows
    assert [r.method for r in snip][:4] == ["baseline", "PAGS", "PEGS@2", "shuffle(baseline)"]
    assert len({u.key for u in tp.plan.units()}) == len(tp.plan.units())  # each unit once


def test_run_resume_and_identical_results_in_the_pool(tmp_path, monkeypatch):
    cfg = tiny(tmp_path)
    tp = table_plan(cfg)
    store = RunStore(tmp_path / "a")
    # a crash in one training run: the sweep finishes the rest and names the missing run and its error
    real = Train.run
    victim = tp.rows[1].train.key

    def crash(self, ctx):
        if self.key == victim:
            raise RuntimeError("killed mid-run")
        return real(self, ctx)

    monkeypatch.setattr(Train, "run", crash)
    with pytest.raises(PlanIncomplete, match=r"(?s)1 run\(s\).*train PAGS erk seed 0.*killed mid-run"):
        run_plan(tp.plan, "serial", store, progress=False)
    assert [u.label() for u in tp.plan.missing(store)] == ["train PAGS erk seed 0"]
    monkeypatch.setattr(Train, "run", real)
    rep = run_plan(tp.plan, "serial", store, progress=False)
    assert rep.computed == 1 and rep.cached == len(tp.plan) - 1
    assert run_plan(tp.plan, "serial", store, progress=False).computed == 0  # a third run trains nothing
    serial = table_runs(tp, store)
    # the same plan in a fresh store on two spawned workers gives the same numbers
    pool = RunStore(tmp_path / "b")
    rep = run_plan(tp.plan, "processes", pool, progress=False, workers=2)
    assert rep.computed == len(tp.plan) and "processes (2 workers)" in str(rep)
    cols = ["seed", "generator", "method", "test_acc", "best_val_acc", "density_realised", "layers_replaced",
            "ticket_key"]
    pd.testing.assert_frame_equal(table_runs(tp, pool)[cols], serial[cols])
    assert all(p.exists() for p in (u.folder(pool) / "log.txt" for u in tp.plan.units()))  # a log beside each run


def test_pegs_rows_train_from_theta_n_and_the_others_from_theta0(tmp_path):
    cfg = tiny(tmp_path, controls=["generator_at_start"])
    tp = table_plan(cfg)
    store = RunStore(cfg.store)
    run_plan(tp.plan, "serial", store, progress=False)
    theta0 = cfg.model.build(0).state_dict()
    pre = next(u for u in tp.plan.units() if isinstance(u, Pretrain))
    theta_n = pre.weights(store)
    assert any(not torch.equal(theta0[k], theta_n[k]) for k in theta0)
    for r in tp.rows:
        _, start = r.ticket.load(store)
        ref = theta_n if r.pretrain_iters else theta0
        assert all(torch.equal(start[k], ref[k]) for k in ref), r.method
    # the generator's ticket at θ_N is where PEGS started
    gen_n = next(r.ticket for r in tp.rows if r.method == "generator@2")
    pegs_n = next(r.ticket for r in tp.rows if r.method == "PEGS@2")
    assert pegs_n.baseline() == gen_n
    assert pegs_n.population(store)["info"]["population"] == 2


def test_the_shuffle_control_keeps_per_layer_counts_and_moves_positions(tmp_path):
    cfg = tiny(tmp_path)
    tp = table_plan(cfg, methods=["PAGS", "shuffle(PAGS)"])
    store = RunStore(cfg.store)
    run_plan(tp.plan, "serial", store, progress=False)
    (m, s0), (sh, s1) = (r.ticket.load(store) for r in tp.rows)
    assert {n: int(t.sum()) for n, t in m.items()} == {n: int(t.sum()) for n, t in sh.items()}
    assert sh != m and all(torch.equal(s0[k], s1[k]) for k in s0)
    runs = table_runs(tp, store)
    assert runs["density_realised"].nunique() == 1


def test_a_corrupt_store_heals_itself(tmp_path):
    cfg = tiny(tmp_path)
    tp = table_plan(cfg, methods=["baseline"])
    store = RunStore(cfg.store)
    run_plan(tp.plan, "serial", store, progress=False)
    before = table_runs(tp, store)
    ticket, train = tp.rows[0].ticket, tp.rows[0].train
    # a truncated result.json: set aside with a warning naming the file, then recomputed
    (train.folder(store) / "result.json").write_text('{"test_acc": 0.')
    with pytest.warns(RuntimeWarning, match=r"result\.json is unreadable"):
        assert not train.done(store)
    # an empty result: the keys a reader needs are missing
    store.save(train.kind, train.config(), {})
    with pytest.warns(RuntimeWarning, match="missing test_acc"):
        assert run_plan(tp.plan, "serial", store, progress=False).computed == 1
    # a garbage mask of a finished ticket: its dependent fails, the ticket is set aside and recomputed, all in one call
    (ticket.folder(store) / "mask.pt").write_bytes(b"not a torch file")
    (train.folder(store) / "result.json").unlink()
    with pytest.warns(RuntimeWarning, match=r"mask\.pt is unreadable"):
        rep = run_plan(tp.plan, "serial", store, progress=False)
    assert rep.computed == 2
    pd.testing.assert_frame_equal(table_runs(tp, store)[["test_acc"]], before[["test_acc"]])


def test_a_live_lease_stops_a_second_worker(tmp_path):
    cfg = tiny(tmp_path)
    unit = table_plan(cfg, methods=["baseline"]).rows[0].ticket
    store = RunStore(cfg.store)
    lease = unit.folder(store) / "lease.json"
    lease.parent.mkdir(parents=True)
    import socket

    lease.write_text(json.dumps({"host": socket.gethostname(), "pid": os.getppid(), "job": None}))
    with pytest.raises(LeaseHeld, match="being computed"):
        execute_unit(unit, str(store.root))
    lease.write_text(json.dumps({"host": socket.gethostname(), "pid": 2 ** 22 + 12345, "job": None}))  # dead pid
    assert execute_unit(unit, str(store.root))["density_realised"] > 0
    assert not lease.exists()  # released


def test_a_custom_model_factory_is_imported_by_every_worker(tmp_path, monkeypatch):
    mod = tmp_path / "my_models_for_test.py"
    mod.write_text("import torch.nn as nn\n"
                   "def tiny_net(num_classes, in_channels, width):\n"
                   "    c = max(1, int(8 * width))\n"
                   "    return nn.Sequential(nn.Conv2d(in_channels, c, 3, padding=1), nn.ReLU(),\n"
                   "                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(c, num_classes),\n"
                   "                         nn.LogSoftmax(dim=1))\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    cfg = resolve("custom", profile="book", model_factory="my_models_for_test:tiny_net", dataset="synthetic",
                  seeds=[0], generators=["erk"], population=2, epochs=1, executor="processes", workers=1,
                  store=str(tmp_path / "store"))
    assert cfg.model.factory_digest and cfg.model.name == "tiny_net"
    tp = table_plan(dataclasses.replace(cfg, controls=()), methods=["baseline"])
    run_plan(tp.plan, **{**cfg.execution(), "progress": False})
    assert table_runs(tp, RunStore(cfg.store))["test_acc"].iloc[0] >= 0
    with pytest.raises(ImportError, match="no_such_module"):
        ModelSpec("x", factory="no_such_module:f")


def test_a_premise_sample_is_the_mask_pags_scored(tmp_path):
    from pags_core.experiments import premise_plan
    from pags_core.methods import mask_metrics

    cfg = tiny(tmp_path, generators=["snip"], population=4)
    store = RunStore(cfg.store)
    run_plan(table_plan(cfg, methods=["PAGS"]).plan, "serial", store, progress=False)
    pp = premise_plan(cfg, store, ["snip"], seed=0, k=3)
    pop = pp.rows[0].ticket.ticket.population(store)
    fs = pop["population"]["full_spectrum"].mean(axis=1)
    idx = [int(r.method.split()[1]) for r in pp.rows]
    assert idx[0] != idx[-1] and fs[idx].min() == fs.min() and fs[idx].max() == fs.max()  # the range is spanned
    run_plan(pp.plan, "serial", store, progress=False)
    for r in pp.rows:
        mask, start = r.ticket.load(store)
        got = mask_metrics(cfg.model.build(0), [mask], device="cpu")["full_spectrum"][0]
        k = int(r.method.split()[1])
        assert got.tolist() == pop["population"]["full_spectrum"][k].tolist()  # the same mask PAGS scored
    assert len(table_runs(pp, store)) == len(pp.rows)
