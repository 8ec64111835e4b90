"""Evaluation: `igpg eval tokenizer`, `igpg eval generator` and `igpg eval all` (few-shot, fine-tuning curves,
speed and plots besides).

    from igpg.evaluation.run_all import run_all
    run_all("zoos/default", Path("eval/results"))          # what `make eval` runs
"""
