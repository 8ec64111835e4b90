"""Evaluation: how good the tokenizer and the generator are, on networks held out of their training.

    from igpg.evaluation.run_all import run_all
    run_all("zoos/default", Path("eval/results"))          # what `make eval` (`igpg eval all`) runs

What lives where (every result file is written by results.py: plain JSON, NaN as null, plus a markdown table):
    accuracy.py            accuracy of a network on a task (`igpg.evaluate`); a leaf (data only): the zoo's training,
                           the generator's support score and export use it too
    heldout.py             the held-out categories (seen tasks, held-out seeds / phrasings / tasks / architectures,
                           held-out dataset:NAME), query selection and the checks that held out means held out
    baselines.py           what stands beside every generated figure: random, retrieved, zoo mean, generic rows,
                           transform, the GHN protocol and the memorisation checks
    tokenizer_fidelity.py  `igpg eval tokenizer`: does a network still work after encode -> codes -> decode?
    generator_quality.py   `igpg eval generator`: generated vs trained per held-out category, beside the baselines
    train_curve.py         a short Adam run and the test accuracy it reaches at chosen steps (few-shot, fine-tuning,
                           speed)
    fewshot.py             k samples per label: generated, scratch, generated + fine-tuned
    finetune.py            fine-tuning curves from generated, retrieved and random inits
    speed.py               batched generation vs training, time vs parameters, KV cache
    plots.py               the figures, drawn from the JSON files
    results.py             the one result writer (`write_results`, `write_json`) and mean ± std over seeds
    run_all.py             `igpg eval all`: every piece in one run, at full or test size
"""
