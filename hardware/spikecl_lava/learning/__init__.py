"""Learning graphs on Lava's learning engine (plasticity on, no torch): HLOP's lateral Hebbian neurons
(:mod:`.oja`) and the CA3 memory's STDP (:mod:`.ca3`)."""

from pathlib import Path


def check_learning_output(graph: Path, output: Path, overwrite: bool) -> None:
    """The learned-weights file ``output`` can be written before Lava starts: never the ``graph`` being learned (even
    with ``overwrite``), not an existing file unless ``overwrite``, not a folder, in a writable folder."""
    from spikecl.errors import ConfigError
    from spikecl_lava.runner import check_output

    if output.exists() and output.resolve() == graph.resolve():
        raise ConfigError(f"-o {output} is the graph being learned; name another file for the learned weights")
    check_output(output, overwrite)
