#!/usr/bin/env bash
# What only a GPU can show, in one lease of at most BUDGET seconds (default 540: nine minutes of a
# 15-minute lease with its start-up), resumed across leases (docs/gpu.md):
#   OUT=/some/dir scripts/gpu_evidence.sh [BUDGET_SECONDS]
# 1. .whl/*.whl installed (the lent machines have no internet and no openTSNE), then one check that
#    every package the protocol needs imports (and, on cuda, that a GPU is there): otherwise one
#    line saying what is missing, exit 3, nothing else done.
# 2. The pack of the previous lease, if PACK_IN (default .evidence) holds results.tar.xz.part*
#    and WORK has no results yet: checked (relative paths under results/ and logs/, plain files
#    and folders only) and unpacked into WORK; a pack that cannot be used stops it (exit 4).
# 3. First lease: the CUDA tests (tests/test_gpu.py, at most 150 s), bench speed with graphs and
#    bench speed --together 6 (at most 60 s each), then the paper's MNIST protocol (ccvae, mathieu,
#    szabo at 16/16 and 64/64, trained together with CUDA graphs) one seed at a time, 0 then 1-4,
#    for what is left. Later leases: the protocol first, the tests and speed runs after it if
#    they still fit. The protocol is stopped by SIGINT RESERVE seconds before the budget ends
#    (every run checkpoints; SIGKILL 30 s later); a step that cannot fit is skipped with one line.
# 4. bench report and bench check --against paper (each with its own limit), then the pack: the
#    results folder, with the checkpoint.pt of every unfinished run and, while the pack fits, of
#    the complete runs too (bench evaluate needs them; a paper-preset seed of six runs is
#    about 37 MiB of checkpoints, 31 MiB compressed), each run's run.log and every lease's step
#    logs, as results.tar.xz in parts of 15 MiB. Over the limit (what the next lease can carry:
#    64 MiB less the rest of the tree, at most 5 parts), it drops, in turn, TensorBoard folders,
#    losses.csv of complete runs, checkpoints of complete runs; never those of unfinished runs.
#    Seeds run one at a time so that the unfinished runs' checkpoints always fit (six runs; the
#    24 runs of seeds 1-4 together would need about 125 MiB). The pack is made even after a step
#    hung: each step has its own limit, and the pack at least 45 s, past the budget if need be.
# Under OUT at most 8 files: summary.txt (every step, its time and result; at its end the runs
# complete and remaining and the next step), check_paper.txt, report.md and results.tar.xz.part0
# to part4. Next lease: copy the parts into .evidence/ at the repository root and run the same
# command with .evidence carried (with .whl).
# Environment: DEVICE (cuda; cpu for a dry run, with PRESET=smoke), PRESET (paper), PYTHON
# (python3), WORK (/tmp/gpu_evidence; results and logs, also between reruns on one machine),
# PACK_IN (.evidence), METHODS (ccvae,mathieu,szabo), SIZES (16/16,64/64), SEEDS ("0 1 2 3 4": the
# groups trained together, in turn), TESTS=0 and SPEED=0 skip those steps; for dry runs RUN_ARGS
# (more bench run arguments, e.g. --epochs 3 --set iterations_per_epoch=40: other run ids),
# PROTOCOL_SECONDS (a cap on the protocol's time), RESERVE (seconds kept for what follows the
# protocol, default 60: its 30 s grace after SIGINT, then three times the 10 s that report, check
# and pack took for a paper seed on 2 CPU cores) and PACK_MAX_MB (the pack's limit in MiB).
# Exit: 0 (whatever the protocol reached: summary.txt says), 2 bad settings, 3 a package or the
# GPU missing, 4 an unusable pack.
set -uo pipefail
: "${OUT:?set OUT to the folder that receives the results}"
# OUT, WORK and PACK_IN as absolute paths (relative ones: to the caller's folder), then the repo.
out=$(realpath -m -- "$OUT")
work=$(realpath -m -- "${WORK:-/tmp/gpu_evidence}")
cd "$(dirname "$0")/.." || exit 2
repo=$PWD
pack_in=$repo/.evidence
[ -n "${PACK_IN:-}" ] && pack_in=$(cd "$OLDPWD" && realpath -m -- "$PACK_IN")
if [ "$out" = "$pack_in" ] || [ "$work" = "$pack_in" ]; then
  echo "gpu_evidence: OUT and WORK must not be PACK_IN ($pack_in): the previous pack would be lost" >&2
  exit 2
