#!/usr/bin/env bash
# A real single-node Slurm cluster on this machine, for end-to-end tests of the Slurm executor.
#
#   eval "$(tests/slurm/cluster.sh start [DIR])"   # installs what is missing, starts, waits for IDLE
#   tests/slurm/cluster.sh status [DIR]            # "up DIR" (exit 0) or "down" (exit 1)
#   tests/slurm/cluster.sh stop [DIR]              # cancels jobs, stops the daemons, removes DIR
#
# `start` prints exactly one line on stdout, `export SLURM_CONF=DIR/slurm.conf`; everything else
# goes to stderr. Every client (sbatch, squeue, scontrol, scancel, sinfo) finds the cluster, and
# its own munged socket, through SLURM_CONF alone. DIR defaults to a new /tmp/mkrefs-slurm.XXXXXX;
# the last one started is recorded in /tmp/mkrefs-slurm-cluster.dir for `stop`/`status`.
# No systemd and no cgroups are needed: munged, slurmctld and slurmd run as root from pid files
# in DIR (proctrack/linuxproc, task/none, jobacct_gather/none).
# Environment knobs: MKREFS_SLURM_TIMEOUT (s to wait for IDLE, default 60),
# MKREFS_SLURM_CTLD_PORT / MKREFS_SLURM_SLURMD_PORT (default 6817 / 6818).
#
# Final state of a finished job -- verified on Debian 12, Slurm 22.05.8, this configuration:
# - `sacct` does NOT work: no database (AccountingStorageType=accounting_storage/none), it prints
#   "Slurm accounting storage is disabled" and exits 1. slurmdbd would need MariaDB: not set up.
# - Read `scontrol show job -o <id>`: one line of Key=Value per job (per task for an array). Finished
#   jobs stay there for MinJobAge (3600 s here), also across a slurmctld restart. Keys to read:
#     JobState=  COMPLETED | FAILED | CANCELLED | TIMEOUT | NODE_FAIL | OUT_OF_MEMORY (final), or
#                PENDING | RUNNING | COMPLETING | REQUEUED ... (not yet)
#     ExitCode=  <exit status>:<signal>   e.g. 0:0, 3:0 (exit 3), 0:15 (scancel), 0:9 (killed)
#     Reason=    NonZeroExitCode | DependencyNeverSatisfied | TimeLimit | JobLaunchFailure | None ...
#   Values are not quoted and may hold spaces (JobName=my name, paths): split on " Key=".
#   Seen lines (trimmed):
#     JobId=1 JobName=hello ... JobState=COMPLETED Reason=None Dependency=(null) ... ExitCode=0:0 ...
#     JobId=5 JobName=exit3 ... JobState=FAILED Reason=NonZeroExitCode Dependency=(null) ... ExitCode=3:0 ...
#     JobId=6 JobName=wrap ... JobState=CANCELLED Reason=DependencyNeverSatisfied
#       Dependency=afterok:5(failed) ... ExitCode=0:0 ... StartTime=Unknown ... KillOInInvalidDependent=Yes
#     JobId=7 ... JobState=CANCELLED Reason=None ... ExitCode=0:15 ...          (scancel while running)
#     JobId=59 ... JobState=TIMEOUT Reason=TimeLimit ... ExitCode=0:15 ...     (--time=1, ended at 74 s)
#   An array (sbatch prints A): one line per task, JobId=<task's own id> ArrayJobId=A ArrayTaskId=n;
#   pending tasks share one line ArrayTaskId=1-3. `scontrol show job -o A_n` selects task n.
#   An unknown or purged id: exit 1, stderr "slurm_load_jobs error: Invalid job id specified".
#   (`squeue -h -t all -j ID,ID,... -o "%i|%T|%r"` lists finished jobs too, but has no exit code.)
# - Fallback, e.g. after MinJobAge: the jobcomp file DIR/jobcomp.log (jobcomp/filetxt), one line
#   appended per finished job or array task, no Reason, and ExitCode=0:0 for cancelled/timed-out
#   jobs (the signal is lost); a never-started job has NodeList=(null):
#     JobId=5 UserId=root(0) GroupId=root(0) Name=exit3 JobState=FAILED Partition=debug
#     TimeLimit=525600 StartTime=2026-12-07T05:21:13 EndTime=2026-12-07T05:21:13 NodeList=vm
#     NodeCnt=1 ProcCnt=1 WorkDir=/tmp/x ReservationName= Tres=cpu=1,mem=22899M,node=1,billing=1
#     Account= QOS= WcKey= Cluster=unknown SubmitTime=... EligibleTime=... DerivedExitCode=0:0
#     ExitCode=3:0
#   (array tasks add "ArrayJobId=A ArrayTaskId=n" before DerivedExitCode).
# Executor notes (all seen here):
# - Pass SLURM_CONF to every sbatch/scontrol/scancel: without it they look for /etc/slurm and DNS
#   SRV records and die ("Could not establish a configuration source").
# - `sbatch --parsable` prints the bare id ("12"); with --array it prints the array id A, and the
#   tasks get their own JobIds (the last task reuses A): address them as A_n.
# - The job inherits sbatch's environment (--export=ALL) and cwd (WorkDir=, or --chdir); the
#   script runs as a copy in DIR/spool, so $0 is not the submitted path.
# - Output files are created by slurmd when the job starts (relative paths are against WorkDir).
#   A missing output directory or --chdir makes the job FAILED, Reason=JobLaunchFailure,
#   ExitCode=0:53, with no output at all: create the directories before sbatch.
# - --dependency=afterok:X --kill-on-invalid-dep=yes: when X fails the dependant becomes
#   CANCELLED (Reason=DependencyNeverSatisfied) within a second, never starts, writes no output.
#   Without the flag it stays PENDING with that reason forever.
# - scancel exits 0 even for unknown or finished ids. Cancelling one pending array task (A_3)
#   leaves no trace of it in scontrol or jobcomp.
# - Time limits are enforced by a 30 s sweep (--time=1 ended after 74 s). Without cgroups memory
#   is not enforced, so OUT_OF_MEMORY is never seen here. A node lost for SlurmdTimeout makes
#   running jobs NODE_FAIL only with --no-requeue; otherwise they are requeued (PENDING,
#   Reason=BeginTime, Restarts=1).
# - sbatch -> COMPLETED for a trivial job: 0.1-1 s (the scheduler runs on ~1 s ticks).
# See verify.sh beside this file for the checks behind these lines.
set -euo pipefail

