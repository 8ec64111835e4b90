"""`igpg eval all --quick` on the tiny zoo with the tiny generator: every file written with sane contents, and the
held-out guard on every figure the suite reports. Timings are benchmarks: never asserted."""

import json
import math

import pytest
import torch

from igpg.errors import IgpgError
from igpg.evaluation.heldout import TRAIN_ONLY, select_queries
from igpg.zoo import Catalogue

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def quick_run(tiny_zoo, tiny_pipeline, tmp_path_factory):
    """The quick suite through the real CLI, once for the module's checks."""
    import sys

    from igpg.cli import main

    d, _ = tiny_pipeline
    results = tmp_path_factory.mktemp("results")
    argv = sys.argv
    sys.argv = ["igpg", "eval", "all", "--quick", "--zoo", str(tiny_zoo), "--model", str(d / "gen"),
                "--results", str(results)]
    try:
        with pytest.raises(SystemExit) as exit_info:
            main()
            raise SystemExit(0)
    finally:
        sys.argv = argv
    assert exit_info.value.code in (0, None)
    return results


def _load(results, stem):
    text = (results / f"{stem}.json").read_text()

    def refuse(name):  # NaN / Infinity are not JSON: every result file must parse in a strict reader
        raise AssertionError(f"{stem}.json holds {name}")

    return json.loads(text, parse_constant=refuse)


def _acc(v):
    return isinstance(v, float) and 0.0 <= v <= 1.0


def test_every_file_written(quick_run):
    for stem in ("tokenizer", "generator", "fewshot", "finetune", "speed", "suite"):
        assert (quick_run / f"{stem}.json").stat().st_size > 0
        assert (quick_run / f"{stem}.md").read_text().startswith("# ")
    for png in ("generator-scatter", "fewshot", "finetune", "speed"):
        data = (quick_run / f"{png}.png").read_bytes()
        assert data[:8] == PNG_MAGIC and len(data) > 2000
    suite = _load(quick_run, "suite")
    assert suite["quick"] and set(suite["seconds"]) == {"tokenizer", "generator", "fewshot", "finetune", "speed",
                                                        "plots", "total"}
    assert "generator-scatter.png" in suite["files"]["plots"]


def test_fewshot_contents(quick_run):
    r = _load(quick_run, "fewshot")
    assert r["ks"] == [1, 5, 10] and set(r["results"]) == {"1", "5", "10"}
    assert len(r["seeds"]) >= 3 and r["category"] == "held-out tasks"
    for res in r["results"].values():
        for route in ("generated", "scratch", "finetuned"):
            assert _acc(res[route]["mean"]) and res[route]["std"] >= 0 and res[route]["n"] == len(r["seeds"])
        for q in res["per_query"]:
            assert all(_acc(a) for route in ("generated", "scratch", "finetuned") for a in q[route])
            assert len(q["generated"]) == len(r["seeds"])
    md = (quick_run / "fewshot.md").read_text()
    assert "| 1 |" in md and "| 5 |" in md and "| 10 |" in md and "±" in md


def test_finetune_curves(quick_run):
    r = _load(quick_run, "finetune")
    steps = r["steps"]
    assert steps[0] == 0 and all(a < b for a, b in zip(steps, steps[1:]))  # the steps axis is increasing
    for init in ("generated", "retrieved", "random"):
        curve = r["mean"][init]
        assert len(curve) == len(steps) and all(_acc(a) for a in curve)
    assert r["scratch_final"] == r["mean"]["random"][-1]
    for q in r["per_query"]:
        assert all(len(c) == len(steps) and all(_acc(a) for a in c) for c in q["curves"].values())
    for init, reach in r["steps_to_scratch_final"].items():
        assert reach is None or reach in steps
    assert r["steps_to_scratch_final"]["random"] is not None  # scratch reaches its own final accuracy


def test_speed_contents(quick_run):
    r = _load(quick_run, "speed")
    t = r["throughput"]
    assert t["networks"] >= 1 and t["batched_networks_per_s"] > 0 and t["training"]["networks_per_s"] > 0
    assert all(_acc(a) for q in t["per_query"] for a in q["generated_accs"]) and t["networks"] == 2 * t["queries"]
    pts = r["scaling"]["points"]
    assert len(pts) >= 2 and all(p["seconds"] > 0 for p in pts)
    assert [p["params"] for p in pts] == sorted(p["params"] for p in pts)
    assert math.isfinite(r["scaling"]["loglog_slope"])
    assert r["kv_cache"]["archs"] and all(a["identical"] for a in r["kv_cache"]["archs"])  # cache changes nothing


def test_generator_results_feed_the_scatter(quick_run):
    r = _load(quick_run, "generator")
    qs = [q for c in r["categories"].values() for q in c.get("queries", [])]
    assert qs and all(_acc(a) for q in qs for a in q["generated"])


def test_heldout_guard_refuses_training_networks(tiny_zoo, tiny_pipeline):
    """Every suite figure on held-out tasks refuses queries whose networks the catalogue flags as training ones."""
    from igpg.generator import ParameterGenerator
    from igpg.evaluation.heldout import heldout_queries
    from igpg.evaluation.fewshot import run_fewshot
    from igpg.evaluation.finetune import run_finetune
    from igpg.evaluation.speed import run_speed

    d, _ = tiny_pipeline
    gen = ParameterGenerator.from_pretrained(d / "gen")
    zoo = Catalogue(tiny_zoo)
    training = select_queries(zoo, TRAIN_ONLY, 2, 0)
    held = heldout_queries(zoo, 50)
    zoo.close()
    assert training and held and all(r["task_split"] == "test" for q in held for r in q["rows"])
    for run in (lambda q: run_fewshot(gen, tiny_zoo, ks=(1,), seeds=(0,), steps=1, queries=q),
                lambda q: run_finetune(gen, tiny_zoo, seeds=(0,), steps=(0, 1), queries=q),
                lambda q: run_speed(gen, tiny_zoo, queries=q, scaling_archs=(("digits", "mlp:64-4-3"),),
                                    cache_archs=(("digits", "mlp:64-4-3"),), repeats=1, max_train_steps=1)):
        with pytest.raises(IgpgError, match="refusing to report"):
            run(training)
        with pytest.raises(IgpgError, match="refusing to report"):
            run(held + training)  # one training network among held-out ones is enough to refuse


def test_train_curve_records_accuracy_before_and_after(tiny_zoo):
    from igpg.arch import ArchSpec
    from igpg.evaluation.accuracy import accuracy
    from igpg.evaluation.heldout import task_splits
    from igpg.evaluation.train_curve import train_curve

    zoo = Catalogue(tiny_zoo)
    q = select_queries(zoo, TRAIN_ONLY, 1, 0)[0]
    zoo.close()
    _, train, test = task_splits(q)
    torch.manual_seed(0)
    net = ArchSpec.parse(q["arch"]).build()
    before = accuracy(net, test.x, test.y)
    accs = train_curve(net, train, test, [0, 3, 30], lr=1e-2, batch_size=64, seed=0)
    assert accs[0] == before and accs[-1] > before and len(accs) == 3
    with pytest.raises(IgpgError, match="increasing"):
        train_curve(net, train, test, [5, 3], lr=1e-2, batch_size=64, seed=0)


def test_eval_all_refuses_unknown_piece(cli, tiny_zoo, tmp_path):
    r = cli("eval", "all", "--quick", "--zoo", tiny_zoo, "--results", tmp_path / "r", "--skip", "everything")
    assert r.code == 2 and "unknown piece" in r.err
    assert not (tmp_path / "r").exists()
