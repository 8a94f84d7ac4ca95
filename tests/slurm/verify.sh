#!/usr/bin/env bash
# Checks that the test cluster of cluster.sh behaves as the Slurm executor expects: sbatch
# --parsable, job names, --output/--error, job arrays, afterok dependencies with
# --kill-on-invalid-dep, a failing job, scancel, and the final states seen through
# `scontrol show job -o` and the jobcomp file. Uses the cluster in $SLURM_CONF if there is one,
# else starts one and stops it on exit. Prints the lines it checked; exits 1 on any mismatch.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"

own=
if [[ -z "${SLURM_CONF:-}" ]]; then
    eval "$("$here/cluster.sh" start)"
    own=1
fi
work=$(mktemp -d /tmp/mkrefs-slurm-verify.XXXXXX)
cleanup() {
    cd /
    rm -rf "$work"
    [[ -z "$own" ]] || "$here/cluster.sh" stop
}
trap cleanup EXIT
cd "$work"
jobcomp="$(dirname "$SLURM_CONF")/jobcomp.log"
passed=0 failed=0

check() {  # check WHAT ACTUAL EXPECTED-REGEX
    if [[ "$2" =~ $3 ]]; then
        echo "ok   $1: $2"
        passed=$((passed + 1))
    else
        echo "FAIL $1: got '$2', expected /$3/"
        failed=$((failed + 1))
    fi
}

# One field of `scontrol show job -o` (values may contain spaces: take up to the next ' Key=').
field() {
    local line=$1 key=$2
    sed -E "s/.*(^| )$key=//; s/ [A-Za-z:\/]+=.*//" <<<"$line"
}

job() { scontrol show job -o "$1"; }

# Wait until every line of the job (all tasks of an array) is in a final state.
wait_done() {
    local id=$1 deadline=$((SECONDS + 60)) out
    while ((SECONDS < deadline)); do
        out=$(job "$id" 2>/dev/null || true)
        if [[ -n "$out" ]] && ! grep -qE 'JobState=(PENDING|RUNNING|COMPLETING|CONFIGURING|SUSPENDED|REQUEUED)' <<<"$out"; then
            return 0
        fi
        sleep 0.05
    done
    echo "FAIL job $id did not finish in 60 s: $out"
    failed=$((failed + 1))
}

echo "== trivial job, --parsable, latency"
t0=$(date +%s%N)
id=$(sbatch --parsable --job-name=hello --wrap 'echo hi')
check "sbatch --parsable prints the bare id" "$id" '^[0-9]+$'
wait_done "$id"
echo "     sbatch -> COMPLETED in $((($(date +%s%N) - t0) / 1000000)) ms"
l=$(job "$id")
check "JobState" "$(field "$l" JobState)" '^COMPLETED$'
check "ExitCode" "$(field "$l" ExitCode)" '^0:0$'
check "JobName" "$(field "$l" JobName)" '^hello$'
check "default output file" "$(cat "slurm-$id.out")" '^hi$'
check "jobcomp line" "$(grep "^JobId=$id " "$jobcomp")" 'JobState=COMPLETED .*ExitCode=0:0'

echo "== job array --array=0-2"
a=$(sbatch --parsable --array=0-2 -o "arr-%A_%a.out" --wrap 'echo task $SLURM_ARRAY_TASK_ID')
wait_done "$a"
check "3 task lines" "$(job "$a" | wc -l)" '^3$'
check "task states" "$(job "$a" | grep -oE 'ArrayTaskId=[0-9]+ .*JobState=[A-Z_]+' | sed -E 's/ .*JobState=/=/' | sort | paste -sd' ')" '^ArrayTaskId=0=COMPLETED ArrayTaskId=1=COMPLETED ArrayTaskId=2=COMPLETED$'
check "task 1 by <id>_1" "$(field "$(job "${a}_1")" JobState)" '^COMPLETED$'
check "task outputs" "$(cat arr-"${a}"_0.out arr-"${a}"_1.out arr-"${a}"_2.out | paste -sd,)" '^task 0,task 1,task 2$'

echo "== exit 3 with --output/--error, and an afterok dependant with --kill-on-invalid-dep"
mkdir -p out err   # slurmd does not create missing directories (the job would fail, 0:53)
f=$(sbatch --parsable --job-name=exit3 -o "$work/out/%j.out" -e "$work/err/%j.err" \
    --wrap 'echo to-out; echo to-err >&2; exit 3')
d=$(sbatch --parsable --dependency="afterok:$f" --kill-on-invalid-dep=yes --wrap 'echo must-not-run')
wait_done "$f"
wait_done "$d"
l=$(job "$f")
check "failed JobState" "$(field "$l" JobState)" '^FAILED$'
check "failed ExitCode" "$(field "$l" ExitCode)" '^3:0$'
check "failed Reason" "$(field "$l" Reason)" '^NonZeroExitCode$'
check "--output" "$(cat "out/$f.out")" '^to-out$'
check "--error" "$(cat "err/$f.err")" '^to-err$'
l=$(job "$d")
check "dependant JobState" "$(field "$l" JobState)" '^CANCELLED$'
check "dependant Reason" "$(field "$l" Reason)" '^DependencyNeverSatisfied$'
check "dependant Dependency" "$(field "$l" Dependency)" "^afterok:$f\\(failed\\)$"
check "dependant wrote no output" "$(ls "slurm-$d.out" 2>&1 || true)" 'No such file'
check "jobcomp of failed" "$(grep "^JobId=$f " "$jobcomp")" 'JobState=FAILED .*ExitCode=3:0'
check "jobcomp of dependant" "$(grep "^JobId=$d " "$jobcomp")" 'JobState=CANCELLED .*NodeList=\(null\)'

echo "== scancel of a running job"
s=$(sbatch --parsable --wrap 'sleep 300')
until [[ "$(field "$(job "$s")" JobState)" == RUNNING ]]; do sleep 0.05; done
scancel "$s"
wait_done "$s"
l=$(job "$s")
check "cancelled JobState" "$(field "$l" JobState)" '^CANCELLED$'
check "cancelled ExitCode" "$(field "$l" ExitCode)" '^0:15$'

echo "== examples of scontrol -o lines"
for j in "$id" "$f" "$d" "$s"; do job "$j"; done
echo "== their jobcomp lines"
grep -E "^JobId=($id|$f|$d|$s) " "$jobcomp"

echo "verify: $passed passed, $failed failed"
((failed == 0))
