#!/usr/bin/env bash
# `make bench`: every benchmark in turn, its output shown and kept, with the machine it ran on, in one log per run,
# results/bench/<UTC time>.log (a new file each run; an existing one is never written over). Stops at the first
# benchmark that fails, with its status; the log keeps what ran until then.
#
#   bash benchmarks/run_all.sh [PYTHON]      (default .venv/bin/python)
#   BENCHMARKS="engine_speed ca3_speed" ...  a subset, by script name;  BENCH_DIR=...  another folder of scripts
set -euo pipefail
PY=${1:-.venv/bin/python}
DIR=${BENCH_DIR:-benchmarks}
SCRIPTS=${BENCHMARKS:-"epoch_time engine_speed allocator_effect strategy_overhead export_lava sdr_scaling ca3_speed
    distributed_throughput"}
OUT=${BENCH_OUT:-results/bench}

for name in $SCRIPTS; do
    [[ -f "$DIR/$name.py" ]] || { echo "run_all: no benchmark $DIR/$name.py" >&2; exit 2; }
done
mkdir -p "$OUT"
log="$OUT/$(date -u +%Y%m%dT%H%M%SZ).log"
until (set -C; : > "$log") 2>/dev/null; do            # made here, or taken: a run started the same second has it
    [[ -e "$log" ]] || { echo "run_all: cannot write $log" >&2; exit 2; }
    sleep 1; log="$OUT/$(date -u +%Y%m%dT%H%M%SZ).log"
done

export TQDM_DISABLE=1                    # progress bars would fill the log with carriage returns
export THP_MEM_ALLOC_ENABLE=${THP_MEM_ALLOC_ENABLE:-1}   # torch's huge pages, as the spikecl CLI asks for them
{
    dirty=$([[ -n "$(git status --porcelain 2>/dev/null)" ]] && echo -dirty || true)   # untracked files too
    echo "# make bench, $(date -u '+%Y-%m-%d %H:%M UTC'), commit $(git describe --always --abbrev=7 2>/dev/null || echo '?')$dirty"
    echo "# $("$PY" -c 'from spikecl.environment import cpu_model; print(cpu_model())' 2>/dev/null ||
             grep -m1 'model name' /proc/cpuinfo 2>/dev/null | cut -d: -f2- | xargs), $(nproc) CPUs," \
         "load $(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null), $("$PY" -c 'import sys; v = sys.version.split()[0]
try:
    import torch; print(f"Python {v}, torch {torch.__version__}")
except ImportError:
    print(f"Python {v}, no torch")')"
    for name in $SCRIPTS; do
        echo
        echo "## $DIR/$name.py"
        start=$SECONDS
        "$PY" "$DIR/$name.py" || { status=$?; echo "## $DIR/$name.py failed (exit $status)"; exit "$status"; }
        echo "## ($((SECONDS - start)) s)"
    done
} 2>&1 | sed -u '/^USDT:/d' | tee -a "$log" || status=$?       # (USDT: torch.profiler's start/stop notices)
echo "kept in $log"
exit "${status:-0}"
