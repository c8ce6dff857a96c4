#!/usr/bin/env bash
# A single-node Slurm cluster on 127.0.0.1 for the cluster tests, without systemd.
#
#   scripts/slurm_cluster.sh start    install slurm-wlm and munge if missing (root only), start munged, slurmctld
#                                     and slurmd from scripts/slurm/*.conf.in; reuse the cluster if it runs already
#   scripts/slurm_cluster.sh stop     cancel the cluster's jobs, stop every daemon by its recorded PID
#   scripts/slurm_cluster.sh status   every daemon's PID and whether it runs (exit 0 only when all three run)
#   scripts/slurm_cluster.sh env      the line to source so that sbatch/squeue/scontrol talk to this cluster
#
# Everything (config, munge key and socket, spool, logs, PIDs, fake GPU devices) lives under the state folder,
# $PAGS_SLURM_STATE or _build/slurm/.  Exit codes: 0 done; 1 failed (the daemons' logs are printed);
# 3 Slurm or munge is missing and this user cannot install them (not root).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
STATE=${PAGS_SLURM_STATE:-$ROOT/_build/slurm}
TEMPLATES=$ROOT/scripts/slurm
CONF=$STATE/etc/slurm.conf
DAEMONS=(munged slurmctld slurmd)   # start order; stopped in reverse
FAKE_GPUS=2
EXIT_CANNOT=3
export SLURM_CONF=$CONF

say() { echo "slurm_cluster: $*"; }

pid_of() { cat "$STATE/pids/$1.pid" 2>/dev/null || true; }

# Alive and really the daemon we started (a recycled PID belongs to another program).
alive() {
  local name=$1 pid
  pid=$(pid_of "$name")
  [[ -n $pid ]] && [[ -r /proc/$pid/comm ]] && [[ $(cat "/proc/$pid/comm" 2>/dev/null) == "$name"* ]]
}

all_alive() { local d; for d in "${DAEMONS[@]}"; do alive "$d" || return 1; done; }