# Daemons live in sbin, which a CI environment's PATH may lack.
export PATH="$PATH:/usr/local/sbin:/usr/sbin:/sbin"
export DEBIAN_FRONTEND=noninteractive

RECORD=/tmp/mkrefs-slurm-cluster.dir
MARKER=.mkrefs-slurm-cluster    # only a DIR holding this file is ever removed by `stop`
TIMEOUT="${MKREFS_SLURM_TIMEOUT:-60}"
CTLD_PORT="${MKREFS_SLURM_CTLD_PORT:-6817}"
SLURMD_PORT="${MKREFS_SLURM_SLURMD_PORT:-6818}"

log() { echo "cluster.sh: $*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# The DIR to act on: the argument, else the one recorded by the last start.
resolve_dir() {
    if [[ -n "${1:-}" ]]; then
        realpath -m -- "$1"
    elif [[ -s "$RECORD" ]]; then
        cat "$RECORD"
    fi
}

# pid from DIR/run/NAME.pid if that process is alive and really is NAME (pids get reused).
live_pid() {
    local dir=$1 name=$2 pid
    pid=$(cat "$dir/run/$name.pid" 2>/dev/null) || return 1
    [[ "$pid" =~ ^[0-9]+$ ]] || return 1
    [[ "$(cat "/proc/$pid/comm" 2>/dev/null)" == "$name" ]] || return 1
    echo "$pid"
}

is_up() {
    local dir=$1
    [[ -f "$dir/slurm.conf" ]] || return 1
    live_pid "$dir" munged >/dev/null && live_pid "$dir" slurmctld >/dev/null \
        && live_pid "$dir" slurmd >/dev/null \
        && ctld_up "$dir"
}

node_state() { SLURM_CONF="$1/slurm.conf" sinfo -h -N -o '%t' 2>/dev/null | head -n1; }

dump_logs() {
    local dir=$1 f
    for f in "$dir"/log/*.log; do
        [[ -f "$f" ]] || continue
        log "---- tail of $f"
        tail -n 25 "$f" >&2 || true
    done
}

install_missing() {
    local need=()
    command -v munged >/dev/null || need+=(munge)
    command -v slurmctld >/dev/null || need+=(slurmctld)
    command -v slurmd >/dev/null || need+=(slurmd)
    command -v sbatch >/dev/null || need+=(slurm-client)
    ((${#need[@]})) || return 0
    log "installing ${need[*]} (apt-get)"
    # Package scripts would try to start munge/slurm services; without systemd that fails or
    # leaves daemons we do not track. A policy-rc.d that says 101 forbids it (Docker does the same).
    local own_policy=
    if [[ ! -e /usr/sbin/policy-rc.d ]]; then
        printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
        chmod 755 /usr/sbin/policy-rc.d
        own_policy=1
    fi
    # The slurm-wlm metapackage would pull ~40 packages (hdf5, rrd, influxdb... plugins) that a
    # test cluster never loads; the daemons, the clients and the basic plugins are enough.
    local rc=0
    { apt-get install -y --no-install-recommends "${need[@]}" >&2 \
        || { apt-get update >&2 && apt-get install -y --no-install-recommends "${need[@]}" >&2; }
    } || rc=$?
    [[ -n "$own_policy" ]] && rm -f /usr/sbin/policy-rc.d
    ((rc == 0)) || die "apt-get install ${need[*]} failed"
}

write_config() {
    local dir=$1 host cpus mem
    host=$(hostname -s)
    cpus=$(nproc)
    # A node that reports less memory than configured is drained: leave a little slack.
    mem=$(free -m | awk '/^Mem:/ { printf "%d", $2 * 0.95 }')
    cat >"$dir/slurm.conf" <<EOF
# Generated by tests/slurm/cluster.sh -- a throwaway single-node test cluster.
ClusterName=mkrefs
# slurmctld insists that its host name matches SlurmctldHost; talk over loopback.
SlurmctldHost=$host(127.0.0.1)
SlurmctldPort=$CTLD_PORT
SlurmdPort=$SLURMD_PORT
SlurmUser=root
SlurmdUser=root
# Our own munged, whose socket lives in DIR (clients read this line too).
AuthType=auth/munge
AuthInfo=socket=$dir/munge/munge.socket
CredType=cred/munge

StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/run/slurmctld.pid
SlurmdPidFile=$dir/run/slurmd.pid
SlurmctldLogFile=$dir/log/slurmctld.log
SlurmdLogFile=$dir/log/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
MailProg=/bin/true

# No cgroups (no systemd here): track processes through /proc, no task binding/accounting.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
MpiDefault=none
SwitchType=switch/none

# No database: sacct is unavailable. Finished jobs stay in 'scontrol show job' for MinJobAge
# seconds, and every finished job is appended to the jobcomp file.
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/filetxt
JobCompLoc=$dir/jobcomp.log
MinJobAge=3600

# Start jobs fast: the backfill pass every second starts most jobs, and the event-driven main pass
# (on submit / job end) runs without the default delays. Trivial job: 0.1-1 s to COMPLETED.
SchedulerType=sched/backfill
SchedulerParameters=sched_interval=2,bf_interval=1,batch_sched_delay=0,sched_min_interval=0
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
PriorityType=priority/basic

# Quick restarts and cancellations.
ReturnToService=2
SlurmctldTimeout=10
SlurmdTimeout=10
MessageTimeout=10
KillWait=2
InactiveLimit=0
Waittime=0

NodeName=$host NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem State=UNKNOWN
PartitionName=debug Nodes=$host Default=YES MaxTime=INFINITE State=UP OverSubscribe=NO
EOF
}

start_munged() {
    local dir=$1
    local key="$dir/munge/munge.key"
    if [[ ! -s "$key" ]]; then
        # A fresh key per cluster; mungekey exists in munge >= 0.5.14, dd works everywhere.
        mungekey --create --keyfile="$key" 2>/dev/null \
            || dd if=/dev/urandom of="$key" bs=1024 count=1 status=none
        chmod 400 "$key"
    fi
    # --force: a DIR given under a group- or world-writable parent would otherwise make munged
    # refuse to start (it checks every directory on the way to its key and socket).
    munged --force --key-file="$key" --socket="$dir/munge/munge.socket" \
        --pid-file="$dir/run/munged.pid" --log-file="$dir/log/munged.log" \
        --seed-file="$dir/munge/munge.seed" \
        || fail_start "$dir" "munged did not start"
}

STARTED=()  # daemons started so far by this `start`

# Startup failed: show why, stop what we started (no stray daemons), keep DIR for its logs.
fail_start() {
    local dir=$1
    shift
    log "$*"
    dump_logs "$dir"
    stop_daemons "$dir"
    die "cluster in $dir did not come up; logs kept in $dir/log ('$0 stop $dir' removes them)"
}

wait_for() {  # wait_for DIR WHAT COMMAND...: poll COMMAND until it succeeds or TIMEOUT passes
    local dir=$1 what=$2 deadline=$((SECONDS + TIMEOUT)) name
    shift 2
    until "$@"; do
        # A daemon that wrote its pid file and died will not come back: fail at once.
        for name in "${STARTED[@]}"; do
            if [[ -s "$dir/run/$name.pid" ]] && ! live_pid "$dir" "$name" >/dev/null; then
                fail_start "$dir" "$name died while waiting for $what"
            fi
        done
        if ((SECONDS >= deadline)); then
            fail_start "$dir" "timed out after ${TIMEOUT}s waiting for $what"
        fi
        sleep 0.2
    done
}

# (Output captured before matching: with pipefail, grep -q closing the pipe early could fail it.)
ctld_up() {
    local out
    out=$(SLURM_CONF="$1/slurm.conf" scontrol ping 2>/dev/null) || return 1
    [[ "$out" == *"is UP"* ]]
}
node_idle() { [[ "$(node_state "$1")" == idle ]]; }

cmd_start() {
    local dir
    dir=$(resolve_dir "${1:-}")
    if [[ -n "$dir" ]] && is_up "$dir"; then
        log "already up in $dir; reusing it"
        echo "$dir" >"$RECORD"
        echo "export SLURM_CONF=$dir/slurm.conf"
        return 0
    fi
    # Two clusters would fight over the ports.
    local recorded
    recorded=$(cat "$RECORD" 2>/dev/null || true)
    if [[ -n "$recorded" && "$recorded" != "$dir" ]] && is_up "$recorded"; then
        die "another cluster is up in $recorded; run '$0 stop $recorded' first"
    fi
    # A recorded or given cluster that is half up: clear it away before starting afresh.
    if [[ -n "$dir" && -e "$dir/$MARKER" ]]; then
        log "found a cluster in $dir that is not fully up; stopping it first"
        stop_daemons "$dir"
        [[ -n "${1:-}" ]] || rm -rf "$dir"
    fi
    [[ -n "${1:-}" ]] || dir=$(mktemp -d /tmp/mkrefs-slurm.XXXXXX)

    install_missing
    # Do not fight another Slurm for the ports.
    if pgrep -x slurmctld >/dev/null || pgrep -x slurmd >/dev/null; then
        log "warning: other slurmctld/slurmd processes are running (pids $(pgrep -d, -x 'slurmctld|slurmd'));" \
            "ports $CTLD_PORT/$SLURMD_PORT may be taken"
    fi

    mkdir -p "$dir"
    touch "$dir/$MARKER"
    rm -rf "$dir/state" "$dir/spool" "$dir/run" "$dir/log" "$dir/munge"
    mkdir -p "$dir/state" "$dir/spool" "$dir/run" "$dir/log" "$dir/munge"
    # Readable by all (slurm.conf, munge socket) so that non-root users can submit too; munged
    # wants its socket directory searchable by all and not writable by others; the key is 0400.
    chmod 755 "$dir" "$dir/munge"
    echo "$dir" >"$RECORD"
    write_config "$dir"
    log "state directory: $dir"

    export SLURM_CONF="$dir/slurm.conf"
    start_munged "$dir"
    STARTED=(munged)
    # -i: ignore any saved state (fresh cluster); both daemons fork and write their pid files.
    slurmctld -i -f "$SLURM_CONF" || fail_start "$dir" "slurmctld did not start"
    STARTED+=(slurmctld)
    wait_for "$dir" "slurmctld to answer (scontrol ping)" ctld_up "$dir"
    slurmd -f "$SLURM_CONF" || fail_start "$dir" "slurmd did not start"
    STARTED+=(slurmd)
    wait_for "$dir" "node $(hostname -s) to be idle (sinfo)" node_idle "$dir"
    log "up: $(sinfo -h -o '%P %a %D %t %N %c CPUs %m MB')"
    echo "export SLURM_CONF=$SLURM_CONF"
}

# TERM a daemon from its pid file, KILL it if it lingers.
stop_pid() {
    local dir=$1 name=$2 pid i
    pid=$(live_pid "$dir" "$name") || return 0
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 50; i++)); do
        [[ -d "/proc/$pid" ]] || return 0
        sleep 0.2
    done
    log "$name ($pid) ignored SIGTERM; killing it"
    kill -KILL "$pid" 2>/dev/null || true
}

stop_daemons() {
    local dir=$1 pid i
    export SLURM_CONF="$dir/slurm.conf"
    # Cancel jobs first, so that slurmd reaps their steps before it goes.
    if live_pid "$dir" slurmctld >/dev/null && ctld_up "$dir"; then
        local jobs
        jobs=$(squeue -h -o '%i' 2>/dev/null || true)
        if [[ -n "$jobs" ]]; then
            log "cancelling jobs: $(echo $jobs)"
            # shellcheck disable=SC2086
            scancel $jobs 2>/dev/null || true
            for ((i = 0; i < 50; i++)); do
                [[ -z "$(squeue -h -o '%i' 2>/dev/null)" ]] && break
                sleep 0.2
            done
        fi
    fi
    # Each daemon takes ~2 s to exit on SIGTERM: stop both Slurm daemons at once (munged last,
    # since they still authenticate while shutting down).
    stop_pid "$dir" slurmd &
    stop_pid "$dir" slurmctld &
    wait
    # Job steps (slurmstepd) outlive slurmd; ours hold sockets in DIR/spool.
    for pid in $(pgrep -x slurmstepd || true); do
        if [[ "$(ls -l "/proc/$pid/fd" 2>/dev/null || true)" == *"$dir/"* ]]; then
            log "killing leftover slurmstepd $pid"
            kill -KILL "$pid" 2>/dev/null || true
        fi
    done
    stop_pid "$dir" munged
}

cmd_stop() {
    local dir
    dir=$(resolve_dir "${1:-}")
    if [[ -z "$dir" ]]; then
        log "no cluster recorded in $RECORD; nothing to stop"
        return 0
    fi
    if [[ ! -e "$dir/$MARKER" ]]; then
        log "$dir is not a cluster directory of this script; nothing to stop"
        [[ "$(cat "$RECORD" 2>/dev/null)" == "$dir" ]] && rm -f "$RECORD"
        return 0
    fi
    stop_daemons "$dir"
    rm -rf "$dir"
    [[ "$(cat "$RECORD" 2>/dev/null)" == "$dir" ]] && rm -f "$RECORD"
    log "stopped; removed $dir"
}

cmd_status() {
    local dir
    dir=$(resolve_dir "${1:-}")
    if [[ -n "$dir" ]] && is_up "$dir"; then
        echo "up $dir (node $(node_state "$dir"); export SLURM_CONF=$dir/slurm.conf)"
        return 0
    fi
    echo "down${dir:+ ($dir)}"
    return 1
}

case "${1:-}" in
    start) cmd_start "${2:-}" ;;
    stop) cmd_stop "${2:-}" ;;
    status) cmd_status "${2:-}" ;;
    *)
        echo "usage: $0 start|stop|status [DIR]" >&2
        exit 2
        ;;
esac
