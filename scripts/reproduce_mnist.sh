#!/usr/bin/env bash
# The paper's MNIST protocol: the three methods at both latent sizes (z/s 16/16 and 64/64),
# training, probes and figures, then the report and the check against the paper's table.
# Resumable: rerun the same command after an interruption; finished runs are skipped and
# unfinished ones resume from their last checkpoint.
#   scripts/reproduce_mnist.sh [RESULTS_DIR] [DEVICE]      (defaults: results, auto)
# PRESET=quick scripts/reproduce_mnist.sh /tmp/try cpu   runs the same grid with a shorter preset.
# JOBS=6 trains the six runs at once in separate processes (on one GPU: keeps it busy).
# GPU_FLAGS="--cuda-graphs" (and/or --tf32) passes those options to the timing and the runs;
# SPEED=0 skips the timing.
set -euo pipefail
cd "$(dirname "$0")/.."
results=${1:-results}
device=${2:-auto}
preset=${PRESET:-paper}
jobs=${JOBS:-1}
python=${PYTHON:-python}
read -r -a gpu_flags <<< "${GPU_FLAGS:-}"
if [ "${SPEED:-1}" != 0 ]; then
  "$python" -m bench speed --methods all --device "$device" --iterations 50 "${gpu_flags[@]}"
fi
"$python" -m bench run --methods all --dataset mnist --preset "$preset" --z-dim 16,64 --s-dim 16,64 \
  --device "$device" --results "$results" --jobs "$jobs" "${gpu_flags[@]}"
"$python" -m bench report --results "$results"
if [ "$preset" = paper ]; then
  "$python" -m bench check --against paper --results "$results"
fi