install_if_missing() {
  local missing=()
  for cmd in munged slurmctld slurmd sbatch; do command -v "$cmd" >/dev/null || missing+=("$cmd"); done
  [[ ${#missing[@]} -eq 0 ]] && return 0
  if [[ $(id -u) -ne 0 ]]; then
    say "cannot start a test cluster: ${missing[*]} missing and installing slurm-wlm and munge needs root"
    exit $EXIT_CANNOT
  fi
  say "installing slurm-wlm and munge (missing: ${missing[*]})"
  export DEBIAN_FRONTEND=noninteractive
  if ! apt-get install -y -qq slurm-wlm munge >"$STATE/log/apt.log" 2>&1; then
    apt-get update -qq >>"$STATE/log/apt.log" 2>&1
    apt-get install -y -qq slurm-wlm munge >>"$STATE/log/apt.log" 2>&1 || { tail -20 "$STATE/log/apt.log"; exit 1; }
  fi
}

port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# Two consecutive free ports from 6817 (Slurm's defaults) upwards: another cluster on this machine keeps its own.
pick_ports() {
  local p=6817
  while ! { port_free "$p" && port_free $((p + 1)); }; do
    p=$((p + 2))
    [[ $p -gt 6999 ]] && { say "no free port pair between 6817 and 7000"; exit 1; }
  done
  CTLD_PORT=$p
  SLURMD_PORT=$((p + 1))
}

# The machine's CPUs (GNU nproc reports OMP_NUM_THREADS instead when it is set, as it is in make test).
cpus() { env -u OMP_NUM_THREADS -u OMP_THREAD_LIMIT nproc; }

render() {  # template -> file with the @NAME@ placeholders filled in
  sed -e "s|@STATE@|$STATE|g" -e "s|@HOST@|$(hostname -s)|g" -e "s|@USER@|$(id -un)|g" \
      -e "s|@CTLD_PORT@|$CTLD_PORT|g" -e "s|@SLURMD_PORT@|$SLURMD_PORT|g" -e "s|@CPUS@|$(cpus)|g" \
      -e "s|@MEM_MB@|$(( $(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024 * 9 / 10 ))|g" \
      -e "s|@GPUS@|$FAKE_GPUS|g" -e "s|@LAST_GPU@|$((FAKE_GPUS - 1))|g" "$1" >"$2"
}

launch() {  # name, command...: run in the background in its own session, record the PID
  local name=$1; shift
  setsid "$@" </dev/null >>"$STATE/log/$name.out" 2>&1 9>&- &  # 9: the lock, not to be inherited
  echo $! >"$STATE/pids/$name.pid"
}

wait_for() {  # seconds, description, test command...
  local t=$1 what=$2; shift 2
  for ((i = 0; i < t * 5; i++)); do "$@" >/dev/null 2>&1 && return 0; sleep 0.2; done
  say "$what did not come up within $t s"
  return 1
}

node_idle() { [[ $(sinfo -h -N -o %t 2>/dev/null) == idle* ]]; }

show_logs() {
  local f
  for f in "$STATE"/log/*.out "$STATE"/log/slurmctld.log "$STATE"/log/slurmd.log "$STATE"/munge/munged.log; do
    [[ -s $f ]] && { echo "----- $f"; tail -15 "$f"; }
  done
  return 0
}

start() {
  if all_alive; then
    say "already running (slurmctld on port $(awk -F= '/^SlurmctldPort/ {print $2}' "$CONF"))"
    return 0
  fi
  mkdir -p "$STATE"/{etc,log,pids,run,dev,spool/ctld,spool/d}
  install_if_missing
  stop_daemons quiet  # leftovers of a half-started cluster
  rm -rf "$STATE/spool/ctld"/* "$STATE/spool/d"/*
  # munge refuses keys and sockets in folders that others may write to
  mkdir -p -m 700 "$STATE/munge"
  chmod 700 "$STATE/munge"
  if [[ ! -s $STATE/munge/munge.key ]]; then
    (umask 077; head -c 1024 /dev/urandom >"$STATE/munge/munge.key")
  fi
  chmod 400 "$STATE/munge/munge.key"
  for ((g = 0; g < FAKE_GPUS; g++)); do ln -sfn /dev/null "$STATE/dev/nvidia$g"; done
  pick_ports
  render "$TEMPLATES/slurm.conf.in" "$CONF"
  render "$TEMPLATES/gres.conf.in" "$STATE/etc/gres.conf"

  launch munged munged -F --force -S "$STATE/munge/munge.socket" --key-file="$STATE/munge/munge.key" \
    --pid-file="$STATE/munge/munged.pid" --log-file="$STATE/munge/munged.log" --seed-file="$STATE/munge/munged.seed"
  wait_for 10 munged test -S "$STATE/munge/munge.socket" || { show_logs; stop_daemons quiet; return 1; }
  launch slurmctld slurmctld -D -i -f "$CONF"
  wait_for 20 slurmctld scontrol ping || { show_logs; stop_daemons quiet; return 1; }
  launch slurmd slurmd -D -N pags0 -f "$CONF"
  wait_for 30 "the node (idle)" node_idle || { sinfo -N -l || true; show_logs; stop_daemons quiet; return 1; }
  say "running: slurmctld on 127.0.0.1:$CTLD_PORT, node pags0 ($(cpus) CPUs, $FAKE_GPUS fake GPUs); PIDs in $STATE/pids"
  echo "export SLURM_CONF=$CONF"
}

cancel_jobs() {
  local ids
  ids=$(squeue -h -o %A 2>/dev/null | sort -u) || return 0
  [[ -z $ids ]] && return 0
  # shellcheck disable=SC2086
  scancel $ids 2>/dev/null || true
  for ((i = 0; i < 75; i++)); do [[ -z $(squeue -h -o %A 2>/dev/null) ]] && break; sleep 0.2; done
}

stop_daemons() {  # [quiet]
  local d pid idx
  if alive slurmctld; then cancel_jobs; fi
  for ((idx = ${#DAEMONS[@]} - 1; idx >= 0; idx--)); do
    d=${DAEMONS[$idx]}
    pid=$(pid_of "$d")
    if alive "$d"; then
      kill -TERM "$pid" 2>/dev/null || true
      for ((i = 0; i < 50; i++)); do alive "$d" || break; sleep 0.2; done
      if alive "$d"; then kill -KILL "$pid" 2>/dev/null || true; fi
      [[ ${1:-} == quiet ]] || say "stopped $d (pid $pid)"
    fi
    rm -f "$STATE/pids/$d.pid"
  done
}

status() {
  local d rc=0
  for d in "${DAEMONS[@]}"; do
    if alive "$d"; then echo "$d: running (pid $(pid_of "$d"))"; else echo "$d: stopped"; rc=1; fi
  done
  [[ $rc -eq 0 ]] && echo "export SLURM_CONF=$CONF"
  return $rc
}

# one start or stop at a time per state folder
if [[ ${1:-} == start || ${1:-} == stop ]]; then
  mkdir -p "$STATE"
  exec 9>"$STATE/.lock"
  flock 9
fi

case "${1:-}" in
  start) start ;;
  stop) stop_daemons ;;
  status) status ;;
  env) echo "export SLURM_CONF=$CONF" ;;
  *) echo "usage: $0 start|stop|status|env" >&2; exit 2 ;;
esac
