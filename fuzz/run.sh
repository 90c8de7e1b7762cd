#!/usr/bin/env bash
# Runs every fuzz target (or those named) on its seed corpus for a bounded
# time and fails on the first crash, leak, sanitizer report or timeout.
#
#   fuzz/run.sh [-t SECONDS] [-n RUNS] [-b BUILD_DIR] [-w WORK_DIR] [target...]
#
# SECONDS per target (default 8); with -n, a target also stops after RUNS
# executions (a long run: -t 3600 -n 10000000). FUZZ_TIMEOUT (seconds,
# default 10) is the per-input timeout; raise it when the run may be paused
# (SIGSTOP). The corpus under fuzz/corpus/<target>/ is only read: new inputs
# go to WORK_DIR/<target>/ (default: a temporary directory, removed after),
# crash files to WORK_DIR/artifacts/. Prints one line per target: executions,
# new corpus entries, result.
#
# Exit codes: 0 all passed, 1 a target failed or clang is missing
# (scripts/deps.sh installs it).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
secs=8
runs=
build=$root/build-fuzz
work=
while getopts "t:n:b:w:" o; do
  case $o in
    t) secs=$OPTARG ;;
    n) runs=$OPTARG ;;
    b) build=$OPTARG ;;
    w) work=$OPTARG ;;
    *) echo "usage: $0 [-t SECONDS] [-n RUNS] [-b BUILD_DIR] [-w WORK_DIR] [target...]" >&2; exit 2 ;;
  esac
done
shift $((OPTIND - 1))

if ! command -v clang >/dev/null 2>&1; then
  echo "FAIL fuzz: clang not installed (apt install clang libclang-rt-14-dev, or run scripts/deps.sh)"
  exit 1
fi
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  targets=($(sed -n '/^set(OMS_FUZZ_TARGETS/,/)/p' "$here/CMakeLists.txt" |
             tr -d '()' | tr ' ' '\n' | grep -v -e '^set' -e '^OMS_FUZZ_TARGETS' -e '^$'))
fi

# Build (incremental): configure build-fuzz/ on first use.
blog=$(mktemp /tmp/oms-fuzz-build-XXXXXX.log)
if { [ -f "$build/CMakeCache.txt" ] ||
     cmake -S "$root" -B "$build" -DCMAKE_C_COMPILER=clang -DOMS_FUZZ=ON -DOMS_TESTS=OFF \
           -DCMAKE_BUILD_TYPE=RelWithDebInfo; } >"$blog" 2>&1 &&
   cmake --build "$build" --target fuzzers -j "${JOBS:-$(nproc)}" >>"$blog" 2>&1; then
  rm -f "$blog"
else
  tail -40 "$blog"
  echo "fuzz: building the targets failed (log: $blog)"
  exit 1
fi

cleanup=
if [ -z "$work" ]; then
  work=$(mktemp -d /tmp/oms-fuzz-XXXXXX)
  cleanup=$work
fi
trap '[ -n "$cleanup" ] && rm -rf "$cleanup"' EXIT
mkdir -p "$work/artifacts"

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1:allocator_may_return_null=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
fail=0
for t in "${targets[@]}"; do
  bin=$build/fuzz_$t
  mkdir -p "$work/$t"
  log=$work/$t.log
  before=$(ls "$work/$t" | wc -l)
  if "$bin" -max_total_time="$secs" ${runs:+-runs=$runs} -timeout="${FUZZ_TIMEOUT:-10}" -rss_limit_mb=2048 -print_final_stats=1 \
       -artifact_prefix="$work/artifacts/${t}-" "$work/$t" "$here/corpus/$t" >"$log" 2>&1; then
    res=ok
  else
    res=FAILED
    fail=1
  fi
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  after=$(ls "$work/$t" | wc -l)
  printf '%-14s %10s execs  %5d new inputs  %s\n' "$t" "${execs:-?}" $((after - before)) "$res"
  if [ "$res" != ok ]; then
    grep -E 'ERROR|SUMMARY|runtime error|fuzz:|Test unit written' "$log" | head -20 || true
    echo "(full log: $log)"
    cleanup= # keep the log and the artifact
  fi
done
exit $fail
