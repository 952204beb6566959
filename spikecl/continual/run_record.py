"""What a continual run's results file and checkpoint record as its config: the run's settings with every option
its method used, and what its numbers depend on that the config does not show (:func:`unshown_rules`: how spikecl
computed them), so that a run made by a spikecl that computed otherwise is not kept or averaged as the same."""

from __future__ import annotations

from spikecl.config import REGISTERED_DATASETS, ExperimentConfig
from spikecl.continual.projection import ProjectionStrategy
from spikecl.continual.strategies import effective_options, strategy_class
from spikecl.continual.strategy import by_stage
from spikecl.data.datasets import FILE_ORDERED, registered_crc
from spikecl.data.streams import EVAL_SUBSAMPLE_SEED
from spikecl.snn.trainers import TrainingHooks


def recorded_config(run_cfg: ExperimentConfig, method: str, runs_method: str, seed: int) -> dict:
    """The config a results file records: the run's config (variant applied) with every option its method used,
    defaults included (a changed default then shows as a differing setting), its method and seed."""
    raw = run_cfg.to_dict()
    raw["strategy"]["options"] = effective_options(runs_method, run_cfg.strategy.options)
    return {**raw, **unshown_rules(run_cfg, runs_method), "method": method, "runs_method": runs_method, "seed": seed}


def unshown_rules(cfg: ExperimentConfig, runs_method: str) -> dict:
    """What a run's numbers depend on that its config does not show, recorded beside it (results files, checkpoints)
    so that one made by a spikecl that did otherwise differs: the seed of ``stream.test_per_task``'s evaluation
    subsample (the run seed's own before it was fixed), SI's gradient where SI precedes a projection (``si+gpm``:
    the unprojected one before it read the step's), the subspace that two projection methods protect together (each
    its own in turn before), the order of a Poisson encoder's draws (time first before) and its evaluations' streams
    (epoch 7's and 11's orders' until 2026-12-07), the Poisson draws of the consolidation passes (torch's global
    generator before; for HLOP's final Hebbian passes until 2026-12-04; (seed, task, pass) until 2026-12-07), the
    seed of ``stream.train_per_task``'s subsample (``seed + 1000 + task`` before), where replay's after-task phase
    runs beside parts named in another order than they consolidate (``ewc+replay``), that order (the order of the
    names before), SI's importance beside that phase (Δ over the task's training steps only; the phase's move
    included before 2026-12-05), and, where a multi-head
    readout trains with weight decay or with momentum carried into a task, that heads no sample of a batch names
    get no gradient (zero gradients before, which these acted on; until 2026-12-04 EWC's and SI's penalties left a
    zero gradient on them), that HLOP's spiking lateral neurons clamp their responses to ±``lateral_scale``
    (steps of the batch's largest response before), that the IDX and CIFAR files' samples are taken in a fixed
    random order (:func:`spikecl.data.base.fixed_order`; the files' own before 2026-12-05), as a registered
    dataset's are (its loader's order before 2026-12-07), and the CRC of what a registered dataset's loader returned
    (:func:`spikecl.data.datasets.registered_crc`: its name alone does not say which data it gave)."""
    rules = {"eval_subsample_seed": EVAL_SUBSAMPLE_SEED} if cfg.stream.test_per_task else {}
    parts = runs_method.split("+")
    if "si" in parts and any(p in parts[parts.index("si"):] for p in ("gpm", "hlop")):
        rules["si_gradient"] = "the step's"
    if sum(issubclass(strategy_class(p), ProjectionStrategy) for p in parts) > 1:
        rules["projection"] = "the union of the parts' subspaces"
    if cfg.network.encoder == "poisson":
        rules["poisson_draws"] = "sample by sample, evaluations from streams of their own"
        if any(p in parts for p in ("ewc", "gpm", "hlop")):
            rules["pass_draws"] = "a generator of (seed, task, 0, pass)"
        if "hlop" in parts and cfg.strategy.options.get("hlop", {}).get("final_passes"):
            rules["pass_draws"] += ", HLOP's final passes included"
    if cfg.stream.train_per_task:
        rules["train_subsample_seed"] = "(seed, task)"
    if unused_heads_could_move(cfg):
        penalised = any(strategy_class(p).penalty is not TrainingHooks.penalty for p in parts)
        rules["unused_heads"] = "no gradient" + (", a penalty's zero one included" if penalised else "")
    classes = [strategy_class(p) for p in parts]
    if replay_phase_runs(cfg, parts) and by_stage(classes) != classes:
        rules["after_task_order"] = "subspaces, replay's phase, anchors"
    if "si" in parts and replay_phase_runs(cfg, parts):
        rules["si_trajectory"] = "the task's training steps"
    if "hlop" in parts and cfg.strategy.options.get("hlop", {}).get("lateral_levels"):
        rules["lateral_rates"] = "clamped to +-lateral_scale"
    if cfg.data.dataset in FILE_ORDERED or cfg.data.dataset in REGISTERED_DATASETS:
        rules["sample_order"] = "fixed random"
    crc = registered_crc(cfg.data.dataset, cfg.data.test_split_seed)
    if crc is not None:
        rules["data_crc"] = crc
    return rules


def unshown_difference(recorded: dict, cfg: ExperimentConfig, runs_method: str) -> str | None:
    """The first key of :func:`unshown_rules` that ``recorded`` (a checkpoint or a results config) holds otherwise."""
    return next((k for k, v in unshown_rules(cfg, runs_method).items() if recorded.get(k) != v), None)


def unused_heads_could_move(cfg: ExperimentConfig) -> bool:
    """Whether a head no sample of a batch names could have moved when it got a zero gradient (before it got none),
    whatever the method: several heads, and weight decay, or momentum or Adam's state carried into a task
    (``reset_optimizer = false``). (Batches that mix heads, as joint's, could move one by the momentum they build
    within a task too; that rarer case is not recorded, so that every method of an experiment records alike.)"""
    train = cfg.train
    if cfg.stream.scenario != "task" or cfg.stream.n_tasks < 2:
        return False
    carried = train.optimizer == "adam" or train.momentum > 0
    return bool(train.weight_decay) or carried and not train.reset_optimizer


def replay_phase_runs(cfg: ExperimentConfig, parts: list[str]) -> bool:
    """Whether replay, one of ``parts``, trains on its buffer after each task (:func:`~.replay.phase_runs`)."""
    from spikecl.continual.strategies.replay import phase_runs

    return "replay" in parts and phase_runs(cfg.strategy.options.get("replay", {}).get("mode", "auto"), parts)
