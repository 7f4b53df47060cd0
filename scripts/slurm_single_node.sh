#!/usr/bin/env bash
# Start, check or stop a single-node SLURM cluster on this machine (controller and compute node
# both on localhost), for tests that submit real jobs (sbatch/srun, submitit).
#
#   scripts/slurm_single_node.sh start [--install]   # start munged, slurmctld, slurmd; wait until idle
#   scripts/slurm_single_node.sh status              # sinfo + daemons; exit 0 iff the node is usable
#   scripts/slurm_single_node.sh stop                # cancel jobs, stop the daemons this script started
#
# CI runs it in a fresh Debian container (as root, no systemd, no cgroups); it is also meant as a
# worked example for users who want a throw-away cluster: every step prints one line, and the
# generated /etc/slurm/slurm.conf is commented.
#
# Needs root (it writes /etc/slurm, /etc/munge, /var/spool, /var/log and runs the daemons as root).
# Needs Debian's packages slurm-wlm and munge; `start --install` runs
# `apt-get update && apt-get install -y slurm-wlm munge` first (otherwise nothing is installed).
# Checked with SLURM 22.05.8 (Debian 12, slurm-wlm 22.05.8-4+deb12u3) and munge 0.5.15.
# Timing on a busy 2-core machine: `start` 1-3 s (5 s when it first has to clean up a half-dead
# cluster), `stop` about 5-7 s; `--install` adds about 11 s for apt when the packages are missing.
#
# What `start` does:
#   1. munge key /etc/munge/munge.key (1024 random bytes, owner munge, mode 400) if absent;
#   2. munged, as the munge user, unless a munged already answers (then it is left alone);
#   3. /etc/slurm/slurm.conf (an existing file this script did not write is first backed up to
#      slurm.conf.bak-<date>); spool dirs under /var/spool, logs under /var/log/slurm;
#   4. slurmctld, then slurmd (both daemonize); their pids (and munged's, if started here) go to
#      /run/bench-slurm/pids, which `stop` uses to stop exactly those processes;
#   5. waits (up to SLURM_START_TIMEOUT, default 60 s) until `sinfo` reports the node idle/mixed/allocated.
# Idempotence: if the daemons recorded in the state file still run and the node is usable, `start`
# leaves the cluster alone (it does not even rewrite slurm.conf); to apply a new configuration, run
# `stop` then `start`. If only some of them run, those are stopped and the cluster started afresh.
# Slurm daemons running that this script did not start make `start` fail (it will not fight them).
#
# `stop` cancels all jobs first (so that no job processes or slurmstepd outlive the cluster), then
# stops slurmd, slurmctld and munged (if this script started it) by pid: SIGTERM, then SIGKILL after
# 15 s. It does nothing, successfully, when nothing runs. Job state in /var/spool/slurmctld survives.
#
# Configuration notes: no cgroup plugin (proctrack/linuxproc, task/none), no accounting database
# (sacct says accounting storage is disabled: use squeue/scontrol), no GRES (GresTypes unset: no GPUs).
# KillWait=5: scancel sends SIGTERM to the job's processes, then SIGKILL 5 s later.
# JobRequeue=1, AuthInfo=cred_expire=10 and sched_interval=5: `scontrol requeue` works and a
# requeued job runs again about 11-16 s later (SLURM holds it pending, Reason=BeginTime, for
# cred_expire+1 s, default 121 s, and then waits for the main scheduler's next periodic pass,
# default every 60 s).
set -euo pipefail

STATE_DIR=/run/bench-slurm
PIDS_FILE=$STATE_DIR/pids
CONF_DIR=/etc/slurm
CONF=$CONF_DIR/slurm.conf
MUNGE_KEY=/etc/munge/munge.key
LOG_DIR=/var/log/slurm
CTLD_LOG=$LOG_DIR/slurmctld.log
SLURMD_LOG=$LOG_DIR/slurmd.log
CTLD_SPOOL=/var/spool/slurmctld
SLURMD_SPOOL=/var/spool/slurmd
MARKER="# Written by scripts/slurm_single_node.sh"
START_TIMEOUT=${SLURM_START_TIMEOUT:-60}
STOP_TIMEOUT=15
PARTITION=debug
NODE=$(hostname -s)

say() { echo "slurm_single_node: $*"; }

show_logs() {
  local f
  for f in "$@"; do
    if [ -s "$f" ]; then
      echo "---- last lines of $f (harmless PMIx/MPI plugin errors left out) ----" >&2
      grep -v -e 'pmix' -e 'MPI: Cannot create context' "$f" | tail -n 25 >&2 || true
    fi
  done
}