fi
budget=${1:-540}
python=${PYTHON:-python3}
device=${DEVICE:-cuda}
preset=${PRESET:-paper}
methods=${METHODS:-ccvae,mathieu,szabo}
sizes=${SIZES:-16/16,64/64}
seed_groups=${SEEDS:-0 1 2 3 4}
reserve=${RESERVE:-60}
read -ra run_args <<< "${RUN_ARGS:-}"
for number in "$budget" "$reserve" ${PROTOCOL_SECONDS:+"$PROTOCOL_SECONDS"} ${PACK_MAX_MB:+"$PACK_MAX_MB"}; do
  [[ "$number" =~ ^[0-9]+$ ]] || { echo "gpu_evidence: expected whole seconds or MiB, got '$number'" >&2; exit 2; }
done
[[ "$methods" =~ ^[a-z0-9_-]+(,[a-z0-9_-]+)*$ && "$sizes" =~ ^[0-9]+/[0-9]+(,[0-9]+/[0-9]+)*$ &&
   "$seed_groups" =~ ^[0-9]+(,[0-9]+)*(\ [0-9]+(,[0-9]+)*)*$ ]] ||
  { echo "gpu_evidence: expected METHODS like a,b, SIZES like 16/16,64/64, SEEDS like '0 1,2'" >&2; exit 2; }
now() {  # milliseconds
  if [ -n "${EPOCHREALTIME:-}" ]; then local t=${EPOCHREALTIME/[.,]/}; echo $(( t / 1000 )); else date +%s%3N; fi
}
started=$(now)
elapsed() { local ms=$(( $(now) - ${1:-$started} )); printf '%d.%d' $(( ms / 1000 )) $(( ms % 1000 / 100 )); }
left() { echo $(( budget - ($(now) - started) / 1000 )); }
mkdir -p "$out" "$work" || exit 2
rm -f "$out"/results.tar.xz.part* "$out"/summary.txt "$out"/check_paper.txt "$out"/report.md
log() { echo "[$(elapsed) s] $*" | tee -a "$out/summary.txt"; }
graphs=(--cuda-graphs)
[ "$device" = cpu ] && graphs=()
z_dims=$(tr ',' '\n' <<< "$sizes" | cut -d/ -f1 | paste -sd,)
s_dims=$(tr ',' '\n' <<< "$sizes" | cut -d/ -f2 | paste -sd,)

