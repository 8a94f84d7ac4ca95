#!/usr/bin/env bash
# Runs every test of mkrefs. On a fresh machine it first installs what the tests need:
#   - a Python venv (target/test-venv) with stdatamodels, the real consumer that validates
#     every reference file the tests write;
#   - cargo-generate 0.23.14 (newer releases do not build on Rust 1.95), for the template test;
#   - Slurm and munge (Debian packages), started as a single-node cluster on loopback for the
#     Slurm executor's tests (tests/slurm/cluster.sh), and stopped when the tests end.
# Then: formatting and lint checks, the workspace build, the README's demo, and all tests
# (nextest when present).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"

echo "== Python venv with stdatamodels"
bash tests/python/ensure-venv.sh "$root/target/test-venv"
export MKREFS_TEST_PYTHON="$root/target/test-venv/bin/python"

echo "== cargo-generate"
if ! cargo generate --version 2>/dev/null | grep -q "0\.23\.14"; then
    cargo install cargo-generate@0.23.14 --locked
fi

echo "== single-node Slurm cluster"
eval "$(bash tests/slurm/cluster.sh start)"
trap 'bash tests/slurm/cluster.sh stop >/dev/null 2>&1 || true' EXIT
# The Slurm tests fail, rather than pass over, without the cluster.
export MKREFS_REQUIRE_SLURM=1

echo "== format and lint"
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings

echo "== build"
cargo build --workspace --all-targets --locked

echo "== full-frame bad-pixel detection (release build; prints the per-class tables)"
# 2048x2048 NIRCam data with every defect class: too slow for a debug build, so these two
# tests are #[ignore]d in the normal run and run here in release.
cargo test --release --locked -p mkref-bpm --test detection --test darks_detection \
    -- --ignored --nocapture
# The bpm made by the real mkrefs through three calibration chains (truth's reference files +
# native engine, the same + jwst, SELF superbias/readnoise + native) on a 512x512 subarray; jwst's
# products are kept in target/detection-chains, so only the first run on a machine runs jwst.
cargo test --release --locked -p mkrefs-e2e --test detection_chains -- --ignored --nocapture
# TMT IRIS at its full 4096x4096: the bad-pixel search from 2 darks + 2 flats under 2 GB.
cargo test --release --locked -p mkrefs-e2e --test iris -- --ignored --nocapture

echo "== the README's first command (cargo run --release -- demo), into target/readme-demo"
rm -rf target/readme-demo
cargo run --release --locked -- demo --dir target/readme-demo | tee target/readme-demo.out
# The demo must find every simulated defect class (its line "bpm: ... per class: Dead 10/10, ...").
demo_bpm=$(grep "^bpm: .*per class: " target/readme-demo.out || true)
missed=$(echo "$demo_bpm" | grep -oE "[A-Za-z]+ [0-9]+/[0-9]+" \
    | awk '{ split($2, f, "/"); if (f[1] != f[2]) print }')
if [ -z "$demo_bpm" ] || [ -n "$missed" ]; then
    echo "the demo did not find every simulated bad-pixel class: ${missed:-no bpm line}" >&2
    exit 1
fi

echo "== tests"
if cargo nextest --version >/dev/null 2>&1; then
    # (The workspace has no doc tests to run: the one example in plugin-api is `ignore`.)
    cargo nextest run --workspace --locked --no-fail-fast
else
    cargo test --workspace --locked --no-fail-fast
fi