# Print a message and the logs' last lines, then exit non-zero.
fail() {
  echo "slurm_single_node: ERROR: $*" >&2
  show_logs "$CTLD_LOG" "$SLURMD_LOG"
  exit 1
}

# Pids of the processes whose command name is exactly $1 (reads /proc: pgrep may be missing).
pids_named() {
  local d comm
  for d in /proc/[0-9]*; do
    comm=$(cat "$d/comm" 2>/dev/null) || continue
    [ "$comm" = "$1" ] && echo "${d#/proc/}"
  done
  return 0
}

# True if process $2 is alive and is the program $1 (guards against a reused pid).
is_running() {
  [ -n "${2:-}" ] && [ "$(cat "/proc/$2/comm" 2>/dev/null)" = "$1" ]
}

# Pid recorded for daemon $1 in the state file (empty if none).
recorded_pid() {
  [ -f "$PIDS_FILE" ] || return 0
  awk -v n="$1" '$1 == n { print $2 }' "$PIDS_FILE" | tail -n 1
}

# Wait up to $2 s for the pid file $1 to hold a pid; print it.
read_pidfile() {
  local i pid
  for ((i = 0; i < $2 * 10; i++)); do
    pid=$(cat "$1" 2>/dev/null || true)
    if [ -n "$pid" ]; then echo "$pid"; return 0; fi
    sleep 0.1
  done
  return 1
}

node_state() {
  timeout 10 sinfo -h -n "$NODE" -o %T 2>/dev/null | head -n 1 || true
}

node_usable() {
  case "$(node_state)" in
    idle | mixed | allocated | completing) return 0 ;;
    *) return 1 ;;
  esac
}

need_root() {
  [ "$(id -u)" = 0 ] || { echo "slurm_single_node: must run as root" >&2; exit 1; }
}

# Stop process $2 (program $1): SIGTERM, wait, SIGKILL.
stop_pid() {
  local name=$1 pid=$2 i
  is_running "$name" "$pid" || return 0
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < STOP_TIMEOUT * 10; i++)); do
    is_running "$name" "$pid" || { say "stopped $name (pid $pid)"; return 0; }
    sleep 0.1
  done
  say "$name (pid $pid) ignored SIGTERM for ${STOP_TIMEOUT} s: sending SIGKILL"
  kill -KILL "$pid" 2>/dev/null || true
  for ((i = 0; i < 50; i++)); do
    is_running "$name" "$pid" || { say "killed $name (pid $pid)"; return 0; }
    sleep 0.1
  done
  echo "slurm_single_node: ERROR: $name (pid $pid) still runs" >&2
  return 1
}

write_conf() {
  local cpus mem_mb
  cpus=$(nproc)
  # RealMemory a little (5 %) under the total, so that slurmd never finds less than configured
  # (which would drain the node).
  mem_mb=$(awk '/^MemTotal:/ { printf "%d", $2 / 1024 * 0.95 }' /proc/meminfo)
  mkdir -p "$CONF_DIR"
  if [ -f "$CONF" ] && ! grep -qF "$MARKER" "$CONF"; then
    local backup
    backup=$CONF.bak-$(date +%Y%m%d-%H%M%S)
    cp -p "$CONF" "$backup"
    say "backed up the existing $CONF to $backup"
  fi
  cat >"$CONF" <<EOF
$MARKER on $(date -u +%Y-%m-%dT%H:%M:%SZ).
# A single-node test cluster: controller and compute node are both this host. Rewritten by every
# fresh 'start' of that script; edit the script, not this file.
ClusterName=bench
SlurmctldHost=$NODE
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
# A requeued job is held for cred_expire seconds before it may start again (default 120).
AuthInfo=cred_expire=10
MpiDefault=none
# No mail on a test cluster (the default /bin/mail is usually absent).
MailProg=/bin/true
# No cgroups in CI containers: track job processes through the process tree, bind nothing.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SchedulerType=sched/backfill
# Jobs that become eligible by time alone (a requeued job's BeginTime passing) start only at the
# next periodic pass of the main scheduler: every 5 s instead of 60 s. Cheap on a one-node cluster.
SchedulerParameters=sched_interval=5
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
# A node that was down comes back by itself once slurmd registers with a valid configuration.
ReturnToService=2
# Batch jobs can be requeued (scontrol requeue, node failure); submitit relies on it.
JobRequeue=1
# scancel / time limit: SIGTERM, then SIGKILL after KillWait seconds (default 30).
KillWait=5
StateSaveLocation=$CTLD_SPOOL
SlurmdSpoolDir=$SLURMD_SPOOL
SlurmctldPidFile=$STATE_DIR/slurmctld.pid
SlurmdPidFile=$STATE_DIR/slurmd.pid
SlurmctldLogFile=$CTLD_LOG
SlurmdLogFile=$SLURMD_LOG
SlurmctldDebug=info
SlurmdDebug=info
# No GresTypes (no GPUs) and no node features. Only CPUs is given, not the sockets/cores/threads
# that 'slurmd -C' reports, so that every CPU (hyperthread included) is a schedulable unit for
# CR_Core; slurmd logs "Node reconfigured socket/core boundaries" about this, harmlessly.
NodeName=$NODE CPUs=$cpus RealMemory=$mem_mb State=UNKNOWN
PartitionName=$PARTITION Nodes=$NODE Default=YES MaxTime=INFINITE State=UP
EOF
  say "wrote $CONF (node $NODE: CPUs=$cpus RealMemory=${mem_mb}MB, partition $PARTITION)"
}

