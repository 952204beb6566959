"""The ``spikecl`` command line.

    spikecl run EXPERIMENT.toml [--set key=value ...] [--device cpu|cuda|auto] [--seed N | --seeds 0,1,2]
                                [--resume] [--overwrite] [--output-dir DIR] [--nproc N]
    spikecl report RESULTS.h5|DIR ... [--plots DIR] [--no-plots] [--no-matrices]
    spikecl export RESULTS.h5 -o net.h5      spikecl deploy net.h5      spikecl sweep SWEEP.toml

``spikecl run`` dispatches on the experiment file's top-level ``kind`` (default ``"continual"``) through
:mod:`spikecl.experiment_kind`; every command lives in its own module (:data:`COMMAND_MODULES`). Errors a user can
fix are printed as one line and exit with code 2.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import importlib
import os
import signal
import sys
import threading

from spikecl.allocator import ask_for_huge_pages, keep_freed_memory
from spikecl.errors import SpikeCLError, interrupt, raise_if_interrupted, watch_interrupts
from spikecl.remedies import command_line
from spikecl.terminal import guard_standard_streams

#: modules adding a subcommand: ``add_command(subparsers)`` registers a parser whose defaults set ``handler``.
COMMAND_MODULES: tuple[str, ...] = ("spikecl.commands.run", "spikecl.commands.report", "spikecl.commands.export",
                                    "spikecl.commands.sweep")

EPILOG = """examples:
  spikecl run models/pmnist5k_demo.toml                 run every method and seed of an experiment
  spikecl run models/pmnist5k_demo.toml --seeds 0,1,2 --set train.epochs=3 --set 'strategy.methods=["ewc"]'
  spikecl run models/pmnist5k_demo.toml --resume        continue a killed run; completed runs are kept
  spikecl report results/pmnist5k-demo                  tables and PNG plots of finished runs (any kind)
  spikecl run models/ca3_cam.toml                       CA3 memory: recorded experiment, stress suite, plots
  spikecl run models/sparsey_mnist5k.toml               Sparsey coder: one pass over MNIST-5k
  spikecl export results/X/finetune-seed0.h5 -o net.h5  quantise to Loihi fixed point (netx HDF5)
  spikecl deploy net.h5 --backend lava-sim              run it on Lava's fixed-point simulation
  spikecl export models/ca3_cam.toml -o ca3.h5          the CA3 memory as a learning graph for Lava
  spikecl deploy ca3.h5 --backend lava-sim              learn and recall on Lava's learning engine
  spikecl sweep models/sweeps/pmnist5k_lr.toml          many runs as Ray tasks, mean ± std at the end
"""


class OneLineParser(argparse.ArgumentParser):
    """argparse whose usage errors are one line on stderr (``spikecl: error: … (see spikecl run --help)``) with
    exit code 2, like every other error a user can fix; subcommand parsers inherit it."""

    def error(self, message: str):
        self.exit(2, f"spikecl: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="spikecl", epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Continual learning in spiking neural networks, spiking memories (CA3, Sparsey SDRs) and their "
                    "export to neuromorphic hardware: run experiments, report, export, deploy, sweep.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMAND_MODULES:
        importlib.import_module(name).add_command(sub)
    parser.commands = sub.choices              # name -> the command's parser, which names itself in usage errors
    return parser


def _version() -> str:
    from spikecl import __version__

    return __version__


def main(argv: list[str] | None = None) -> int:
    ask_for_huge_pages()                        # before torch is imported: spikecl.allocator says why
    keep_freed_memory()
    guard_standard_streams()
    parser = build_parser()
    args, unknown = parser.parse_known_args(argv)
    if unknown:                                 # the command's parser points at its own --help
        parser.commands[args.command].error(f"unrecognized arguments: {' '.join(unknown)}")
    try:
        with terminate_as_interrupt(), command_line():     # remedies name this command's flags
            return args.handler(args)
    except SpikeCLError as exc:
        print(f"spikecl: error: {exc}", file=sys.stderr)
        return 2
    except (MemoryError, RuntimeError) as exc:
        if not out_of_memory(exc):
            raise
        print(f"spikecl: error: out of memory ({str(exc).splitlines()[0][:160] if str(exc) else type(exc).__name__}); "
              "smaller sizes, fewer time steps or a smaller batch need less (finished results and checkpoints are "
              f"whole){continue_hint(args)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"spikecl: interrupted{continue_hint(args)}", file=sys.stderr)
        return 130
    except BrokenPipeError:                     # output piped into a reader that stopped early (e.g. `| head`)
        silence_stdout()
        with contextlib.suppress(OSError):      # stderr piped into the same reader: nothing can be said
            print(f"spikecl: stopped: the reader of its output closed it{continue_hint(args)}", file=sys.stderr)
        return 141
    except OSError as exc:                      # printing to a full disk (`> file`); a file's own write says more
        if exc.errno not in OUTPUT_ERRNOS or exc.filename is not None:
            raise
        silence_stdout()
        with contextlib.suppress(OSError):
            print(f"spikecl: error: its output could not be written ({exc.strerror or exc}); results and checkpoints "
                  f"written are whole{continue_hint(args)}", file=sys.stderr)
        return 1


#: errors of a write to a file or device that has no room or cannot take it (stdout redirected to a full disk)
OUTPUT_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EIO})


def silence_stdout() -> None:
    """Point stdout at /dev/null, so that the interpreter's final flush of what could not be written fails no
    more."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)


@contextlib.contextmanager
def terminate_as_interrupt():
    """While the block runs (in the main thread), SIGTERM (a scheduler's, ``timeout``'s, ``kill``'s) stops the command
    as Ctrl-C does: locks released, temporary files removed, the interruption said and how to continue, exit status
    130; a stop whose KeyboardInterrupt CPython swallowed stops it at the next job or when the block ends. For every
    command (``run``'s data-parallel workers too; ``sweep`` puts it back after Ray starts; ``deploy`` stops its Lava
    runner's processes). Each handler is put back afterwards unless a library replaced it during the command (Brian2
    wraps SIGINT's on import): that one stays, as it would have without the command."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}
    signal.signal(signal.SIGTERM, interrupt)
    if previous[signal.SIGINT] is signal.default_int_handler:   # not where the shell had it ignored
        signal.signal(signal.SIGINT, interrupt)
    watch_interrupts(True)
    try:
        yield
        raise_if_interrupted()                  # a stop that CPython swallowed (in an import lock's callback)
    finally:
        for sig, handler in previous.items():
            if signal.getsignal(sig) is interrupt:
                signal.signal(sig, handler)
        watch_interrupts(False)                 # said by the command: no later library call in this process sees it


def out_of_memory(exc: BaseException) -> bool:
    """Whether ``exc`` says an allocation failed: numpy's MemoryError, torch's CPU allocator or CUDA out of memory
    (an 18-frame traceback would say no more)."""
    return isinstance(exc, MemoryError) or type(exc).__name__ == "OutOfMemoryError" or (
        isinstance(exc, RuntimeError) and "can't allocate memory" in str(exc))


def continue_hint(args: argparse.Namespace) -> str:
    """How to continue an interrupted command (results and checkpoints are written atomically, so each is whole)."""
    if args.command == "run":
        return "; continue with --resume" + (" --overwrite (what this run already replaced is kept)"
                                             if args.overwrite else "")
    return ""


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
