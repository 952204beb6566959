#!/usr/bin/env bash
# spikecl's GPU checks in one pass, on a machine with a CUDA GPU: the tests marked `gpu` and the triton engine's
# tests (its compiled kernels against the torch engine, bit for bit), the training-step benchmark (fused, triton and
# snnTorch engines and a plain snnTorch loop, T = 4 and 25, batch 64 and 256) and the CA3 stepper's throughput. Each
# part's output goes to OUT/<part>.log as well as the screen; the exit status is 1 if any part failed. PYTHON
# (default python3) must hold torch with CUDA, triton, numpy, h5py, networkx and pytest; the rest of what the tests
# import (snntorch, brian2, mlxtend, scikit-learn with scipy, tqdm) may come as wheels in WHEELS (default
# .gpu-wheels, made by `make gpu-kit` on a machine with a package registry), which are unpacked into a folder of
# their own first. Every one of them is looked for before anything runs. (test_distributed.py's GPU test needs two
# GPUs: on one it is skipped.)
#
# PARTS (default: every part, "device engine memory ca3 tests triton") names the parts to run ("memory": what
# train.cuda_graph costs in GPU memory, benchmarks/cuda_graph_memory.py).
#
#     bash benchmarks/gpu_check.sh [OUT]          # OUT defaults to results/gpu
set -uo pipefail
out=${1:-results/gpu}
py=${PYTHON:-python3}
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root" || exit 2
wheels=${WHEELS:-.gpu-wheels}
site=${WHEELS_TARGET:-${TMPDIR:-/tmp}/spikecl-gpu-site}
export PYTHONPATH="$root${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
export THP_MEM_ALLOC_ENABLE=${THP_MEM_ALLOC_ENABLE:-1}   # torch's huge pages, as the spikecl CLI asks for them
if compgen -G "$wheels/*.whl" >/dev/null; then
    if ! "$py" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$site" \
            "$wheels"/*.whl >/dev/null 2>&1; then
        echo "gpu_check: the wheels in $wheels do not install for $py; nothing was run" >&2
        exit 2
    fi
    export PYTHONPATH="$PYTHONPATH:$site"      # after spikecl, ahead of the interpreter's own packages
    echo "gpu_check: $(ls "$wheels"/*.whl | wc -l) wheels from $wheels unpacked into $site"
fi
if ! "$py" -c "import sys, torch; sys.exit(not torch.cuda.is_available())" 2>/dev/null; then
    echo "gpu_check: $py has no torch that sees a CUDA device; nothing was run" >&2
    exit 2
fi
missing=$("$py" -c "
import importlib.util
need = ('snntorch', 'brian2', 'h5py', 'networkx', 'pytest', 'triton', 'tqdm', 'sklearn', 'scipy', 'mlxtend')
print(' '.join(m for m in need if importlib.util.find_spec(m) is None))")
if [ -n "$missing" ]; then
    echo "gpu_check: $py lacks $missing; run \`make gpu-kit\` where a package registry is reachable and bring $wheels; nothing was run" >&2
    exit 2
fi
mkdir -p "$out"
failed=0
parts=" ${PARTS:-device engine memory ca3 tests triton} "
part() {                                     # part NAME COMMAND...: run it, keep its output in $out/NAME.log
    local name=$1
    shift
    [[ $parts == *" $name "* ]] || return 0
    echo "== $name: $*"
    "$@" 2>&1 | tee "$out/$name.log" || failed=1
}
part device "$py" -c "import torch; print('torch', torch.__version__, 'on', torch.cuda.get_device_name(0))"
part engine "$py" benchmarks/engine_speed.py --device cuda --steps 4 25 --batch 64 256     # timings first
part memory "$py" benchmarks/cuda_graph_memory.py --batch 256
part ca3 "$py" benchmarks/ca3_speed.py --device cuda --sizes "" --batches 64,256,1024 --precision float64,float32
part tests "$py" -m pytest -q -p no:cacheprovider -m gpu tests/test_engine.py tests/test_snn.py tests/test_runner.py \
    tests/test_ca3.py tests/test_sparsey.py tests/test_distributed.py tests/test_precision.py tests/test_cuda_graphs.py
part triton "$py" -m pytest -q -p no:cacheprovider tests/test_triton_engine.py      # all of it runs on the GPU there
exit $failed
