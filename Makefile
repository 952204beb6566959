# spikecl — every target creates what it needs; running a target twice does no extra work.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
STAMP  := $(VENV)/.installed-stamp
BENCH_STAMP := $(VENV)/.bench-stamp
# The torch-free core must also install under Python 3.10 (numpy 1.26, networkx 2.8) for the Lava side.
# (pyenv's python3.10 shim exists but fails when 3.10 is not selected, so each candidate is tried.)
PY310  ?= $(shell for p in $$(ls -d $$HOME/.pyenv/versions/3.10.*/bin/python 2>/dev/null) $$(command -v python3.10); do \
            "$$p" -c 'import sys; assert sys.version_info[:2] == (3, 10)' 2>/dev/null && echo "$$p" && break; done)
CORE310 := .venv-core310
CORE310_STAMP := $(CORE310)/.installed-stamp
# The Lava side (hardware/): lava-nc 0.10.0 is frozen at Python 3.10 with numpy < 2 and networkx <= 2.8.7.
LAVA := .venv-lava
LAVA_STAMP := $(LAVA)/.installed-stamp
# Optional, not built by `make test` (whose tests/test_lavadl.py runs where it exists, else skips loudly): lava-dl
# 0.6.0, whose own netx loader checks spikecl's netx files. lava.lib.dl.netx imports lava-dl's slayer, which imports torch, torchvision, matplotlib
# and cv2, so those are needed; lava-dl's other pins are skipped (--no-deps). Its torch 2.3.1 exists on PyPI only as
# the CUDA build (about 2.6 GB of wheels, 5.6 GB installed, 2 minutes here): run it on CPU, never import it in spikecl.
LAVADL := .venv-lavadl
LAVADL_STAMP := $(LAVADL)/.installed-stamp
LAVADL_DEPS := "lava-nc==0.10.0" "numpy==1.26.4" "networkx==2.8.7" "h5py>=3.11" "torch==2.3.1" \
               "matplotlib>=3.5,<4" "pillow>=10.0.1,<11" "opencv-python-headless>=4.8,<4.11"

.PHONY: demo test test-fast bench gpu-check gpu-kit env core310 lava lava-dl clean

env: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	$(PIP) install --quiet -c constraints.txt -e ".[torch,brian2,data,dev,export,ray,triton]"
	$(PIP) install --quiet --no-deps "norse==1.1.0"    # a second NIR reader for the interop tests (see pyproject)
	$(PIP) install --quiet --no-deps "tonic==1.7.0" "importRosbag==1.0.4"    # the events extra, lean (see pyproject)
	touch $@

core310: $(CORE310_STAMP)

$(CORE310_STAMP): pyproject.toml
	@if [ -z "$(PY310)" ]; then echo "NOTICE: no Python 3.10 found; the Python 3.10 core tests will be skipped"; exit 0; fi; \
	set -e; test -x $(CORE310)/bin/python || $(PY310) -m venv $(CORE310); \
	$(CORE310)/bin/python -m pip install --quiet --upgrade pip; \
	$(CORE310)/bin/python -m pip install --quiet "numpy==1.26.4" "networkx==2.8.7" -e .; \
	touch $@

lava: $(LAVA_STAMP)

$(LAVA_STAMP): pyproject.toml hardware/pyproject.toml hardware/requirements.txt
	@if [ -z "$(PY310)" ]; then echo "NOTICE: no Python 3.10 found; Lava (hardware/) is not installed and the lava tests will be skipped"; exit 0; fi; \
	set -e; test -x $(LAVA)/bin/python || $(PY310) -m venv $(LAVA); \
	$(LAVA)/bin/python -m pip install --quiet --upgrade pip; \
	$(LAVA)/bin/python -m pip install --quiet -r hardware/requirements.txt; \
	$(LAVA)/bin/python -m pip install --quiet "numpy==1.26.4" "networkx==2.8.7" -e . -e hardware; \
	touch $@

lava-dl: $(LAVADL_STAMP)

$(LAVADL_STAMP): pyproject.toml hardware/pyproject.toml
	@if [ -z "$(PY310)" ]; then echo "NOTICE: no Python 3.10 found; lava-dl is not installed and the lavadl tests will be skipped"; exit 0; fi; \
	set -e; test -x $(LAVADL)/bin/python || $(PY310) -m venv $(LAVADL); \
	$(LAVADL)/bin/python -m pip install --quiet --upgrade pip; \
	$(LAVADL)/bin/python -m pip install --quiet $(LAVADL_DEPS); \
	$(LAVADL)/bin/python -m pip install --quiet --no-deps "lava-dl==0.6.0" "torchvision==0.18.1"; \
	$(LAVADL)/bin/python -m pip install --quiet "numpy==1.26.4" "networkx==2.8.7" -e .; \
	$(LAVADL)/bin/python -m pip install --quiet --no-deps -e hardware; \
	touch $@

demo: $(STAMP)
	$(VENV)/bin/spikecl run models/pmnist5k_demo.toml --resume

# One worker per logical CPU (at most 4); a test file's tests run in one worker, so its fixtures are made once.
test: $(STAMP) core310 lava
	$(PY) -m pytest -q --durations=15 -n logical --maxprocesses 4 --dist loadfile

test-fast: $(STAMP) lava
	$(PY) -m pytest -q -m "not slow" -n logical --maxprocesses 4 --dist loadfile

# every benchmark in turn; the output is also kept, with the machine's description, in results/bench/<UTC time>.log
bench: $(STAMP) $(BENCH_STAMP) lava
	bash benchmarks/run_all.sh $(PY)

# A peer that only the benchmarks time (epoch_time.py): SpikingJelly 2.0.0 and loguru, which it logs with. Its
# torchvision and torchaudio requirements are skipped: its multi-step LIF layers import neither.
$(BENCH_STAMP): $(STAMP)
	$(PIP) install --quiet --no-deps "spikingjelly==2.0.0" "loguru==0.7.3"
	touch $@

# on a CUDA machine, with PYTHON naming an interpreter that has CUDA torch (and the wheels of gpu-kit, if brought)
gpu-check:
	bash benchmarks/gpu_check.sh

# Wheels of what a CUDA machine's Python 3.12 with torch tends to lack, for gpu_check.sh: snntorch, mlxtend,
# scikit-learn (with scipy, joblib, threadpoolctl) and tqdm as tested here; brian2 2.10 (2.9 fails to import beside
# numpy >= 2.4, which such machines tend to hold).
GPU_KIT := .gpu-wheels
gpu-kit: $(STAMP)
	rm -rf $(GPU_KIT)
	$(PIP) download --quiet --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
	    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
	    -d $(GPU_KIT) "brian2==2.10.1" $$($(PIP) freeze | grep -iE '^(snntorch|mlxtend|scikit-learn|scipy|joblib|threadpoolctl|tqdm)==')
	@ls $(GPU_KIT)

clean:
	rm -rf $(VENV) $(CORE310) $(LAVA) $(LAVADL) $(GPU_KIT) results .pytest_cache
