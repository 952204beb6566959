"""CA3 readout timing: answers are read at the steps the delays give, delays without one readout step or too long for
the spacing are one-line errors, and pooled inhibition needs a cue-inhibition delay of two steps."""

from dataclasses import replace

import numpy as np
import pytest

from spikecl.errors import ConfigError
from spikecl.export import ca3_graph
from spikecl.memory import CA3Memory, CA3Params, decode, learn, make_schedule, recall_by_content, recall_by_cue, \
    run_batch
from spikecl.memory.lava_graph import write_ca3_graph
from spikecl.memory.schedule import CONTENT_OUT_STEP, CUE_OUT_STEP, FORGOTTEN_STEP, KINDS, readout
from spikecl.memory.torch_net import TorchCA3
from test_ca3_experiment import run_cli

OPS = [learn(0, [1, 2]), learn(1, [0, 3]), recall_by_cue(0), recall_by_content([3]), learn(0, [2, 3]),
       recall_by_cue(0)]
#: (answer, forgotten) of every operation of OPS in the published model
PUBLISHED = [((1, 2), ()), ((0, 3), ()), ((1, 2), ()), ((1,), ()), ((2, 3), (1,)), ((2, 3), ())]
#: (CA3Params changes, spacing ms, answers): a plastic delay of 2 ms with a matching lag learns and forgets like the
#: published model, except that the relearned cue 0 keeps its old bit 1 (the rule's timing, not the readout, changes)
DELAYED = [(dict(delay_output_ms=2.0), 14, PUBLISHED), (dict(delay_input_ms=2.0), 14, PUBLISHED),
           (dict(delay_s1_merge_ms=4.0, delay_s2_merge_ms=2.0), 14, PUBLISHED),
           (dict(delay_plastic_ms=2.0, stdp_post_lag_ms=2.0, tau_refrac_ms=2.0), 14,
            PUBLISHED[:5] + [((1, 2, 3), ())]),
           (dict(delay_output_ms=10.0), 28, PUBLISHED)]
DELAYED_IDS = ["output", "input", "merge", "plastic", "output-10ms"]


def answers(run):
    return [(r.answer, r.forgotten) for r in run.results]


def one_line_error(make, message):
    with pytest.raises(ConfigError) as err:
        make()
    assert message in str(err.value) and "\n" not in str(err.value), str(err.value)


def test_the_published_delays_give_the_published_readout_steps():
    steps = readout(CA3Params())
    assert (steps.echo, steps.recall) == (5, FORGOTTEN_STEP) == (5, 6)
    assert {k: steps.cue(k) for k in KINDS} == CUE_OUT_STEP
    assert {k: steps.content(k) for k in KINDS} == CONTENT_OUT_STEP
    assert answers(CA3Memory(3, 4, backend="torch").run(OPS, 14)) == PUBLISHED


def test_a_learning_graph_reads_answers_and_forgotten_bits_at_the_memorys_steps(tmp_path):
    """A CA3 learning graph's stored readout steps decode its reference run as the memory does: the published
    answers, the relearned cue 0's forgotten bit 1 read at the learn's start + 6."""
    graph = ca3_graph.read_ca3_graph(write_ca3_graph(tmp_path / "g.h5", OPS, 3, 4, spacing_ms=14))
    spikes = graph.reference["spikes"]
    decoded = ca3_graph.decode(graph, spikes["OUTcue"], spikes["OUTcont"])
    assert [(tuple(d["answer"]), tuple(d["forgotten"])) for d in decoded] == PUBLISHED
    assert graph.readout["forgotten_step"].tolist() == [0 + 6, 14 + 6, -1, -1, 56 + 6, -1]


@pytest.mark.parametrize("changes, spacing, expected", DELAYED, ids=DELAYED_IDS)
def test_longer_delays_give_the_published_answers_read_later(changes, spacing, expected):
    """The same spikes arrive later; they are read where they arrive (before: the answers read were ())."""
    params = CA3Params(**changes)
    run = CA3Memory(3, 4, params, backend="torch").run(OPS, spacing)
    assert answers(run) == expected
    recall = run.results[2].start_ms                                  # recall by cue 0 -> {1, 2}
    assert readout(params).recall > 6 and not run.spikes["OUTcont"][recall + 6].any()
    assert np.flatnonzero(run.spikes["OUTcont"][recall + readout(params).recall]).tolist() == [1, 2]


def test_run_batch_reads_each_memory_at_the_steps_of_its_delays():
    runs = run_batch([OPS, OPS[:4]], 3, 4, CA3Params(delay_input_ms=2.0, delay_output_ms=3.0), spacing_ms=14)
    assert [answers(r) for r in runs] == [PUBLISHED, PUBLISHED[:4]]


