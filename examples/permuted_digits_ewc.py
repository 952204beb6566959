"""Build a stream, a spiking network and EWC by hand, train task by task, print the accuracy matrix.

    python examples/permuted_digits_ewc.py        (about 10 s on a laptop CPU)
"""

import argparse

import numpy as np
import torch

from spikecl.config import DataConfig, StreamConfig
from spikecl.continual import metrics
from spikecl.continual.strategies import build_strategy
from spikecl.continual.strategy import Simulation, TaskData
from spikecl.continual.report import format_matrix
from spikecl.data.streams import stream_from_config
from spikecl.snn import build_mlp, evaluate, make_trainer

argparse.ArgumentParser(description=__doc__,                 # --help; no options
                        formatter_class=argparse.RawDescriptionHelpFormatter).parse_args()
T = 4
torch.manual_seed(0)
stream = stream_from_config(StreamConfig(kind="permuted", n_tasks=4, scenario="domain"), DataConfig(dataset="digits"),
                            seed=0)
tasks = [TaskData(t.index, torch.tensor(t.x_train), torch.tensor(t.y_train),
                  torch.zeros(len(t.y_train), dtype=torch.long)) for t in stream]
tests = [(torch.tensor(t.x_test), torch.tensor(t.y_test)) for t in stream]

for method, options in (("finetune", {}), ("ewc", {"ewc": {"lam": 50.0}})):
    torch.manual_seed(0)
    net = build_mlp(64, [128], stream.n_outputs)
    strategy = build_strategy(method, net, options, Simulation(num_steps=T))
    trainer = make_trainer("bptt", net, T)
    rows = [[evaluate(net, x, y, T) for x, y in tests]]
    for task in tasks:
        optimizer = torch.optim.SGD(net.parameters(), lr=0.05, momentum=0.9)
        train = strategy.before_task(task.task, task, tasks[: task.task + 1])
        for epoch in range(8):
            order = torch.randperm(len(train), generator=torch.Generator().manual_seed(epoch))
            for i in range(0, len(train), 32):
                idx = order[i:i + 32]
                x, y, heads = strategy.batch(train.x[idx], train.y[idx], train.heads[idx])
                trainer.train_batch(x, y, heads, None, optimizer, strategy)
        strategy.after_task(task.task, train)
        rows.append([evaluate(net, x, y, T) for x, y in tests])
    acc = np.array(rows)
    print(format_matrix(acc, f"{method}: accuracy %"))
    print(f"ACC {100 * metrics.acc(acc):.1f}%   BWT {100 * metrics.bwt(acc):+.1f} points\n")
