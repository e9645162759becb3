#!/usr/bin/env bash
# The whole test suite, from a fresh clone: installs what the tests need, then runs
# formatting and lint checks, the no_std build of the protocol core, the examples
# that end by themselves, and every test.
# The README's second command; .ci/run calls it too.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }

step "toolchain components"
rustup component add rustfmt clippy >/dev/null 2>&1 || true

step "python3 (tests/spec_peer.rs runs a peer written from the wire spec with it)"
command -v python3 >/dev/null ||
  echo "python3 is missing: tests/spec_peer.rs will skip its peer" >&2

step "python venv with netcore==0.1.3 (tests/py_interop.rs runs real Python Netcore peers), cached in target/py-venv"
if command -v python3 >/dev/null; then
  ./scripts/py-venv.sh >/dev/null
fi

step "chromium (tests/gateway_cli.rs renders the gateway's status page in a headless browser)"
if ! command -v chromium >/dev/null; then
  if command -v apt-get >/dev/null; then
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; } ||
      echo "installing chromium failed: tests/gateway_cli.rs will fail (NETCORE_SKIP_BROWSER=1 skips its browser part)" >&2
  else
    echo "chromium is missing and apt-get is not there: tests/gateway_cli.rs will fail (NETCORE_SKIP_BROWSER=1 skips its browser part)" >&2
  fi
fi

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy (all targets, warnings are errors)"
cargo clippy --workspace --all-targets --quiet -- -D warnings

step "netcore-proto builds without std (firmware profile)"
cargo build -p netcore-proto --no-default-features --quiet

step "the library builds without the netcore tool's dependencies (default-features = false)"
cargo check -p netcore --no-default-features --quiet

step "examples run to completion (quickstart, comprehensive, gateway)"
mkdir -p target
for example in quickstart comprehensive gateway; do
  timeout 120 cargo run --quiet --example "$example" >"target/example-$example.txt" 2>&1 ||
    { echo "example $example failed; its output:" >&2; cat "target/example-$example.txt" >&2; exit 1; }
done

step "cargo test --workspace"
mkdir -p target
set +e
cargo test --workspace --no-fail-fast 2>&1 | tee target/test-output.txt | grep -E '^(test result|running|failures:|---- )|panicked|^error'
status=${PIPESTATUS[0]}
set -e
passed=$(grep -oE 'test result: [a-zA-Z]+\. [0-9]+ passed' target/test-output.txt | awk '{s+=$4} END {print s+0}')
failed=$(grep -oE 'test result: [a-zA-Z]+\. [0-9]+ passed; [0-9]+ failed' target/test-output.txt | awk '{s+=$6} END {print s+0}')
echo
echo "${passed} passed, ${failed} failed"
if [ "$status" -ne 0 ]; then
  echo "cargo test failed (exit $status); full output in target/test-output.txt" >&2
  exit "$status"
fi
