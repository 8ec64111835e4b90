"""The evaluation suite beyond `igpg eval tokenizer` / `igpg eval generator` (igpg/evaluation.py): few-shot,
fine-tuning curves, speed and plots, and `igpg eval all` running everything (igpg/suite/run.py).

    from igpg.suite.run import run_all
    run_all("zoos/default", Path("eval/results"))          # what `make eval` runs
"""
