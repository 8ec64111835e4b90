"""The evaluation's baselines and its held-out guard, on the tiny zoo (real networks)."""

import math

import pytest
import torch

from igpg.arch import ArchSpec
from igpg.data import Task, load_dataset
from igpg.errors import IgpgError
from igpg.evaluation.accuracy import accuracy
from igpg.evaluation.baselines import generic_group_max, generic_rows_net, zoo_mean_net
from igpg.evaluation.heldout import CATEGORIES, TRAIN_ONLY, check_heldout, select_queries
from igpg.generator.base_rows import GenericBank
from igpg.zoo import Catalogue


def test_heldout_guard_refuses_training_networks(tiny_zoo):
    zoo = Catalogue(tiny_zoo)
    train = zoo.rows(TRAIN_ONLY)
    assert train
    check_heldout("seen tasks", train)  # what they are
    for category in ("held-out seeds", "held-out tasks", "held-out architectures", "wider architectures"):
        with pytest.raises(IgpgError, match="refusing to report"):
            check_heldout(category, train)
    for category in CATEGORIES:  # every category's own selection passes its own check
        check_heldout(category, [r for q in select_queries(zoo, CATEGORIES[category], 50, 0) for r in q["rows"]])
    with pytest.raises(IgpgError, match="unknown category"):
        check_heldout("held-out everything", train)


def test_generic_rows_baseline_selects_and_merges_rows(tiny_zoo):
    """Single labels get the generic network's own rows; a group the fitted row the generator's base has too; the
    group-max reference is the generic network's logits maxed over each group."""
    zoo = Catalogue(tiny_zoo)
    rows = zoo.rows("n.role='task'")
    grouped = next(r for r in rows if any(isinstance(x, list) for x in r["labels"]))
    plain = next(r for r in rows if not any(isinstance(x, list) for x in r["labels"]))
    bank = GenericBank.from_zoo(tiny_zoo)
    for q in (plain, grouped):
        net = generic_rows_net(zoo, q)
        assert net is not None
        arch_out = q["arch"].rsplit("-", 1)[0] + "-10"
        gen_row = zoo.rows("n.role='generic' AND n.arch=?", (arch_out,))[0]
        generic = zoo.load(gen_row["net_id"]).state_dict()
        state = net.state_dict()
        for i, lab in enumerate(q["labels"]):
            if isinstance(lab, list):  # fitted to the group's log-sum-exp: not the mean row
                assert not torch.allclose(state["head.weight"][i], generic["head.weight"][lab].mean(0))
            else:
                assert torch.equal(state["head.weight"][i], generic["head.weight"][lab])
                assert torch.equal(state["head.bias"][i], generic["head.bias"][lab])
        if gen_row["arch_split"] == "train":  # the generator's base of the same request has the same rows
            base = bank.base(q["arch"], q["dataset"], q["labels"])
            assert all(torch.equal(state[k], base[k]) for k in state)
        hidden = [k for k in state if not k.startswith("head.")]
        assert hidden and all(torch.equal(state[k], generic[k]) for k in hidden)
        test = Task.from_classes(q["dataset"], q["labels"]).relabel(load_dataset(q["dataset"]).test)
        groups = [x if isinstance(x, list) else [x] for x in q["labels"]]
        with torch.no_grad():
            logits = ArchSpec.parse(arch_out).load(generic)(test.x)
        by_hand = torch.stack([logits[:, g].max(1).values for g in groups], 1).argmax(1)
        assert generic_group_max(zoo, q, test) == int((by_hand == test.y).sum()) / len(test.y)
        if q is plain:  # no group: the maximum is the row itself
            assert generic_group_max(zoo, q, test) == accuracy(net, test.x, test.y)
    assert math.isnan(generic_group_max(zoo, {**plain, "arch": "mlp:64-7-3"}, test))


def test_zoo_mean_baseline_averages_training_networks(tiny_zoo):
    zoo = Catalogue(tiny_zoo)
    train = zoo.rows(TRAIN_ONLY)
    q = train[0]
    same = [r for r in train if r["arch"] == q["arch"] and r["dataset"] == q["dataset"]]
    net = zoo_mean_net(zoo, q, train)
    expect = torch.stack([zoo.load(r["net_id"]).state_dict()["head.bias"] for r in same]).mean(0)
    assert torch.allclose(net.state_dict()["head.bias"], expect)
    assert zoo_mean_net(zoo, {**q, "arch": "mlp:64-7-3"}, train) is None  # no such networks: no baseline


