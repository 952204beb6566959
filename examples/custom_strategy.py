"""Write a new continual-learning method against the strategy contract and run it in the harness.

The method here is an L2 anchor: after each task, penalise the squared distance to the weights that solved it.
It needs two events of the contract (``penalty`` and ``after_task``) and one line to register it.

    python examples/custom_strategy.py            (about 10 s on a laptop CPU)

The file is also a plugin: ``spikecl run EXP.toml --plugin examples/custom_strategy.py --set
'strategy.methods=["l2"]'`` runs the method from the command line, with ``--resume``, results files and plots.
"""

import argparse
from dataclasses import dataclass

from spikecl.config import experiment_from_dict
from spikecl.continual.report import text_report
from spikecl.continual.runner import ContinualRun
from spikecl.continual.strategies import register
from spikecl.continual.strategy import Strategy
from spikecl.options import option


@dataclass
class L2Options:
    strength: float = option(1.0, low=0.0, doc="weight of the squared distance to the previous task's weights")


class L2Anchor(Strategy):
    name = "l2"
    Options = L2Options
    supports_data_parallel = True        # the penalty depends on the weights alone, equal on every process

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.anchor = None

    def penalty(self):
        if self.anchor is None:
            return None
        # by name: what trains may change between tasks (HLOP and GPM freeze biases after the first)
        drift = (((p - self.anchor[name]) ** 2).sum() for name, p in self.named_trainable() if name in self.anchor)
        return self.options.strength * sum(drift)

    def after_task(self, task, train):
        self.anchor = {name: p.detach().clone() for name, p in self.named_trainable()}

    def state_dict(self):
        return {"anchor": self.anchor}

    def load_state_dict(self, state):
        self.anchor = state["anchor"]


register("l2", L2Anchor)

if __name__ == "__main__":
    argparse.ArgumentParser(description=__doc__,             # --help; no options
                            formatter_class=argparse.RawDescriptionHelpFormatter).parse_args()
    cfg = experiment_from_dict({
        "name": "custom-strategy", "data": {"dataset": "digits"},
        "stream": {"kind": "permuted", "n_tasks": 3}, "network": {"hidden": [128]},
        "train": {"epochs": 6, "batch_size": 32, "eval_every": 40},
        "strategy": {"methods": ["finetune", "l2"], "l2": {"strength": 0.02}}})
    results = [ContinualRun(cfg, method, seed=0).execute() for method in cfg.strategy.methods]
    print(text_report(results))
