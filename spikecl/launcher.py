"""Start a run's processes as ``torchrun`` would (``spikecl run --nproc N``): the default
:meth:`spikecl.experiment_kind.Kind.launch` of a kind that trains data-parallel.

:func:`launch` spawns ``N`` processes that find each other through the environment variables ``torchrun`` sets
(``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR``, ``MASTER_PORT``); the kind's
:meth:`~spikecl.experiment_kind.Kind.session` joins them into its process group. Torch is imported only by the
launch (a Sparsey install may have none).
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import sys
import tempfile
from pathlib import Path
from typing import Callable

from spikecl.errors import ConfigError, SpikeCLError, interrupt, raise_if_interrupted, watch_interrupts
from spikecl.remedies import command_line, on_command_line, option
from spikecl.terminal import guard_standard_streams


def launched_world_size() -> int | None:
    """``WORLD_SIZE`` where the environment names several processes (torchrun, or a leftover export), else None; one
    that is no integer is a one-line ConfigError (as joining the process group would find)."""
    given = os.environ.get("WORLD_SIZE")
    if given is None:
        return None
    try:
        size = int(given)
    except ValueError:
        raise ConfigError(f"WORLD_SIZE={given!r} is not an integer") from None
    return size if size > 1 else None


def free_port() -> int:
    """A TCP port on localhost that was free a moment ago (for ``MASTER_PORT``)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _die_with_launcher() -> None:
    """On Linux, have the kernel send SIGTERM to this process when its launcher dies (no orphaned trainers)."""
    if sys.platform.startswith("linux"):
        import ctypes
        import signal

        try:
            ctypes.CDLL("libc.so.6").prctl(1, int(signal.SIGTERM))          # 1 = PR_SET_PDEATHSIG
        except (OSError, AttributeError):
            pass


