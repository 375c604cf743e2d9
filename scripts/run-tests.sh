#!/usr/bin/env bash
# Builds stablefs three ways (release with -Werror; Debug with ASan+UBSan; clang with
# -Wthread-safety -Werror, which checks the lock annotations, and with the libFuzzer targets)
# and runs every test: the doctest unit tests under the first two builds and a short run of
# every fuzz target (FUZZ_SECONDS each, 20 by default), the three side by side, then the quick
# group of the shell suite (tests/check -g quick) under the sanitizer build. Ends with
# "N passed, N failed[, N skipped]" and exits non-zero on any failure.
set -uo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
./scripts/install-deps.sh || { echo "dependency installation failed"; exit 1; }

jobs=$(nproc 2>/dev/null || echo 2)
passed=0 failed=0 skipped=0
failures=()
start=$(date +%s)

build() {  # build DIR CMAKE-ARGS... [--target TARGET]
  local dir=$1; shift
  local args=() target=()
  while [ $# -gt 0 ]; do
    if [ "$1" = --target ]; then target+=(--target "$2"); shift 2; else args+=("$1"); shift; fi
  done
  cmake -S "$root" -B "$dir" "${args[@]}" >"$dir.configure.log" 2>&1 &&
    cmake --build "$dir" -j"$jobs" "${target[@]}" >"$dir.build.log" 2>&1
}

# The unit tests and the fuzz runs are mostly one thread each and wait on I/O much of the
# time: they run side by side (logs apart), and are read in order once all have ended.
start_unit() {  # start_unit BINARY LOG: runs the doctest binary in the background
  "$1" --no-intro --duration=false >"$2" 2>&1 &
}
read_unit() {  # read_unit NAME LOG: counts the doctest summary of LOG
  local name=$1 out=$2
  local summary
  summary=$(grep -E '^\[doctest\] test cases:' "$out" | tail -1)
  local p f s
  p=$(sed -nE 's/.*\| *([0-9]+) passed.*/\1/p' <<<"$summary")
  f=$(sed -nE 's/.*\| *([0-9]+) failed.*/\1/p' <<<"$summary")
  s=$(sed -nE 's/.*\| *([0-9]+) skipped.*/\1/p' <<<"$summary")
  if [ -z "$p" ]; then  # crashed before the summary (sanitizer abort)
    tail -40 "$out"
    failed=$((failed + 1)); failures+=("$name: crashed")
  else
    passed=$((passed + p)); failed=$((failed + f)); skipped=$((skipped + ${s:-0}))
    [ "$f" -eq 0 ] || { grep -E 'ERROR|FATAL|TEST CASE' "$out" | head -40; failures+=("$name: $f failed"); }
  fi
  echo "unit tests ($name): ${summary:-crashed}"
}

echo "== building release (-Werror)"
if ! build build-release -DCMAKE_BUILD_TYPE=Release -DSTABLEFS_WERROR=ON; then
  tail -30 build-release.build.log build-release.configure.log 2>/dev/null
  echo "0 passed, 1 failed"; exit 1
fi
echo "== building sanitizers (ASan+UBSan)"
if ! build build-asan -DCMAKE_BUILD_TYPE=Debug -DSTABLEFS_SANITIZE=ON -DSTABLEFS_WERROR=ON; then
  tail -30 build-asan.build.log build-asan.configure.log 2>/dev/null
  echo "0 passed, 1 failed"; exit 1
fi

echo "== building clang: thread-safety check (-Wthread-safety -Werror) and the fuzz targets (libFuzzer, ASan+UBSan)"
if ! CXX=clang++ build build-clang -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSTABLEFS_THREAD_SAFETY=ON -DSTABLEFS_FUZZ=ON \
    -DSTABLEFS_WERROR=ON --target stablefs --target fuzz_targets; then
  tail -30 build-clang.build.log build-clang.configure.log 2>/dev/null
  echo "0 passed, 1 failed"; exit 1
fi

export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
echo "== unit tests (release, sanitizers) and fuzz targets, ${FUZZ_SECONDS:-20} s each (scripts/run-fuzz.sh), side by side"
logs=$(mktemp -d)
start_unit build-release/stablefs_unit_tests "$logs/release"; release_pid=$!
start_unit build-asan/stablefs_unit_tests "$logs/asan"; asan_pid=$!
./scripts/run-fuzz.sh build-clang "${FUZZ_SECONDS:-20}" >"$logs/fuzz" 2>&1 &
fuzz_pid=$!
wait "$release_pid" "$asan_pid" "$fuzz_pid"
read_unit release "$logs/release"
read_unit asan "$logs/asan"
sed 's/^/  /' "$logs/fuzz"
while read -r line; do
  case $line in
    *": "*"executions in"*) passed=$((passed + 1)) ;;
    *": FAILED"* | *": not built"*) failed=$((failed + 1)); failures+=("fuzz: $line") ;;
  esac
done <"$logs/fuzz"
rm -rf "$logs"

echo "== shell suite: tests/check -g quick (sanitizer build)"
check_log=$(mktemp)
STABLEFS_BIN="$root/build-asan/stablefs" ./tests/check -g quick 2>&1 | tee "$check_log" | sed -u 's/^/  /'
summary=$(tail -1 "$check_log")
p=$(sed -nE 's/^([0-9]+) passed, ([0-9]+) failed, ([0-9]+) skipped$/\1/p' <<<"$summary")
f=$(sed -nE 's/^([0-9]+) passed, ([0-9]+) failed, ([0-9]+) skipped$/\2/p' <<<"$summary")
s_=$(sed -nE 's/^([0-9]+) passed, ([0-9]+) failed, ([0-9]+) skipped$/\3/p' <<<"$summary")
if [ -z "$p" ]; then
  failed=$((failed + 1)); failures+=("shell suite: ended without a summary")
else
  passed=$((passed + p)); failed=$((failed + f)); skipped=$((skipped + s_))
  [ "$f" -eq 0 ] || failures+=("shell suite: $(grep '^Failures:' "$check_log")")
fi
rm -f "$check_log"

echo "== took $(( $(date +%s) - start )) s"
for f in "${failures[@]}"; do echo "failed: $f"; done
line="$passed passed, $failed failed"
[ "$skipped" -gt 0 ] && line="$line, $skipped skipped"
echo "$line"
[ "$failed" -eq 0 ]
