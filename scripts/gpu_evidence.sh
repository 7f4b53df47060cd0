#!/usr/bin/env bash
# What only a GPU can show, in one prepared run (README, "On a GPU"), written under $OUT:
#   1. the machine (nvidia-smi, library versions);
#   2. the CUDA-only tests: CUDA graph replays against eager steps, every method;
#   3. bench speed --compare, eager, with CUDA graphs, and with CUDA graphs and TF32;
#   4. the paper's MNIST protocol (scripts/reproduce_mnist.sh: six runs at once) until BUDGET
#      seconds have passed since the start, then the report of what finished. Resumable: the same
#      command with the same OUT/results finishes the rest.
#   OUT=/some/dir scripts/gpu_evidence.sh [BUDGET_SECONDS]     (default 480)
# Carried wheels (the lent machines have no openTSNE): put them in .whl/ (see the README).
# RUN_FLAGS are the protocol's GPU options (default --cuda-graphs, if the CUDA graph tests passed).
set -uo pipefail
cd "$(dirname "$0")/.."
out=${OUT:?set OUT to the folder that receives the results}
budget=${1:-480}
started=$(date +%s)
python=${PYTHON:-python3}
device=${DEVICE:-cuda}  # DEVICE=cpu only to try the script without a GPU
mkdir -p "$out"
log() { echo "[$(( $(date +%s) - started )) s] $*" | tee -a "$out/steps.txt"; }

if compgen -G ".whl/*.whl" > /dev/null; then
  "$python" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
fi
log "machine"
{ nvidia-smi; "$python" -c 'import torch, sys; print(sys.version); print("torch", torch.__version__,
  torch.cuda.get_device_name(0))'; "$python" -m pip list 2>/dev/null; } > "$out/machine.txt" 2>&1
log "CUDA-only tests"
"$python" -m pytest -q -p no:cacheprovider tests/test_fast_path.py -k cuda > "$out/cuda_tests.txt" 2>&1
log "tests: $(tail -1 "$out/cuda_tests.txt")"
# The protocol uses CUDA graphs only when the graph tests passed on this machine.
default_flags=--cuda-graphs
if ! tail -1 "$out/cuda_tests.txt" | grep -q passed || tail -1 "$out/cuda_tests.txt" | grep -qE "failed|skipped|error"; then
  default_flags=""
fi
for flags in "" "--cuda-graphs" "--cuda-graphs --tf32"; do
  name=speed${flags// /}
  log "bench speed --compare $flags"
  # shellcheck disable=SC2086 # the flags are words
  "$python" -m bench speed --methods all --device "$device" --iterations 200 --warmup 10 --compare \
    $flags > "$out/${name//--/_}.txt" 2>&1
done
remaining=$(( budget - ($(date +%s) - started) ))
if [ "$remaining" -gt 60 ]; then
  log "paper protocol for up to $remaining s (flags: ${RUN_FLAGS-$default_flags})"
  SPEED=0 JOBS=${JOBS:-6} GPU_FLAGS=${RUN_FLAGS-$default_flags} PYTHON=$python \
    timeout --signal=INT --kill-after=60 "$remaining" scripts/reproduce_mnist.sh "$out/results" \
    "$device" > "$out/protocol.txt" 2>&1
  log "protocol exit $? (124 or 130: stopped at the budget, each run checkpointed)"
else
  log "no time left for the protocol ($remaining s)"
fi
"$python" -m bench report --results "$out/results" >> "$out/protocol.txt" 2>&1
"$python" -m bench status --results "$out/results" > "$out/status.txt" 2>&1
log "end"