def test_report_says_where_the_generator_does_not_beat_generic_rows():
    from igpg.evaluation.generator_quality import report_markdown

    def cat(ratio, transform):
        return {"n": 3, "trained_acc": 0.9, "generated_acc": 0.9 * ratio, "ratio_mean": ratio,
                "ratio_std_over_seeds": 0.0, "ratio_median": ratio, "ratio_min": ratio, "random_ratio": 0.2,
                "retrieved_ratio": 0.3, "zoo_mean_ratio": 0.2, "generic_rows_ratio": 0.99, "transform_ratio": transform}

    report = {"generator": "g", "zoo": "z", "seeds": [0, 1, 2], "samples": 1,
              "categories": {"held-out seeds": cat(0.80, 0.99), "held-out tasks": cat(0.95, 0.90),
                             "held-out architectures": cat(0.50, float("nan")), "held-out phrasings": cat(0.95, 0.955)}}
    md = report_markdown(report)
    rows = {line.split("|")[1].strip(): line.split("|")[-2].strip() for line in md.splitlines()
            if line.startswith("| held-out")}
    assert rows == {"held-out seeds": "below", "held-out tasks": "above", "held-out architectures": "no baseline",
                    "held-out phrasings": "level"}
    assert "does **not** beat the transform baseline on: held-out seeds." in md


def test_leave_one_dataset_out_is_checked_against_the_generator_checkpoint(tiny_zoo, tiny_pipeline):
    import dataclasses

    from igpg.evaluation.generator_quality import evaluate_generator
    from igpg.evaluation.heldout import category_query
    from igpg.generator import ParameterGenerator
    from igpg.generator.train import load_examples

    d, gcfg = tiny_pipeline
    gen = ParameterGenerator.from_pretrained(d / "gen")
    assert gen.model.cfg.train.exclude_datasets == ()
    with pytest.raises(IgpgError, match="refusing to report 'held-out dataset:digits'"):  # it trained on digits
        evaluate_generator(gen, tiny_zoo, limit=2, seeds=(0,), categories=["held-out dataset:digits"])
    with pytest.raises(IgpgError, match="unknown category"):
        category_query("held-out everything", gen)
    # training leaves the dataset out (here the zoo's only one: nothing is left to train on) or names a bad one
    for excluded, match in ((("digits",), "no training networks"), (("mnist",), "not a dataset of zoo")):
        with pytest.raises(IgpgError, match=match):
            load_examples(tiny_zoo, d / "tok" / "codes", gcfg.override({"train.exclude_datasets": excluded}))
    # a generator whose checkpoint records the dataset as left out is evaluated on every network of it, and the
    # retrieved and zoo-mean baselines, which may only use what it trained on, have nothing to draw from
    gen.model.cfg = gen.model.cfg.override({"train.exclude_datasets": ("digits",)})
    rep = evaluate_generator(gen, tiny_zoo, limit=3, seeds=(0,), categories=["held-out dataset:digits"])
    cat = rep["categories"]["held-out dataset:digits"]
    assert cat["n"] == 3 and 0.0 <= cat["generated_acc"] <= 1.0
    assert all(math.isnan(q["retrieved"]) and math.isnan(q["zoo_mean"]) for q in cat["queries"])


def test_evaluation_reports_the_transform_baseline_ghn_protocol_and_memorisation(tiny_zoo, tiny_pipeline):
    """A held-out width of the tiny zoo (24, wider than its trained 16) is reported as a wider architecture, beside
    the transform baseline (the 16-wide generic network split to 24: exactly its function), one epoch of fine-tuning
    and the memorisation checks; a seen task's nearest training checkpoint is a real one."""
    from igpg.evaluation.generator_quality import evaluate_generator, report_markdown
    from igpg.generator import ParameterGenerator

    d, _ = tiny_pipeline
    gen = ParameterGenerator.from_pretrained(d / "gen")
    rep = evaluate_generator(gen, tiny_zoo, limit=2, seeds=(0,), categories=["seen tasks", "wider architectures"])
    seen, wide = rep["categories"]["seen tasks"], rep["categories"]["wider architectures"]
    assert seen["n"] == 2 and wide["n"] == 2
    zoo = Catalogue(tiny_zoo)
    for q in wide["queries"]:
        assert q["arch"].startswith("mlp:64-24-")
        generic = generic_rows_net(zoo, {**q, "arch": q["arch"].replace("-24-", "-16-")})  # the 16-wide generic
        data = Task.from_classes(q["dataset"], q["labels"]).relabel(load_dataset(q["dataset"]).test)
        assert q["transform"] == accuracy(generic, data.x, data.y)  # an exact widening: the same predictions
        assert q["transform_calibrated"] == [q["transform"]]  # nothing lossy to calibrate
        assert math.isnan(q["generic_rows"]) is False and math.isnan(q["retrieved"])  # no training net of that arch
    for c in (seen, wide):
        for q in c["queries"]:
            assert 0 <= q["gen_epoch1"][0] <= 1 and 0 <= q["random_epoch1"][0] <= 1
            assert q["dist_nearest"][0] > 0
            assert 0 <= q["nearest_noise"][0] <= 1 and 0 <= q["knn_mean"][0] <= 1
    assert all(q["seed_distance"] > 0 for q in seen["queries"])  # seeds 0 and 1 of a training task
    assert all(math.isnan(q["seed_distance"]) for q in wide["queries"])  # the tiny zoo trains one seed there
    md = report_markdown(rep)
    assert "| wider architectures | 2 |" in md and "distance to nearest checkpoint" in md