@pytest.mark.brian2
@pytest.mark.parametrize("changes, spacing, expected", DELAYED[:1] + DELAYED[3:4], ids=["output", "plastic"])
def test_brian2_reads_longer_delays_like_torch(changes, spacing, expected):
    pytest.importorskip("brian2")
    runs = [CA3Memory(3, 4, CA3Params(**changes), backend=b).run(OPS, spacing) for b in ("brian2", "torch")]
    assert answers(runs[0]) == answers(runs[1]) == expected
    for pop in runs[0].spikes:
        np.testing.assert_array_equal(runs[0].spikes[pop], runs[1].spikes[pop], err_msg=pop)


@pytest.mark.parametrize("tau_refrac_ms, every", [(1.0, 2), (2.0, 3), (3.0, 4)])
def test_a_cell_driven_at_every_step_spikes_once_per_refractory_period(tau_refrac_ms, every):
    """tau_refrac_ms = r: a cell whose input spikes at every step fires every r + 1 steps (the refractory period is
    tau_refrac + dt), the first time one step after its input (the 1 ms input delay)."""
    net = TorchCA3(CA3Params(tau_refrac_ms=tau_refrac_ms), 1, 1)
    spikes = net.run(np.ones((20, 1), bool), np.zeros((20, 1), bool))["CA3cueCueRecall"][:, 0, 0].numpy()
    assert np.flatnonzero(spikes).tolist() == list(range(1, 20, every))


def test_an_answer_past_the_schedule_is_refused_before_simulating():
    mem = CA3Memory(3, 4, CA3Params(delay_output_ms=10.0), backend="torch")   # answered 15 ms after the start
    one_line_error(lambda: mem.run(OPS, 14), "operation 5 (recall by cue 0) is answered 15 ms after its start")
    one_line_error(lambda: mem.run(OPS, 14), "not before the end of the schedule 14 ms after it")
    assert mem.t_ms == 0
    one_line_error(lambda: run_batch([OPS], 3, 4, CA3Params(delay_output_ms=10.0)), "answered 15 ms")
    schedule = make_schedule(OPS, 3, 4, 14)
    silent = np.zeros((schedule.duration_ms, 4), bool)
    one_line_error(lambda: decode(schedule, silent[:, :3], silent, CA3Params(delay_output_ms=10.0)), "answered 15 ms")


def test_an_answer_after_the_next_operations_output_is_refused():
    """A plastic delay as long as the gap: the recall would be read after the next operation's echo."""
    params = CA3Params(delay_plastic_ms=7.0, stdp_post_lag_ms=7.0)
    one_line_error(lambda: CA3Memory(3, 4, params, backend="torch").run(OPS, 7),
                   "operation 0 (learn cue 0 -> {1, 2}) is answered 12 ms after its start (delay_input_ms + "
                   "delay_s1_merge_ms + delay_plastic_ms + delay_output_ms), not before the next operation's first "
                   "output 12 ms after it")


@pytest.mark.parametrize("changes, message", [
    (dict(delay_s1_merge_ms=4.0), "delay_s1_merge_ms: 4 ms, but delay_s1cue_s2cue_ms + delay_s2_merge_ms = 3 ms"),
    (dict(delay_s2_merge_ms=2.0), "delay_s1_merge_ms: 3 ms, but delay_s1cue_s2cue_ms + delay_s2_merge_ms = 4 ms"),
    (dict(delay_s1cont_cond_ms=2.0), "but delay_s1cont_cond_ms + delay_cond_s2cont_ms + delay_s2_merge_ms = 4 ms"),
    (dict(delay_plastic_ms=2.0, stdp_post_lag_ms=2.0),
     "forgotten bits reach the output delay_plastic_ms = 2 ms after its echo"),
    (dict(tau_refrac_ms=0.0), "a spike every 1 steps by tau_refrac_ms = 0"),
], ids=["s1-merge", "s2-merge", "cond", "plastic", "no-refractory"])
def test_delays_without_one_readout_step_are_refused(changes, message):
    one_line_error(lambda: CA3Params(**changes), message)


def test_a_learning_rule_that_sees_post_spikes_before_their_pre_spikes_arrive_is_refused():
    """With the post lag below the plastic delay every pairing reads as depression and nothing is learned (recall
    by cue answered () for delays 3 and 4 with the lag at 1); lag = delay, as published, learns."""
    one_line_error(lambda: CA3Params(delay_plastic_ms=3.0), "stdp_post_lag_ms: 1 ms is shorter than "
                   "delay_plastic_ms = 3 ms: the rule would see each post spike before the pre spike that drove it")
    one_line_error(lambda: CA3Params(stdp_post_lag_ms=0.0), "stdp_post_lag_ms: 0 ms is shorter")
    ops = [learn(0, [1, 2]), learn(1, [0, 3]), recall_by_cue(0), recall_by_cue(1), recall_by_content([2])]
    for delay in (3.0, 4.0):
        params = CA3Params(delay_plastic_ms=delay, stdp_post_lag_ms=delay)
        answers = [r.answer for r in CA3Memory(3, 4, params, backend="torch").run(ops, 20).results[2:]]
        assert answers == [(1, 2), (0, 3), (0,)], (delay, answers)


