#!/usr/bin/env bash
# What only a GPU can show, in one prepared run of at most BUDGET seconds (default 540: nine
# minutes, for a 15-minute lease with its start-up), on one H100/H200 (README, "On a GPU"):
#   1. the machine (nvidia-smi, library versions);
#   2. the CUDA-only tests: graph replays against eager steps, for every method alone and for
#      runs trained together, each on its own stream;
#   3. bench speed with CUDA graphs, and bench speed --together 6 (six runs of each method trained
#      together against six one by one);
#   4. the paper's MNIST protocol for seed 0 (ccvae, mathieu, szabo at 16/16 and 64/64, trained
#      together with CUDA graphs, their probes fitted side by side, each t-SNE in a CPU worker
#      process as soon as its run has trained, figures), the report and the check against the paper;
#      with time left, seeds 1-4 of the same grid. Stopped at the budget, every run checkpoints:
#      the same command (same WORK) resumes it.
# Under $OUT it writes at most 8 files, each under 16 MiB: summary.txt (every step, its time and
# result), check_paper.txt, speed_together.txt, report.md, and results.tar.xz.part0 to part3 (the
# results folder without checkpoints, with the logs of every step, in 15 MiB parts). It never needs the internet; the lent
# machines lack openTSNE, so put its wheel in .whl/ first (README, "On a GPU").
#   OUT=/some/dir scripts/gpu_evidence.sh [BUDGET_SECONDS]
# WORK (default /tmp/gpu_evidence) holds the results and checkpoints between reruns; DEVICE=cpu
# tries the script without a GPU (with PRESET=smoke, in a minute or two).
set -uo pipefail
cd "$(dirname "$0")/.."
out=${OUT:?set OUT to the folder that receives the results}
budget=${1:-540}
started=$(date +%s)
python=${PYTHON:-python3}
device=${DEVICE:-cuda}
preset=${PRESET:-paper}
work=${WORK:-/tmp/gpu_evidence}
results=$work/results
mkdir -p "$out" "$work"
log() { echo "[$(( $(date +%s) - started )) s] $*" | tee -a "$out/summary.txt"; }
left() { echo $(( budget - ($(date +%s) - started) )); }
graphs=--cuda-graphs
[ "$device" = cpu ] && graphs=""

if compgen -G ".whl/*.whl" > /dev/null; then
  "$python" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
fi
log "machine: $(nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null || echo none)"
{ nvidia-smi; "$python" -c 'import torch, sys; print(sys.version); print("torch", torch.__version__)'
  "$python" -m pip list 2>/dev/null; } > "$work/machine.txt" 2>&1

log "CUDA-only tests"
"$python" -m pytest -q -p no:cacheprovider tests/test_fast_path.py tests/test_together.py -k "cuda or graphed" \
  > "$work/cuda_tests.txt" 2>&1
log "tests: $(tail -1 "$work/cuda_tests.txt")"

log "bench speed $graphs"
# shellcheck disable=SC2086 # $graphs is one word or none
"$python" -m bench speed --methods all --device "$device" --iterations 100 --warmup 10 $graphs \
  > "$work/speed.txt" 2>&1
log "bench speed --together 6 $graphs"
# shellcheck disable=SC2086
"$python" -m bench speed --methods all --device "$device" --together 6 --iterations 50 --warmup 10 \
  $graphs > "$work/speed_together.txt" 2>&1
grep -E "^(method|ccvae|mathieu|szabo|mlvae|gvae|lord|latent probes) " "$work/speed_together.txt" \
  | tee -a "$out/summary.txt"

for seeds in 0 1,2,3,4; do
  remaining=$(( $(left) - 75 ))  # kept for the report, the check and the tarball
  if [ "$remaining" -lt 30 ]; then
    log "no time left for seeds $seeds"
    break
  fi
  log "paper protocol, seeds $seeds, for at most $remaining s"
  # shellcheck disable=SC2086
  timeout --signal=INT --kill-after=30 "$remaining" "$python" -m bench run \
    --methods ccvae,mathieu,szabo --dataset mnist --preset "$preset" --paper-sizes --seeds "$seeds" \
    --device "$device" --together $graphs --results "$results" >> "$work/protocol.txt" 2>&1
  code=$?
  log "seeds $seeds: exit $code (0: done; 124 or 130: stopped at the budget, every run checkpointed)"
  grep -E "^(bench: training|probes of|code_leakage of)" "$work/protocol.txt" | tail -3 \
    | tee -a "$out/summary.txt"
  [ "$code" = 0 ] || break
done

"$python" -m bench report --results "$results" >> "$work/protocol.txt" 2>&1
"$python" -m bench check --against paper --results "$results" > "$work/check_paper.txt" 2>&1
log "check against the paper: $(tail -1 "$work/check_paper.txt")"
"$python" -m bench status --results "$results" > "$work/status.txt" 2>&1
log "runs: $(tail -1 "$work/status.txt")"
cp "$work/check_paper.txt" "$work/speed_together.txt" "$out/"
[ -f "$results/report.md" ] && cp "$results/report.md" "$out/"
log "end; packing"
# At most 4 parts of 15 MiB (with the 4 files above, 8 files come back). report.html is left out
# (bench report rebuilds it from the tarball); if the parts would still be too many, so are the
# per-iteration losses.csv files (the curves.png of each run stay).
pack() {
  rm -f "$out"/results.tar.xz*
  tar -cJf "$work/results.tar.xz" -C "$work" --exclude=checkpoint.pt --exclude=tensorboard \
    --exclude=report.html "$@" results machine.txt cuda_tests.txt speed.txt speed_together.txt \
    protocol.txt check_paper.txt status.txt 2>> "$out/summary.txt"
  split -b 15M -d -a 1 "$work/results.tar.xz" "$out/results.tar.xz.part"
}
pack
if [ "$(ls "$out"/results.tar.xz.part* | wc -l)" -gt 4 ]; then
  log "the results are too large: packing them again without losses.csv"
  pack --exclude=losses.csv
fi
log "unpack with: cat results.tar.xz.part* | tar -xJf -"
ls -l "$out" >> "$out/summary.txt"