# 1. Wheels, then every package the protocol needs, really imported.
if compgen -G ".whl/*.whl" > /dev/null; then
  mark=$(now)
  if timeout 120 "$python" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir \
      --upgrade --target "$work/site" .whl/*.whl > "$work/pip.txt" 2>&1; then
    export PYTHONPATH=$work/site${PYTHONPATH:+:$PYTHONPATH}
    log "installed $(compgen -G ".whl/*.whl" | wc -l) wheel(s) from .whl/ in $(elapsed "$mark") s"
  else
    log "installing .whl/*.whl failed: $(tail -1 "$work/pip.txt")"
  fi
fi
mark=$(now)
checks=$(mktemp -d)
imports() {  # FILE NAME...: per package "ok NAME VERSION" or "missing NAME (why)"; "no GPU"
  local file=$1; shift
  timeout 120 "$python" - "$device" "$@" > "$file" 2>/dev/null <<'PY'
import importlib, sys
print(f"python {sys.version_info[0]}.{sys.version_info[1]} {sys.version}".replace("\n", " "))
for name in sys.argv[2:]:
    try:
        module = importlib.import_module(name)
    except Exception as error:  # noqa: BLE001 - any failure to import counts
        print(f"missing {name} ({type(error).__name__}: {error})".replace("\n", " "))
        continue
    print(f"ok {name} {getattr(module, '__version__', '?')}")
    if name == "torch" and sys.argv[1].startswith("cuda") and not module.cuda.is_available():
        print("no GPU")
PY
}
# torch in one process, the rest in another: the check lasts the longer of the two, not the sum
imports "$checks/torch" torch &
imports "$checks/rest" numpy pandas sklearn scipy matplotlib seaborn openTSNE tqdm h5py
wait
missing=$(awk '/^missing / { sub(/^missing /, ""); s = s (s ? "; " : "") $0 } END { print s }' \
  "$checks/torch" "$checks/rest")
version=$(awk '/^python / { print $2; exit }' "$checks/rest")
if [ -n "$missing" ]; then
  problem="cannot import $missing: put their wheels for Python ${version:-3.12} in .whl/ and carry it (docs/gpu.md)"
elif [ "$(grep -c '^ok ' "$checks/torch" "$checks/rest" | awk -F: '{ n += $2 } END { print n }')" != 10 ]; then
  problem="$python did not run the import check (exit or timeout)"
elif grep -q '^no GPU' "$checks/torch"; then
  problem="no CUDA device (torch.cuda.is_available() is False): DEVICE=cpu PRESET=smoke for a dry run"
else
  problem=""
fi
if [ -n "$problem" ]; then
  rm -rf "$checks"
  echo "gpu_evidence: nothing was run: $problem" | tee -a "$out/summary.txt" >&2
  exit 3
fi
{ grep '^python ' "$checks/rest"; grep -h '^ok ' "$checks/rest" "$checks/torch" | sed 's/^ok //'; } \
  > "$work/versions.txt"
rm -rf "$checks"
log "every package the protocol needs imports (checked in $(elapsed "$mark") s)"

# The helpers that need Python but not torch: the grid's state, the pack's file list, the unpack.
cat > "$work/helper.py" <<'PY'
import json, re, sys, tarfile
from pathlib import Path

command, *args = sys.argv[1:]
SAFE = re.compile(r"(results|logs)(/[A-Za-z0-9][A-Za-z0-9._-]*)*")


def runs(results):
    """(folder, config, state) of every run folder: complete, failed, unfinished (a checkpoint) or
    empty (stopped before its first checkpoint)."""
    for folder in sorted(Path(results, "runs").glob("*/")):
        try:
            config = json.loads((folder / "config.json").read_text())
        except (OSError, ValueError):
            config = {}
        try:
            state = json.loads((folder / "status.json").read_text()).get("state")
        except (OSError, ValueError):
            state = None
        if state not in ("complete", "failed"):
            state = "unfinished" if (folder / "checkpoint.pt").is_file() else "empty"
        yield folder, config, state


if command == "grid":  # RESULTS METHODS SEEDS SIZES PRESET -> complete unfinished failed total
    results, methods, seeds, sizes, preset = args
    wanted = {(m, int(seed), int(z), int(s)) for m in methods.split(",")
              for seed in seeds.split(",") for z, s in (pair.split("/") for pair in sizes.split(","))}
    found = {}
    for _, config, state in runs(results):
        c = config.get("method_config", {})
        key = (config.get("method"), config.get("seed"), c.get("z_dim"), c.get("s_dim"))
        if key in wanted and config.get("preset") == preset and found.get(key) != "complete":
            found[key] = state
    states = list(found.values())
    print(states.count("complete"), states.count("unfinished"), states.count("failed"), len(wanted))

elif command == "status":  # RESULTS: each run's state (bench status, without its imports)
    for folder, config, state in runs(args[0]):
        c = config.get("method_config", {})
        try:
            reason = json.loads((folder / "status.json").read_text()).get("reason", "")
        except (OSError, ValueError):
            reason = ""
        print(f"{folder.name}  {state:<10}  seed {config.get('seed')}, z/s {c.get('z_dim')}/"
              f"{c.get('s_dim')}, preset {config.get('preset')}  {reason}".rstrip())

elif command == "files":  # WORK LEVEL: the files to pack, NUL-separated, relative to WORK
    work, level = Path(args[0]), int(args[1])
    complete = {folder.name for folder, _, state in runs(work / "results") if state == "complete"}
    for root in ("results", "logs"):
        for path in sorted((work / root).rglob("*")):
            relative = path.relative_to(work)
            parts = relative.parts
            if not path.is_file() or path.is_symlink() or any(p.startswith(".") for p in parts):
                continue  # stale temporaries of killed writers too
            if parts[:2] == ("results", "locks") or relative.as_posix() == "results/report.html":
                continue  # locks die with their process; bench report rebuilds report.html
            run = parts[2] if parts[:2] == ("results", "runs") and len(parts) > 3 else None
            if level >= 1 and "tensorboard" in parts:
                continue
            if level >= 2 and run in complete and parts[-1] == "losses.csv":
                continue
            if level >= 3 and run in complete and parts[-1] == "checkpoint.pt":
                continue
            sys.stdout.write(relative.as_posix() + "\0")

