#!/usr/bin/env bash
# BioForge test suite: formatting, build (warnings are errors), unit/parity/CLI tests, and the README's main command.
# Ends with one line "tests: N passed, N failed, N skipped"; exits non-zero on any failure.
set -euo pipefail
root="$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/.." && pwd)"
cd "$root"

if ! command -v dotnet >/dev/null 2>&1; then
  echo "error: the .NET 10 SDK (dotnet) is not on PATH" >&2
  exit 2
fi
export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1

echo "== setup (Debian packages: RDKit, C++ toolchain, Open MPI, Chromium; the browser tests' npm package)"
./scripts/setup.sh

echo "== restore"
dotnet restore BioForge.sln -v q
echo "== format (dotnet format --verify-no-changes)"
dotnet format BioForge.sln --verify-no-changes --no-restore
echo "== build (Release, warnings as errors)"
dotnet build BioForge.sln -c Release --no-restore -v q -nologo
echo "== test"
results="$root/artifacts/test-results"
rm -rf "$results"
mkdir -p "$results"
set +e
# --blame: if the test host crashes, the tests it was running are named (no dump is written).
dotnet test tests/BioForge.Tests/BioForge.Tests.csproj -c Release --no-build --blame --logger "console;verbosity=normal" \
  --logger "trx;LogFileName=tests.trx" --results-directory "$results" 2>&1 | tee "$root/artifacts/test.log" | grep -E "^\s+(Passed|Failed|Skipped) |Error Message|Assert|error"
status=${PIPESTATUS[0]} # read before any other command: an "|| true" here would hand back its own status
set -e
trx="$results/tests.trx"
counters=$(grep -o '<Counters [^>]*>' "$trx" 2>/dev/null || true)
if [ -z "$counters" ]; then
  echo "error: the test run wrote no results (see artifacts/test.log)" >&2
  exit 1
fi
count() { sed -E "s/.* $1=\"([0-9]+)\".*/\1/" <<<"$counters"; }
passed=$(count passed)
failed=$(( $(count failed) + $(count error) + $(count timeout) + $(count aborted) ))
skipped=$(( $(count total) - $(count executed) ))

echo "== README main command (./bioforge quickstart on the embedded defaults)"
smoke_failure=""
out="$(mktemp -d)"
quickstart_status=0
./bioforge quickstart --out "$out/quickstart" || quickstart_status=$?
if [ "$quickstart_status" -ne 0 ]; then
  smoke_failure="./bioforge quickstart exited with status $quickstart_status"
elif [ ! -f "$out/quickstart/candidates.csv" ] || [ "$(wc -l <"$out/quickstart/candidates.csv")" -ne 101 ]; then
  smoke_failure="candidates.csv is missing or does not hold a header and 100 rows"
elif ! grep -q "Drug candidates for ABL1" "$out/quickstart/report.html"; then
  smoke_failure="report.html lacks the title 'Drug candidates for ABL1'"
elif ! grep -q "no two above Tanimoto" "$out/quickstart/report.html"; then
  smoke_failure="report.html does not state the diversity of the pick ('no two above Tanimoto')"
fi
if [ -z "$smoke_failure" ]; then
  passed=$((passed + 1))
else
  failed=$((failed + 1))
fi
rm -rf "$out"

if [ "$status" -ne 0 ]; then
  # Repeated here because CI keeps only the tail of the output.
  echo "== failed tests (from artifacts/test.log)"
  grep -E -A14 "^\s+Failed " "$root/artifacts/test.log" | cut -c1-400 | head -n 120 || true
fi
if [ -n "$smoke_failure" ]; then
  echo "== README main command failed: $smoke_failure"
fi
if [ "$status" -ne 0 ] && [ "$(count failed)" -eq 0 ] && grep -q "Test Run Aborted" "$root/artifacts/test.log"; then
  # A crashed test host fails no test: the run counts as one failure, and the summary says what happened.
  echo "== the test run was aborted: $(grep -m1 "Reason:" "$root/artifacts/test.log" || echo "no reason given")"
  grep -A12 "were running\|was running" "$root/artifacts/test.log" | head -n 20 || true
  failed=$((failed + 1))
fi
if [ "$status" -eq 0 ] && [ "$failed" -ne 0 ] && [ -z "$smoke_failure" ]; then
  echo "== the test run exited 0 but its results count failures: $counters"
fi
echo "tests: $passed passed, $failed failed, $skipped skipped"
[ "$status" -eq 0 ] && [ -z "$smoke_failure" ] && [ "$failed" -eq 0 ]
