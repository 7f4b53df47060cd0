#!/usr/bin/env bash
# How far the ci preset's numbers move between installs and thread counts: the measurement behind
# bench check's per-seed tolerance (results/baselines/README.md). Clones this repository's HEAD
# into a fresh folder with a fresh virtualenv, trains the ci grid (seeds 0,1,2) with THREADS
# threads, and prints, per seed, the largest difference from the committed baseline's own numbers
# for that seed (and the row it occurs in).
#   THREADS=2 scripts/ci_determinism.sh [WORK_DIR]   (default: a temporary folder, deleted after)
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
threads=${THREADS:-2}
work=${1:-$(mktemp -d)}
[ -n "${1:-}" ] || trap 'rm -rf "$work"' EXIT
git clone -q "$repo" "$work/clone"
python3 -m venv "$work/venv"
"$work/venv/bin/pip" install -q -r "$work/clone/requirements.txt" -c "$work/clone/constraints.txt"
cd "$work/clone"
OMP_NUM_THREADS=$threads MKL_NUM_THREADS=$threads "$work/venv/bin/python" -m bench run \
  --methods all --dataset mnist --preset ci --seeds 0,1,2 --device cpu --results "$work/results" \
  > "$work/run.log" 2>&1
"$work/venv/bin/python" - "$work/results" results/baselines/mnist-ci.csv "$threads" <<'PY'
import sys
from bench.report import comparison as check
numbers = check.current_numbers(sys.argv[1])
baseline = check.read_baseline(sys.argv[2])
reference = check.seed_numbers(check.reference_rows(baseline)).drop(columns="computed_on")
seeds = reference.merge(numbers, on=[*check.KEY, "seed"])
seeds["difference"] = (seeds["value"] - seeds["reference"]).abs() / seeds["probe"].map(check.POINT)
on = sorted(set(numbers.computed_on))
print(f"threads {sys.argv[3]}; computed on {'; '.join(on)}; the baseline's reference machine: "
      f"{check.machines(baseline)[0]}")
for seed, part in seeds.groupby("seed"):
    worst = part.loc[part["difference"].idxmax()]
    print(f"seed {seed}: largest difference {worst['difference']:.4f} points "
          f"({worst['method']} {worst['probe']} {worst['split']}: {worst['reference']} -> {worst['value']}), "
          f"{(part['difference'] > 0).sum()} of {len(part)} numbers differ")
PY
