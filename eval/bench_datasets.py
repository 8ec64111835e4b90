"""How learnable each registered dataset is: a small MLP trained on its train split, judged on its test split.

    .venv/bin/python eval/bench_datasets.py                      # every built-in dataset, 3 seeds
    .venv/bin/python eval/bench_datasets.py ucr_gunpoint mnist8  # some of them

Per dataset: samples per split, classes, per-class counts (train + val + test), and the test accuracy (mean and
min..max over seeds) of an MLP D-64-64-C (ReLU), Adam lr 1e-3, batch 32, validated every epoch, stopped 1000
steps after the best validation accuracy (ties broken by validation loss; counted in steps, so that a UCR set of
16 training samples trains as long as mnist) or after 20000 steps, whose best-epoch weights are tested.
Prints a Markdown table; nothing is written.
"""

from __future__ import annotations

import argparse
import time

import torch
from torch import nn

from igpg.data import list_datasets, load_dataset


def train_mlp(ds, seed: int, hidden=(64, 64), lr=1e-3, batch_size=32, max_steps=20_000, patience=1_000) -> float:
    torch.manual_seed(seed)
    sizes = [ds.num_features, *hidden]
    layers: list[nn.Module] = []
    for a, b in zip(sizes, sizes[1:]):
        layers += [nn.Linear(a, b), nn.ReLU()]
    net = nn.Sequential(*layers, nn.Linear(sizes[-1], ds.num_classes))
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    x, y = ds.train.x, ds.train.y
    gen = torch.Generator().manual_seed(seed)

    def score(split) -> tuple[float, float]:
        with torch.no_grad():
            logits = net(split.x)
        return float((logits.argmax(1) == split.y).float().mean()), -float(nn.functional.cross_entropy(logits, split.y))

    best, best_step, best_state = score(ds.val), 0, {k: v.clone() for k, v in net.state_dict().items()}
    step = 0
    while step < max_steps and step - best_step < patience:
        perm = torch.randperm(len(y), generator=gen)
        for i in range(0, len(y), batch_size):
            idx = perm[i : i + batch_size]
            loss = nn.functional.cross_entropy(net(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            step += 1
        current = score(ds.val)
        if current > best:
            best, best_step, best_state = current, step, {k: v.clone() for k, v in net.state_dict().items()}
    net.load_state_dict(best_state)
    return score(ds.test)[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help="datasets (default: every built-in)")
    parser.add_argument("--seeds", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(1)
    names = args.names or [n for n in list_datasets() if not n.startswith("torchvision:")]
    print("| dataset | input | classes | train / val / test | per class (all splits) | MLP test acc (min..max) | chance |")
    print("|---|---|---|---|---|---|---|")
    for name in names:
        start = time.perf_counter()
        ds = load_dataset(name)
        accs = [train_mlp(ds, seed) for seed in range(args.seeds)]
        counts = torch.cat([ds.train.y, ds.val.y, ds.test.y]).bincount(minlength=ds.num_classes).tolist()
        chance = max(counts) / sum(counts)  # majority class share, over all splits
        shape = "x".join(map(str, ds.input_shape))
        print(f"| `{name}` | {shape} | {ds.num_classes} | {len(ds.train)} / {len(ds.val)} / {len(ds.test)} | "
              f"{' '.join(map(str, counts))} | {sum(accs) / len(accs):.3f} ({min(accs):.3f}..{max(accs):.3f}) | "
              f"{chance:.2f} |", flush=True)
        print(f"<!-- {name}: {time.perf_counter() - start:.1f} s -->", flush=True)


if __name__ == "__main__":
    main()