def cores() -> int:
    """CPU cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:                                   # not Linux
        return os.cpu_count() or 1


def _worker(index: int, nproc: int, port: int, threads: int, errors: str, fn: Callable[..., int], args: tuple,
            kwargs: dict, flags: bool = False) -> None:
    """Body of a spawned process: torchrun's environment variables and ``threads`` intra-op threads, then
    ``fn(*args, **kwargs)``; exits with its code. A one-line error is left in the folder ``errors`` for the
    launcher, which prints each distinct one once; its remedies name command-line flags where ``flags`` (the
    launcher's did: :func:`spikecl.remedies.on_command_line`)."""
    _die_with_launcher()
    guard_standard_streams()                                  # rank 0 prints the summary to the launcher's stdout
    signal.signal(signal.SIGINT, signal.default_int_handler)  # also where the launcher's shell ignored SIGINT
    signal.signal(signal.SIGTERM, interrupt)                  # a job's TERM or the launcher's death: as Ctrl-C
    watch_interrupts(True)                                    # one swallowed in CPython starts no further job
    os.environ.update({"RANK": str(index), "LOCAL_RANK": str(index), "WORLD_SIZE": str(nproc),
                       "LOCAL_WORLD_SIZE": str(nproc), "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port)})
    import torch

    torch.set_num_threads(threads)
    try:
        with command_line(flags):
            code = fn(*args, **kwargs)
    except SpikeCLError as exc:
        Path(errors, f"{index}.txt").write_text(str(exc).replace("\n", " "), encoding="utf-8")
        code = 2
    except KeyboardInterrupt:                                 # locks released; the launcher says how to continue
        code = 130
    for sig in (signal.SIGTERM, signal.SIGINT):               # the work is done: a stop now ends the process at
        signal.signal(sig, signal.SIG_DFL)                    # once (raised in an atexit callback, it printed a
    sys.stdout.flush()                                        # traceback after a killed launcher)
    if code:
        sys.exit(code)


def launch(nproc: int, fn: Callable[..., int], *args, threads: int | None = None, **kwargs) -> int:
    """Run ``fn(*args, **kwargs)`` in ``nproc`` new processes (``torch.multiprocessing``, start method ``spawn``) that
    form one process group, like ``torchrun --nproc_per_node nproc``; returns the first non-zero exit code, else 0.

    Each process runs ``threads`` intra-op threads (default: its share of the cores, at least 1, so that the
    processes do not oversubscribe them). ``fn`` must be importable by name (a module-level function). If one process
    fails, the others are terminated.
    """
    if nproc < 1:
        raise ConfigError(f"{option('--nproc', keyword='nproc')}: expected at least 1 process, got {nproc}")
    if launched_world_size():
        raise ConfigError(f"{option('--nproc', keyword='launch')} cannot be used inside a process group that is "
                          "already launched (torchrun)")
    import logging

    import torch.multiprocessing as mp

    logging.getLogger("torch.multiprocessing.spawn").setLevel(logging.ERROR)   # the errors are reported below
    port = free_port()
    context = None
    with tempfile.TemporaryDirectory(prefix="spikecl-ranks-") as errors:
        try:
            threads = threads or max(1, cores() // nproc)
            context = mp.start_processes(_worker, args=(nproc, port, threads, errors, fn, args, kwargs,
                                                                 on_command_line()),
                                         nprocs=nproc, join=False, start_method="spawn")
            with stopped_on_interrupt(context.processes):
                while not context.join(timeout=1.0):
                    raise_if_interrupted()           # a stop whose KeyboardInterrupt CPython swallowed
        except mp.ProcessExitedException as exc:
            pid = getattr(exc, "error_pid", getattr(exc, "pid", "?"))           # torch 2.3 names it pid
            if exc.signal_name:                      # killed (the OOM killer, kill -9): no error of its own to read
                print(f"spikecl: error: training process {exc.error_index} (pid {pid}) was killed by "
                      f"{exc.signal_name}; what finished is kept: run again with --resume to continue",
                      file=sys.stderr)
            elif exc.exit_code == 130:               # interrupted itself (kill, a scheduler), the launcher not
                print(f"spikecl: training process {exc.error_index} (pid {pid}) was interrupted; what "
                      "finished is kept: run again with --resume to continue", file=sys.stderr)
            return exc.exit_code if exc.exit_code and exc.exit_code > 0 else 1
        except mp.ProcessRaisedException as exc:
            print(f"spikecl: a training process failed:\n{exc}", file=sys.stderr)
            return 1
        finally:
            _print_errors(Path(errors))
            for name in context.error_files if context is not None else ():   # torch's per-process traceback
                if name:                                                        # files, read by join() or unread
                    Path(name).unlink(missing_ok=True)
    return 0


@contextlib.contextmanager
def stopped_on_interrupt(processes, grace_s: float = 10.0):
    """On KeyboardInterrupt in the body, interrupt ``processes`` too (a Ctrl-C reaches the whole process group, a
    ``kill -INT`` or a scheduler's signal only the launcher), wait ``grace_s`` seconds for them, terminate the
    rest, and re-raise."""
    try:
        yield
    except KeyboardInterrupt:
        for process in processes:
            if process.is_alive():
                os.kill(process.pid, signal.SIGINT)
        for process in processes:
            process.join(grace_s)
            if process.is_alive():
                process.terminate()
                process.join()
        raise


def _print_errors(folder: Path) -> None:
    """Each distinct error the processes left in ``folder``, once, naming the ranks that raised it (a missing
    dataset: every rank; a diverging shard: one)."""
    ranks: dict[str, list[str]] = {}
    for path in sorted(folder.glob("*.txt"), key=lambda p: int(p.stem)):
        ranks.setdefault(path.read_text(encoding="utf-8"), []).append(path.stem)
    for message, who in ranks.items():
        print(f"spikecl: error (rank{'s' if len(who) > 1 else ''} {', '.join(who)}): {message}", file=sys.stderr)
