#!/usr/bin/env bash
# Runs the type check and both jest lanes (TypeORM 1.x primary; TypeORM 0.3 + sqlite3 compatibility),
# then prints one closing line with the totals of both lanes.
set -uo pipefail
cd "$(dirname "$0")/.."
mkdir -p .tmp
rm -f .tmp/jest-*.json
status=0
typecheck=ok
npx tsc -p tsconfig.json --noEmit || { echo "type check failed" >&2; status=1; typecheck=failed; }
npx jest -c jest.config.js --json --outputFile=.tmp/jest-primary.json "$@" || status=1
npx jest -c jest.typeorm03.config.js --json --outputFile=.tmp/jest-typeorm03.json || status=1
# The package as users get it: npm pack, installed into three fresh apps, compiled and run (test/package/run.js).
rm -f .tmp/package-result.json
node test/package/run.js || status=1
TMM_TYPECHECK=$typecheck node -e '
  const fs = require("fs");
  let passed = 0, failed = 0, pending = 0, suitesFailed = 0;
  for (const lane of ["primary", "typeorm03"]) {
    const f = `.tmp/jest-${lane}.json`;
    if (!fs.existsSync(f)) { console.error(`lane ${lane}: no result file`); failed++; continue; }
    const r = JSON.parse(fs.readFileSync(f, "utf8"));
    passed += r.numPassedTests; failed += r.numFailedTests; pending += r.numPendingTests + r.numTodoTests;
    suitesFailed += r.numRuntimeErrorTestSuites || 0; // suites that could not run at all (their tests are not counted)
    console.log(`lane ${lane}: ${r.numPassedTests} passed, ${r.numFailedTests} failed in ${r.numTotalTestSuites} suites`);
  }
  const pf = ".tmp/package-result.json";
  if (fs.existsSync(pf)) {
    const p = JSON.parse(fs.readFileSync(pf, "utf8"));
    passed += p.passed; failed += p.failed;
    console.log(`lane package: ${p.passed} passed, ${p.failed} failed`);
  } else { console.error("lane package: no result file"); failed++; }
  if (suitesFailed > 0) console.log(`${suitesFailed} suite(s) failed to run; each counts as one failure`);
  const typeFailed = process.env.TMM_TYPECHECK === "ok" ? 0 : 1;
  if (typeFailed) console.log("type check: failed (tsc --noEmit, see above); counts as one failure");
  console.log(`tests: ${passed} passed, ${failed + suitesFailed + typeFailed} failed` + (pending ? `, ${pending} skipped` : ""));
'
exit $status