elif command == "unpack":  # TAR WORK: check every member, then extract
    tarball, work = args
    with tarfile.open(tarball, "r:") as pack:
        members = pack.getmembers()
        bad = [m.name for m in members if not (m.isfile() or m.isdir()) or not SAFE.fullmatch(m.name)]
        if bad:
            sys.exit(f"refused: {len(bad)} member(s) not plain files or folders under results/ "
                     f"or logs/ with plain names, e.g. {bad[0]!r}")
        if sum(m.size for m in members) > 2**30:
            sys.exit("refused: it unpacks to more than 1 GiB")
        if hasattr(tarfile, "data_filter"):
            pack.extractall(work, members, filter="data")
        else:  # Python < 3.11.4: the names and types are checked above
            pack.extractall(work, members)
    print(f"{len(members)} members")
else:
    sys.exit(f"unknown helper command {command}")
PY
helper() { "$python" "$work/helper.py" "$@"; }

# 2. The previous lease's pack.
if compgen -G "$work/results/runs/*" > /dev/null; then
  log "WORK ($work) already holds results: continuing them (PACK_IN not read)"
elif compgen -G "$pack_in/results.tar.xz.part*" > /dev/null; then
  mark=$(now)
  if report=$(cat "$pack_in"/results.tar.xz.part* | timeout 120 xz -dc -T0 2>&1 > "$work/previous.tar" &&
      timeout 120 "$python" "$work/helper.py" unpack "$work/previous.tar" "$work" 2>&1); then
    size=$(cat "$pack_in"/results.tar.xz.part* | wc -c | awk '{ printf "%.1f", $1 / 1048576 }')
    parts=$(compgen -G "$pack_in/results.tar.xz.part*" | wc -l)
    log "unpacked $parts part(s) from $pack_in ($size MiB, $report) in $(elapsed "$mark") s"
    rm -f "$work/previous.tar"
  else  # refused or unreadable: stop rather than start the grid again beside it
    rm -f "$work/previous.tar"
    log "gpu_evidence: nothing was run: the pack in $pack_in cannot be used: $(tail -1 <<< "$report")" >&2
    exit 4
  fi
