#!/usr/bin/env bash
# The npm package in CI (called by .ci/run after the Deno suite; runs on its own too):
#   1. build npm/ from the sources (scripts/build_npm.ts);
#   2. run the test suite on Node against the build (npm/tests/, interop tests included);
#   3. install the packed tarball into a fresh project as a consumer would: ESM import,
#      require(), a strict type check, a Node hub served by the package's `gibbs` bin;
#   4. mixed deployments: a Deno hub (from source) with Node workers, a Node hub (the package)
#      with Deno workers.
# Prints "ok - NAME" / "not ok - NAME" for each check and ends with
# "npm: N passed, N failed, N skipped" (the Node suite's tests plus these checks). Exits non-zero
# if anything failed (with CI=true, also if a test was skipped). Needs Node >= 20.19, npm, Deno
# through `npx -y deno@2`, and for the interop tests pyzmq and tests/peers/node_modules
# (installed by `deno task test`).
set -uo pipefail
cd "$(dirname "$0")/.."
root=$PWD
work=$(mktemp -d "${TMPDIR:-/tmp}/gibbs_npm_ci.XXXXXX")
trap 'rm -rf "$work"' EXIT
started=$SECONDS
passed=0
failed=0
skipped=0

# check NAME SECONDS DIR COMMAND...: runs COMMAND in DIR within SECONDS (then it and its process
# group are killed), shows its output indented, and counts the outcome.
check() {
  local name=$1 limit=$2 dir=$3 t0=$SECONDS status
  shift 3
  (cd "$dir" && timeout --kill-after=5 "$limit" "$@") >"$work/step.log" 2>&1
  status=$?
  sed 's/^/    /' "$work/step.log"
  if [ "$status" -eq 0 ]; then
    echo "ok - $name ($((SECONDS - t0)) s)"
    passed=$((passed + 1))
  else
    [ "$status" -eq 124 ] && echo "    (timed out after ${limit} s)"
    echo "not ok - $name (exit $status, $((SECONDS - t0)) s)"
    failed=$((failed + 1))
  fi
  return "$status"
}

summary() {
  echo "== npm part took $((SECONDS - started)) s"
  echo "npm: ${passed} passed, ${failed} failed, ${skipped} skipped"
  [ "$failed" -eq 0 ]
  exit $?
}

npm_quiet=(--no-audit --no-fund --loglevel=error)

echo "== npm package: build"
check "build the package (scripts/build_npm.ts)" 300 "$root" \
  npx -y deno@2 run -A scripts/build_npm.ts || summary
# The Deno binary itself, so that the processes started below get signals directly.
deno=$(npx -y deno@2 eval 'console.log(Deno.execPath())') || deno=""
if [ -z "$deno" ]; then
  echo "not ok - find the Deno binary"
  failed=$((failed + 1))
fi

echo "== npm package: the test suite on Node $(node --version)"
check "npm install in npm/ (test dependencies)" 300 "$root/npm" \
  npm install "${npm_quiet[@]}" || summary
# --test-force-exit: a test file that leaves something running must not hold the suite. (It
# also cuts a file reporter short, so the counts come from the spec reporter's summary.)
(
  timeout --kill-after=10 600 node --test --test-force-exit --test-timeout=120000 \
    --test-reporter=spec npm/tests/
) 2>&1 | tee "$work/node.log" | sed 's/^/    /'
suite_status=${PIPESTATUS[0]}
# The summary's lines: "ℹ pass 213", "ℹ fail 1", ...
node_count() {
  awk -v key="$1" '$2 == key && $3 ~ /^[0-9]+$/ { n = $3 } END { print n + 0 }' "$work/node.log"
}
node_pass=$(node_count pass)
node_fail=$(($(node_count fail) + $(node_count cancelled)))
node_skip=$(($(node_count skipped) + $(node_count todo)))
echo "# node --test: ${node_pass} passed, ${node_fail} failed, ${node_skip} skipped" \
  "(exit ${suite_status})"
passed=$((passed + node_pass))
failed=$((failed + node_fail))
skipped=$((skipped + node_skip))
if [ "${CI:-}" = true ] && [ "$node_skip" -gt 0 ]; then
  # As in .ci/run: under CI nothing may be skipped (a peer that does not run, most likely).
  echo "not ok - CI=true and ${node_skip} tests were skipped on Node:"
  grep '﹣' "$work/node.log" | sed 's/^ */    /'
  failed=$((failed + 1))
fi
if [ "$suite_status" -ne 0 ] && [ "$node_fail" -eq 0 ]; then
  # The runner itself failed (timed out, crashed) without a failing test to show for it.
  echo "not ok - node --test exited ${suite_status} with no failing test"
  failed=$((failed + 1))
fi

echo "== npm package: a consumer project"
consumer="$work/consumer"
mkdir -p "$consumer"
check "npm pack" 120 "$root/npm" npm pack --pack-destination "$work" "${npm_quiet[@]}" || summary
tarball=$(ls "$work"/gibbs-zmq-*.tgz)
# The project's files, from scripts/consumer/. Those named X.in become X: under their real names
# `deno task check` (which covers scripts/) would try to resolve "gibbs-zmq" from the repository.
for file in "$root"/scripts/consumer/*; do
  name=$(basename "$file")
  cp "$file" "$consumer/${name%.in}"
done
printf '{ "name": "consumer", "version": "1.0.0", "private": true, "type": "module" }\n' \
  >"$consumer/package.json"
check "consumer: npm install the tarball (+ typescript, @types/node)" 300 "$consumer" \
  npm install "${npm_quiet[@]}" "$tarball" typescript@^5.7 @types/node@^20.19 || summary
check "consumer: ESM import { Hub, Worker, Dealer, Router } from \"gibbs-zmq\"; tcp and ws; gibbs-zmq/browser" 30 "$consumer" \
  node esm.mjs
check "consumer: CommonJS require(\"gibbs-zmq\")" 30 "$consumer" node cjs.cjs
check "consumer: tsc --noEmit --strict on a file using Hub, Worker, Dealer, Router" 120 \
  "$consumer" npx tsc -p tsconfig.json
check "consumer: a Node hub served by 'npx gibbs worker ./model.mjs --port P'" 60 "$consumer" \
  node hub_check.mjs --expect node -- npx gibbs worker ./model.mjs --port '{port}'

echo "== npm package: mixed deployments"
check "mixed: a Deno hub (mod.ts) served by Node workers (npm/bin/gibbs.js)" 60 "$root" \
  "$deno" run -A scripts/consumer/hub_check.mjs --lib ../../mod.ts --expect node -- \
  node npm/bin/gibbs.js worker scripts/consumer/model.mjs --port '{port}'
check "mixed: a Node hub (the package) served by Deno workers (mod.ts worker)" 60 "$consumer" \
  node hub_check.mjs --expect deno -- \
  "$deno" run -A --config "$root/deno.json" "$root/mod.ts" worker ./model.mjs --port '{port}'

summary