start_munge() {
  if [ ! -f "$MUNGE_KEY" ]; then
    mkdir -p "$(dirname "$MUNGE_KEY")"
    (umask 077 && dd if=/dev/urandom of="$MUNGE_KEY" bs=1024 count=1 status=none)
    chown munge:munge "$MUNGE_KEY"
    chmod 400 "$MUNGE_KEY"
    say "wrote a new munge key $MUNGE_KEY"
  else
    say "munge key $MUNGE_KEY exists: kept"
  fi
  if [ -n "$(pids_named munged)" ] && munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
    say "munged already runs (pid $(pids_named munged | tr '\n' ' ' | sed 's/ $//')): left alone"
    return 0
  fi
  mkdir -p /run/munge /var/lib/munge /var/log/munge
  chown munge:munge /run/munge /var/lib/munge /var/log/munge
  chmod 755 /run/munge
  rm -f /run/munge/munged.pid
  runuser -u munge -- munged || fail "munged did not start (see /var/log/munge/munged.log)"
  local pid
  pid=$(read_pidfile /run/munge/munged.pid 10) || fail "munged wrote no pid file"
  echo "munged $pid" >>"$PIDS_FILE"
  munge -n | unmunge >/dev/null || fail "munge -n | unmunge fails"
  say "started munged (pid $pid); munge -n | unmunge: Success"
}

# Start daemon $1 (slurmctld or slurmd) and record its pid.
start_daemon() {
  local name=$1 log=$2 pid
  rm -f "$STATE_DIR/$name.pid"
  "$name" || fail "$name did not start"
  pid=$(read_pidfile "$STATE_DIR/$name.pid" 15) || fail "$name wrote no pid file"
  echo "$name $pid" >>"$PIDS_FILE"
  sleep 0.2
  is_running "$name" "$pid" || fail "$name (pid $pid) exited right after starting"
  say "started $name (pid $pid, log $log)"
}

cmd_stop() {
  need_root
  local name pid any=0
  for name in slurmd slurmctld munged; do
    is_running "$name" "$(recorded_pid "$name")" && any=1
  done
  if [ "$any" = 0 ]; then
    rm -f "$PIDS_FILE"
    say "nothing to stop (no daemon started by this script runs)"
    return 0
  fi
  pid=$(recorded_pid slurmctld)
  if is_running slurmctld "$pid" && is_running slurmd "$(recorded_pid slurmd)"; then
    local jobs i
    jobs=$(timeout 10 squeue -h -o %i 2>/dev/null || true)
    if [ -n "$jobs" ]; then
      say "cancelling $(echo "$jobs" | wc -l) job(s): $(echo $jobs)"
      # shellcheck disable=SC2086
      timeout 10 scancel $jobs 2>/dev/null || true
      for ((i = 0; i < 20; i++)); do
        [ -z "$(timeout 10 squeue -h -t running,completing -o %i 2>/dev/null || true)" ] && break
        sleep 1
      done
    fi
  fi
  local rc=0
  for name in slurmd slurmctld munged; do
    stop_pid "$name" "$(recorded_pid "$name")" || rc=1
  done
  rm -f "$PIDS_FILE" "$STATE_DIR/slurmctld.pid" "$STATE_DIR/slurmd.pid"
  local left
  left=$(pids_named slurmstepd | tr '\n' ' ')
  [ -z "$left" ] || say "warning: slurmstepd processes remain (pids $left)"
  return $rc
}

