#!/usr/bin/env bash
# Runs every test: installs the Debian packages the build needs, static checks (layers, format,
# clang-tidy), the release suite, the unit+integration suites under ASan+UBSan, and a fuzz smoke.
#
# Switches (environment):
#   HOLDFAST_SKIP_LINT=1        skip the static checks (layers, clang-format, clang-tidy)
#   HOLDFAST_TIDY=0             skip clang-tidy only
#   HOLDFAST_FORMAT_STRICT=1    fail on files clang-format would change (default 1; 0: report only)
#   HOLDFAST_TIDY_STRICT=1      fail on clang-tidy warnings (default 1; 0: report only)
#   HOLDFAST_SKIP_ASAN=1        skip the ASan+UBSan build and run
#   HOLDFAST_SKIP_FUZZ=1        skip the fuzz build and smoke
#   HOLDFAST_FUZZ_SECONDS=N     smoke time per fuzz target (default 30)
#   HOLDFAST_JOBS=N             build and test parallelism (default 2)
# Steps are functions called through step(): shellcheck cannot see that they are reachable.
# shellcheck disable=SC2317
set -uo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.." || exit 1
ROOT=$PWD
JOBS=${HOLDFAST_JOBS:-2}
FUZZ_SECONDS=${HOLDFAST_FUZZ_SECONDS:-30}
LOGS=$ROOT/build/test-logs
mkdir -p "$LOGS"
rm -f "$LOGS"/*.log
PYTHON=/usr/bin/python3
[[ -x $PYTHON ]] || PYTHON=python3

# shellcheck source=scripts/packages.sh
source scripts/packages.sh
# Directories holding the project's own C++ (checked by clang-format).
SOURCE_DIRS=(src include tools tests bench examples)

STEP_NAMES=()
STEP_RESULTS=()
STEP_TIMES=()
FAILED=0

# step NAME FUNCTION: runs FUNCTION, records PASS/FAIL/WARN/SKIP and its elapsed time.
# A function returns 0 (pass), 1 (fail), 2 (warn: report-only findings) or 3 (skipped).
step() {
  local name=$1 fn=$2 start rc result
  echo
  echo "==== ${name} ===="
  start=$(date +%s)
  "$fn"
  rc=$?
  case $rc in
    0) result=PASS ;;
    2) result=WARN ;;
    3) result=SKIP ;;
    *) result=FAIL; FAILED=1 ;;
  esac
  local elapsed=$(($(date +%s) - start))
  echo "==== ${name}: ${result} (${elapsed} s) ===="
  STEP_NAMES+=("$name")
  STEP_RESULTS+=("$result")
  STEP_TIMES+=("$elapsed")
}

check_layers() {
  "$PYTHON" scripts/check-layers.py --self-test || return 1
  "$PYTHON" scripts/check-layers.py || return 1
}

project_sources() {
  local dirs=() d
  for d in "${SOURCE_DIRS[@]}"; do
    [[ -d $d ]] && dirs+=("$d")
  done
  find "${dirs[@]}" -type f \( -name '*.h' -o -name '*.cc' \) -print | sort
}

check_format() {
  local files=() bad=() f
  mapfile -t files < <(project_sources)
  for f in "${files[@]}"; do
    clang-format --dry-run -Werror "$f" >/dev/null 2>&1 || bad+=("$f")
  done
  echo "clang-format: ${#bad[@]} of ${#files[@]} files need formatting"
  for f in "${bad[@]}"; do
    echo "  needs clang-format: $f"
  done
  [[ ${#bad[@]} -eq 0 ]] && return 0
  [[ ${HOLDFAST_FORMAT_STRICT:-1} == 1 ]] && return 1
  echo "(report-only: HOLDFAST_FORMAT_STRICT=0)"
  return 2
}

check_tidy() {
  if [[ ${HOLDFAST_TIDY:-1} == 0 ]]; then
    echo "skipped (HOLDFAST_TIDY=0)"
    return 3
  fi
  local db=$ROOT/build/release files=() log=$LOGS/clang-tidy.log rc=0
  if [[ ! -f $db/compile_commands.json ]]; then
    cmake --preset release >/dev/null || return 1
  fi
  mapfile -t files < <(find src -type f -name '*.cc' | sort)
  if [[ ${#files[@]} -eq 0 ]]; then
    echo "no files under src/"
    return 0
  fi
  echo "clang-tidy on ${#files[@]} files of src/ (-j${JOBS})"
  printf '%s\0' "${files[@]}" |
    xargs -0 -n1 -P"$JOBS" clang-tidy -p "$db" --quiet >"$log" 2>&1 || rc=1
  local findings
  findings=$(grep -E '^[^ ]+:[0-9]+:[0-9]+: (warning|error):' "$log" | sort -u)
  local count
  count=$(printf '%s' "$findings" | grep -c . || true)
  [[ -n $findings ]] && printf '%s\n' "$findings"
  echo "clang-tidy: ${count} finding(s); full log: ${log#"$ROOT"/}"
  if [[ $rc -ne 0 ]] && ! grep -q ': error:' "$log"; then
    tail -20 "$log"
  fi
  [[ $count -eq 0 && $rc -eq 0 ]] && return 0
  [[ ${HOLDFAST_TIDY_STRICT:-1} == 1 ]] && return 1
  echo "(report-only: HOLDFAST_TIDY_STRICT=0)"
  return 2
}

lint_skipped() {
  echo "skipped (HOLDFAST_SKIP_LINT=1)"
  return 3
}

# build_preset PRESET [TARGET]: configure and build one preset of CMakePresets.json.
build_preset() {
  local preset=$1 target=${2:-}
  cmake --preset "$preset" || return 1
  if [[ -n $target ]]; then
    cmake --build --preset "$preset" -j "$JOBS" --target "$target" || return 1
  else
    cmake --build --preset "$preset" -j "$JOBS" || return 1
  fi
}

release_build() { build_preset release; }

release_test() {
  ctest --preset release -j "$JOBS" --no-tests=error 2>&1 | tee "$LOGS/ctest-release.log"
}

asan_build() {
  [[ ${HOLDFAST_SKIP_ASAN:-0} == 1 ]] && { echo "skipped (HOLDFAST_SKIP_ASAN=1)"; return 3; }
  build_preset asan-ubsan
}

asan_test() {
  [[ ${HOLDFAST_SKIP_ASAN:-0} == 1 ]] && { echo "skipped (HOLDFAST_SKIP_ASAN=1)"; return 3; }
  ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0:strict_string_checks=1} \
    UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1} \
    ctest --preset asan-ubsan -L 'unit|integration' -j "$JOBS" --no-tests=error 2>&1 |
    tee "$LOGS/ctest-asan-ubsan.log"
}

fuzz_targets() {
  local f
  for f in tests/fuzz/*_fuzz.cc; do
    [[ -e $f ]] && basename "$f" .cc
  done
}

fuzz_build() {
  [[ ${HOLDFAST_SKIP_FUZZ:-0} == 1 ]] && { echo "skipped (HOLDFAST_SKIP_FUZZ=1)"; return 3; }
  build_preset fuzz fuzz_all
}

# Runs each fuzz target for FUZZ_SECONDS over a scratch copy of its seed corpus, so that the inputs
# libFuzzer discovers do not land in the repository; crashes are kept in build/fuzz/artifacts/.
fuzz_smoke() {
  [[ ${HOLDFAST_SKIP_FUZZ:-0} == 1 ]] && { echo "skipped (HOLDFAST_SKIP_FUZZ=1)"; return 3; }
  local targets=() name failed=0
  mapfile -t targets < <(fuzz_targets)
  if [[ ${#targets[@]} -eq 0 ]]; then
    echo "no fuzz targets (tests/fuzz/*_fuzz.cc): nothing to run"
    return 0
  fi
  mkdir -p build/fuzz/artifacts
  for name in "${targets[@]}"; do
    local exe=build/fuzz/fuzz/$name work=build/fuzz/work/$name seeds=() extra=()
    rm -rf "$work" && mkdir -p "$work"
    for d in "tests/fuzz/corpus/$name" "tests/fuzz/corpus/${name%_fuzz}"; do
      [[ -d $d ]] && seeds+=("$d")
    done
    [[ -f tests/fuzz/$name.dict ]] && extra+=("-dict=tests/fuzz/$name.dict")
    echo "-- $name: ${FUZZ_SECONDS} s over ${seeds[*]:-an empty corpus}"
    if "$exe" -max_total_time="$FUZZ_SECONDS" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
      -artifact_prefix="build/fuzz/artifacts/$name-" "${extra[@]}" "$work" "${seeds[@]}" \
      >"$LOGS/fuzz-$name.log" 2>&1; then
      echo "   ok: $(grep -E '^(stat::number_of_executed_units|Done)' "$LOGS/fuzz-$name.log" | tr '\n' ' ')"
    else
      echo "   FAILED ($LOGS/fuzz-$name.log):"
      tail -40 "$LOGS/fuzz-$name.log"
      failed=1
    fi
  done
  return "$failed"
}

main() {
  local total_start
  total_start=$(date +%s)
  step "install Debian packages" install_packages
  if [[ ${STEP_RESULTS[0]} == FAIL ]]; then
    echo "cannot continue without the packages" >&2
    exit 1
  fi
  if [[ ${HOLDFAST_SKIP_LINT:-0} == 1 ]]; then
    step "lint" lint_skipped
  else
    step "check-layers" check_layers
    step "clang-format" check_format
  fi
  step "release: build" release_build
  if [[ ${STEP_RESULTS[-1]} == PASS ]]; then
    step "release: ctest" release_test
  fi
  [[ ${HOLDFAST_SKIP_LINT:-0} == 1 ]] || step "clang-tidy (src/)" check_tidy
  step "asan-ubsan: build" asan_build
  if [[ ${STEP_RESULTS[-1]} == PASS ]]; then
    step "asan-ubsan: ctest -L unit|integration" asan_test
  fi
  step "fuzz: build" fuzz_build
  if [[ ${STEP_RESULTS[-1]} == PASS ]]; then
    step "fuzz: smoke" fuzz_smoke
  fi

  echo
  echo "==================== summary ===================="
  local i
  for i in "${!STEP_NAMES[@]}"; do
    printf '  %-4s %6s s  %s\n' "${STEP_RESULTS[$i]}" "${STEP_TIMES[$i]}" "${STEP_NAMES[$i]}"
  done
  printf '  total %s s: %s\n' "$(($(date +%s) - total_start))" \
    "$([[ $FAILED -eq 0 ]] && echo 'ALL STEPS PASSED' || echo 'SOME STEPS FAILED')"
  # The release suite's own closing line comes last, for whoever reads the run's final line.
  if [[ -f $LOGS/ctest-release.log ]]; then
    grep -E 'tests passed, [0-9]+ tests failed out of' "$LOGS/ctest-release.log" | tail -1
  fi
  exit $FAILED
}

main "$@"