fi
results=$work/results
lease=$(( $(compgen -G "$work/logs/lease*" | wc -l) + 1 ))
logs=$work/logs/lease$lease
mkdir -p "$logs" "$results"
counts() { helper grid "$results" "$methods" "$1" "$sizes" "$preset"; }
resuming=0
compgen -G "$results/runs/*" > /dev/null && resuming=1
if [ "$resuming" = 1 ]; then
  read -r complete unfinished failed total <<< "$(counts "${seed_groups// /,}")"
  log "lease $lease: $complete run(s) complete, $unfinished unfinished with a checkpoint, $failed failed, of $total"
else
  log "lease $lease: no earlier results"
fi

# A step under its own limit: at most MAX s, never past the budget less KEEP s, skipped when
# less than MIN s remain for it.
step() {  # NAME MAX MIN KEEP LOGFILE COMMAND...
  local name=$1 limit=$2 least=$3 keep=$4 file=$5 mark code; shift 5
  local room=$(( $(left) - keep ))
  if [ "$room" -lt "$least" ]; then
    log "$name: skipped, it needs $least s and $room s are left"
    return 125
  fi
  [ "$room" -lt "$limit" ] && limit=$room
  mark=$(now)
  timeout --kill-after=10 "$limit" "$@" > "$file" 2>&1
  code=$?
  log "$name: exit $code in $(elapsed "$mark") s$([ "$code" = 124 ] && echo " (stopped at its limit, $limit s)")"
  return "$code"
}

machine() {
  log "machine: $(timeout 20 nvidia-smi --query-gpu=name,memory.total,driver_version \
    --format=csv,noheader 2>/dev/null || echo no GPU)"
  { cat "$work/versions.txt"; timeout 20 nvidia-smi; } > "$logs/machine.txt" 2>&1
}

cuda_tests() {
  if [ "${TESTS:-1}" = 0 ]; then log "CUDA tests: skipped (TESTS=0)"; return; fi
  if [ ! -f tests/test_gpu.py ]; then log "CUDA tests: skipped, tests/test_gpu.py is missing"; return; fi
  step "CUDA tests (tests/test_gpu.py)" 150 150 "$reserve" "$logs/cuda_tests.txt" \
    "$python" -m pytest -q -p no:cacheprovider tests/test_gpu.py
  [ -s "$logs/cuda_tests.txt" ] && log "tests: $(tail -1 "$logs/cuda_tests.txt")"
}

speed() {
  if [ "${SPEED:-1}" = 0 ]; then log "speed runs: skipped (SPEED=0)"; return; fi
  step "bench speed${graphs[*]:+ ${graphs[*]}}" 60 60 "$reserve" "$logs/speed.txt" "$python" -m bench speed \
    --methods all --device "$device" --iterations 100 --warmup 10 "${graphs[@]}"
  step "bench speed --together 6${graphs[*]:+ ${graphs[*]}}" 60 60 "$reserve" "$logs/speed_together.txt" \
    "$python" -m bench speed --methods all --device "$device" --together 6 --iterations 50 \
    --warmup 10 "${graphs[@]}"
  grep -E "^(method|ccvae|mathieu|szabo|mlvae|gvae|lord|latent probes) " "$logs/speed_together.txt" \
    2>/dev/null | tee -a "$out/summary.txt"
}

protocol() {
  local end=$(( started + budget * 1000 - reserve * 1000 )) least=45  # milliseconds, seconds
  local group limit code mark complete unfinished failed total
  if [ -n "${PROTOCOL_SECONDS:-}" ]; then
    [ $(( $(now) + PROTOCOL_SECONDS * 1000 )) -lt "$end" ] && end=$(( $(now) + PROTOCOL_SECONDS * 1000 ))
    [ "$PROTOCOL_SECONDS" -lt "$least" ] && least=1
  fi
  for group in $seed_groups; do
    read -r complete unfinished failed total <<< "$(counts "$group")"
    if [ -z "$total" ]; then
      log "paper protocol: the state of the runs cannot be read (see $work/helper.py)"
      return
    elif [ "$complete" = "$total" ]; then
      log "paper protocol, seeds $group: all $total runs complete"
      continue
    fi
    limit=$(( end - $(now) ))
    if [ "$limit" -lt $(( least * 1000 )) ]; then
      log "paper protocol, seeds $group: skipped, $(( limit / 1000 )) s left for it ($complete of $total runs complete)"
      return
    fi
    limit=$(printf '%d.%03d' $(( limit / 1000 )) $(( limit % 1000 )))
    log "paper protocol, seeds $group: $complete of $total runs complete; at most $limit s"
    mark=$(now)
    timeout --preserve-status --signal=INT --kill-after=30 "$limit" "$python" -m bench run \
      --methods "$methods" --dataset mnist --preset "$preset" --z-dim "$z_dims" --s-dim "$s_dims" \
      --seeds "$group" --device "$device" --together "${graphs[@]}" --results "$results" \
      "${run_args[@]}" >> "$logs/protocol.txt" 2>&1
    code=$?
    read -r complete unfinished failed total <<< "$(counts "$group")"
    log "seeds $group: exit $code in $(elapsed "$mark") s (0: done; 130: stopped at its limit," \
      "checkpointed; 137: killed 30 s later); $complete of $total complete, $unfinished unfinished," \
      "$failed failed"
    [ "$code" = 0 ] || return
  done
}

# 3. The steps, in the lease's order.
machine
if [ "$resuming" = 1 ]; then
  protocol; cuda_tests; speed
else
  cuda_tests; speed; protocol
fi

# 4. Report, check, status, pack: each limited, the pack always.
pack_seconds=30  # the pack's share of the reserve (measured: 7.5 s for 31 MiB on 2 CPU cores)
step "bench report" 40 10 "$pack_seconds" "$logs/report.txt" "$python" -m bench report --results "$results"
if [ "$preset" = paper ]; then
  step "bench check --against paper" 20 5 "$pack_seconds" "$logs/check_paper.txt" \
    "$python" -m bench check --against paper --results "$results"
  [ -s "$logs/check_paper.txt" ] && log "check against the paper: $(tail -1 "$logs/check_paper.txt")"
  cp "$logs/check_paper.txt" "$out/" 2>/dev/null
else
  log "bench check --against paper: skipped (preset $preset has no paper numbers)"
fi
timeout 20 "$python" "$work/helper.py" status "$results" > "$logs/status.txt" 2>&1
[ -f "$results/report.md" ] && cp "$results/report.md" "$out/"

if [ -n "${PACK_MAX_MB:-}" ]; then
  limit_kib=$(( PACK_MAX_MB * 1024 ))
else  # what the next lease can carry: 64 MiB for the whole tree, with 1 MiB to spare
  tree_kib=$(du -sk --exclude=.git --exclude=.evidence --exclude=__pycache__ --exclude=.venv \
    --exclude=.tox --exclude=.pytest_cache --exclude=.ruff_cache "$repo" | cut -f1)
  limit_kib=$(( (63 * 1024) - tree_kib ))
  [ "$limit_kib" -lt $(( 8 * 1024 )) ] && log "WARNING: the repository's files take" \
    "$(( tree_kib / 1024 )) MiB of the 64 a lease carries: the pack has $(( limit_kib / 1024 )) MiB"
  [ "$limit_kib" -gt $(( 75 * 1024 )) ] && limit_kib=$(( 75 * 1024 ))
fi
cp "$out/summary.txt" "$logs/summary.txt"
mark=$(now)
pack_end=$(( mark / 1000 + ($(left) > 45 ? $(left) : 45) ))  # past the budget if need be
dropped=("nothing" "TensorBoard folders" "TensorBoard folders and losses.csv of complete runs"
         "TensorBoard folders, losses.csv and checkpoint.pt of complete runs")
for level in 0 1 2 3; do
  helper files "$work" "$level" > "$work/pack.next"
  if [ "$level" != 0 ]; then
    cmp -s "$work/pack.next" "$work/pack.list" && continue  # nothing of that kind to drop
    log "the pack is $(( size_kib / 1024 )) MiB, over the limit of $(( limit_kib / 1024 )) MiB:" \
      "packing again without ${dropped[$level]}"
  fi
  mv "$work/pack.next" "$work/pack.list"
  rm -f "$work/results.tar.xz"
  # shellcheck disable=SC2016 # expanded by the inner bash
  timeout $(( pack_end - $(now) / 1000 > 10 ? pack_end - $(now) / 1000 : 10 )) bash -o pipefail -c \
    'tar -cf - -C "$0" --no-recursion --null -T "$0/pack.list" | xz -T0 -1 -c > "$0/results.tar.xz"' "$work"
  code=$?
  size_kib=$(( ($(stat -c %s "$work/results.tar.xz" 2>/dev/null || echo 0) + 1023) / 1024 ))
  dropped_now=${dropped[$level]}
  if [ "$code" != 0 ] || [ "$size_kib" -le "$limit_kib" ]; then break; fi
done
split -b 15M -d -a 1 "$work/results.tar.xz" "$out/results.tar.xz.part"
parts=$(compgen -G "$out/results.tar.xz.part*" | wc -l)
files=$(tr -cd '\0' < "$work/pack.list" | wc -c)
size=$(awk -v k="$size_kib" 'BEGIN { printf "%.1f", k / 1024 }')
log "packed $files files, $size MiB in $parts part(s) in $(elapsed "$mark") s (dropped: $dropped_now;" \
  "limit $(( limit_kib / 1024 )) MiB)$([ "$code" != 0 ] && echo "; tar or xz FAILED, exit $code")"
[ "$size_kib" -le "$limit_kib" ] || log "WARNING: over the limit: the next lease cannot carry it whole"
[ "$parts" -le 5 ] || log "WARNING: $parts parts: only 5 come back with the other files"
rm -f "$work/results.tar.xz" "$work/pack.list" "$work/pack.next"

read -r complete unfinished failed total <<< "$(counts "${seed_groups// /,}")"
log "grid (seeds ${seed_groups// /,}): $complete of $total runs complete, $(( total - complete ))" \
  "remain ($unfinished unfinished with a checkpoint, $failed failed)"
first=${seed_groups%% *}
read -r first_complete _ _ first_total <<< "$(counts "$first")"
log "seed $first: $first_complete of $first_total runs complete"
if [ "$complete" = "$total" ]; then
  log "next: nothing left to train; unpack with: cat results.tar.xz.part* | tar -xJf -"
else
  log "next: copy the results.tar.xz.part* of OUT into .evidence/ at the repository root (first" \
    "delete the old parts there) and run the same command with .evidence carried:" \
    "carry [\".whl\", \".evidence\"]"
fi
