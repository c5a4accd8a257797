#!/usr/bin/env bash
# The whole test suite (`npm test`): lint, start the real servers (scripts/servers.sh, a no-op
# for those already running), run jest's unit and integration projects, and finish with the
# plain totals line CI reads, taken from jest's JSON results: "N passed, N failed, N skipped".
# Extra arguments go to jest (e.g. `npm test -- core/kafka`).
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

mkdir -p .run test-artifacts
results=.run/jest-results.json
rm -f "$results"

echo "== lint"
if ! { npx eslint . && npx prettier --check . >/dev/null; }; then
  echo "lint or format check failed (npm run lint; npm run format)" >&2
  echo "0 passed, 1 failed, 0 skipped"
  exit 1
fi

echo "== real servers"
if ! bash scripts/servers.sh start; then
  echo "a real test server failed to start: see its log tail above" >&2
  echo "0 passed, 1 failed, 0 skipped"
  exit 1
fi

echo "== browser"
if ! bash scripts/servers.sh browser; then
  echo "Chromium could not be installed (apt-get install chromium)" >&2
  echo "0 passed, 1 failed, 0 skipped"
  exit 1
fi

echo "== jest"
# --forceExit: a failed test that leaves a child process or socket behind must not keep CI
# from its totals line (the failure itself is in the results).
npx jest --json --outputFile="$results" --forceExit "$@"
rc=$?

if [[ ! -s "$results" ]]; then
  echo "jest wrote no results (exit $rc)" >&2
  echo "0 passed, 1 failed, 0 skipped"
  exit $((rc == 0 ? 1 : rc))
fi
# Suites that failed to run (syntax or type errors) have no test results: count each as a failure.
node -e '
  const r = require(process.argv[1])
  const broken = r.testResults.filter((s) => s.status === "failed" && s.assertionResults.length === 0).length
  console.log(`${r.numPassedTests} passed, ${r.numFailedTests + broken} failed, ${r.numPendingTests + r.numTodoTests} skipped`)
' "$PWD/$results"
exit $rc