cmd_start() {
  need_root
  local install=0 arg
  for arg in "$@"; do
    case "$arg" in
      --install) install=1 ;;
      *) echo "slurm_single_node: unknown option $arg" >&2; exit 2 ;;
    esac
  done
  if [ "$install" = 1 ]; then
    say "installing slurm-wlm and munge (apt-get)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null
    apt-get install -y -qq slurm-wlm munge >/dev/null
  fi
  local prog
  for prog in munged munge unmunge slurmctld slurmd sinfo; do
    command -v "$prog" >/dev/null ||
      { echo "slurm_single_node: $prog not found (install slurm-wlm and munge, or use --install)" >&2; exit 1; }
  done

  # Already running (started by this script)?
  local ours=0 name
  for name in slurmctld slurmd; do
    is_running "$name" "$(recorded_pid "$name")" && ours=$((ours + 1))
  done
  if [ "$ours" = 2 ] && node_usable; then
    say "already running (slurmctld pid $(recorded_pid slurmctld), slurmd pid $(recorded_pid slurmd)): left alone"
    timeout 10 sinfo
    return 0
  fi
  if [ -f "$PIDS_FILE" ]; then
    say "a previous start is not fully running: cleaning it up first"
    cmd_stop
  fi
  for name in slurmctld slurmd; do
    local other
    other=$(pids_named "$name" | tr '\n' ' ')
    [ -z "$other" ] || fail "$name already runs (pid $other) but was not started by this script: stop it first"
  done

  mkdir -p "$STATE_DIR"
  : >"$PIDS_FILE"
  start_munge
  write_conf
  mkdir -p "$CTLD_SPOOL" "$SLURMD_SPOOL" "$LOG_DIR"
  chmod 755 "$CTLD_SPOOL" "$SLURMD_SPOOL" "$LOG_DIR"
  say "spool dirs $CTLD_SPOOL $SLURMD_SPOOL, logs in $LOG_DIR"
  start_daemon slurmctld "$CTLD_LOG"
  local slurmd_t0
  slurmd_t0=$(date +%Y-%m-%dT%H:%M:%S)
  start_daemon slurmd "$SLURMD_LOG"

  # Wait for the node to be usable *and* for this slurmd to have registered: with state saved by an
  # earlier run, slurmctld reports the node idle before the new slurmd has contacted it.
  local t0=$SECONDS state="" registered
  while ((SECONDS - t0 < START_TIMEOUT)); do
    state=$(node_state)
    registered=$(timeout 10 scontrol -o show node "$NODE" 2>/dev/null |
      sed -n 's/.*SlurmdStartTime=\([^ ]*\).*/\1/p' || true)
    [[ "$registered" < "$slurmd_t0" ]] && state="$state, slurmd not registered yet"
    case "$state" in
      idle | mixed | allocated | completing)
        say "node $NODE is $state after $((SECONDS - t0)) s; partition $PARTITION ready"
        timeout 10 sinfo
        return 0 ;;
    esac
    for name in slurmctld slurmd; do
      is_running "$name" "$(recorded_pid "$name")" || fail "$name exited while waiting for the node"
    done
    sleep 1
  done
  fail "node $NODE not idle after $START_TIMEOUT s (state: '${state:-none}')"
}

cmd_status() {
  local name pid rc=0
  timeout 10 sinfo || echo "slurm_single_node: sinfo fails (slurmctld not reachable)"
  for name in munged slurmctld slurmd; do
    pid=$(recorded_pid "$name")
    if is_running "$name" "$pid"; then
      echo "$name: running (pid $pid, started by this script)"
    elif [ -n "$(pids_named "$name")" ]; then
      echo "$name: running (pid $(pids_named "$name" | tr '\n' ' ' | sed 's/ $//'), not started by this script)"
    else
      echo "$name: not running"
      rc=1
    fi
  done
  local state
  state=$(node_state)
  case "$state" in
    idle | mixed | allocated | completing) echo "node $NODE: $state (usable)" ;;
    *) echo "node $NODE: ${state:-unknown} (not usable)"; rc=1 ;;
  esac
  # sinfo alone is not enough: the controller marks a dead slurmd down only after SlurmdTimeout.
  [ "$rc" = 0 ] || echo "cluster: not usable"
  return $rc
}

case "${1:-}" in
  start) shift; cmd_start "$@" ;;
  stop) cmd_stop ;;
  status) cmd_status ;;
  *) echo "usage: $0 start [--install] | stop | status" >&2; exit 2 ;;
esac