@pytest.mark.parametrize("key", ["delay_s1cue_s2cue_inh_ms", "delay_s2cue_s2cue_inh_ms"])
def test_pooled_inhibition_needs_two_steps_of_cue_inhibition_delay(key):
    one_line_error(lambda: CA3Params(inhibition="pool", **{key: 1.0}),
                   f'{key}: 1 ms; inhibition = "pool" relays it through an interneuron')
    one_line_error(lambda: replace(CA3Params(**{key: 1.0}), inhibition="pool"), key)   # the stress variant's way
    assert CA3Params(inhibition="pool", **{key: 2.0}).steps(1.0) == 0                    # 2 ms: accepted


def unchecked_pool_params():
    """Pooled inhibition with a 1 ms cue-inhibition delay, past CA3Params' own check (pool -> S2Cue: 0 ms)."""
    params = CA3Params(inhibition="pool")
    object.__setattr__(params, "delay_s2cue_s2cue_inh_ms", 1.0)
    return params


def test_the_network_builders_refuse_a_delay_below_one_step():
    from spikecl.memory.lava_graph import static_matrices
    from spikecl.memory.torch_net import TorchCA3

    message = "CA3cuePoolCont -> CA3cueContRecall has a delay of 0 ms, simulated as -1 steps"
    one_line_error(lambda: TorchCA3(unchecked_pool_params(), 3, 4), message)
    one_line_error(lambda: static_matrices(unchecked_pool_params(), 3, 4), message)
    one_line_error(lambda: CA3Params().steps(0.0), "a delay of 0 ms, simulated as -1 steps")


@pytest.mark.brian2
def test_brian2_refuses_a_delay_below_one_step():
    pytest.importorskip("brian2")
    from spikecl.memory.brian2_net import Brian2CA3

    one_line_error(lambda: Brian2CA3(unchecked_pool_params(), 3, 4), "simulated as -1 steps")


def test_the_cli_refuses_pooled_inhibition_with_a_1ms_delay(tmp_path, capsys):
    assert run_cli(tmp_path, "--no-plots", "--set", 'stress.variants=["pool"]',
                   "--set", "params.delay_s2cue_s2cue_inh_ms=1") == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "stress variant 'pool': CA3Params.delay_s2cue_s2cue_inh_ms: 1 ms" in err
    assert not (tmp_path / "ca3_cam").exists()


@pytest.mark.parametrize("overrides, message", [
    (["params.delay_output_ms=6"], "the recorded experiment: CA3Params delays: operation 8"),
    (["params.delay_plastic_ms=14", "params.stdp_post_lag_ms=14", "functional.enabled=false"],
     "stress.spacings_ms = 14: CA3Params delays: operation 0"),
])
def test_the_cli_refuses_delays_too_long_for_the_spacing(tmp_path, capsys, overrides, message):
    assert run_cli(tmp_path, "--no-plots", *(arg for o in overrides for arg in ("--set", o))) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and message in err, err
    assert not (tmp_path / "ca3_cam").exists()


def test_params_that_are_not_ca3params_and_schedules_for_a_larger_memory_are_refused():
    """``params={}`` used to run the published model without a word; a ready Schedule laid out for more cues than
    the memory has raised IndexError in the stepper (an operation list was checked, a Schedule was not)."""
    from spikecl.memory import run_batch, synapse_count
    from spikecl.memory.params import population_sizes
    from spikecl.memory.stress import StressGrid, run_grid
    from spikecl.memory.torch_net import TorchCA3

    for call in (lambda: CA3Memory(3, 4, params={}, backend="torch"), lambda: run_batch([OPS], 3, 4, params={}),
                 lambda: synapse_count(3, 4, {"w_max_nA": 1.0}), lambda: population_sizes(3, 4, {}),
                 lambda: TorchCA3({}, 3, 4), lambda: run_grid(StressGrid(3, 4, "published", (0.3,), (14,), (0,)), {})):
        one_line_error(call, "params: expected CA3Params (or None for the published model), got dict")
    wide = make_schedule([learn(4, [1]), recall_by_cue(4)], 5, 6)
    one_line_error(lambda: run_batch([wide], 3, 4), "cue 4 is out of range [0, 3)")
    assert run_batch([make_schedule(OPS, 3, 4)], 3, 4)[0].results[2].answer == (1, 2)
