#!/usr/bin/env bash
# Checks a prebuilt wgtrain on a machine with a real GPU and no network, in one go:
# the adapters it sees, `verify` (every kernel against the CPU), `bench --json` (the
# standard workloads small, wide and cnn, every GEMM variant and the convolution kernels,
# in f32 and in mixed precision) and short training runs of the default model (f32 and
# mixed), all into one results file.
#
#   cargo build --release                      # here, where crates.io is reachable
#   scp target/release/wgtrain data/ … there   # or carry target/release/wgtrain
#   scripts/gpu-check.sh [WGTRAIN_BINARY] [OUT_FILE]
#
# The data set is read from data/fashion-mnist (the vendored copy).
set -uo pipefail
cd "$(dirname "$0")/.."
BIN=${1:-target/release/wgtrain}
OUT=${2:-gpu-check.txt}
run() {
    echo "\$ $*" | tee -a "$OUT"
    timeout "${STEP_TIMEOUT:-240}" "$@" 2>&1 | tee -a "$OUT"
    echo "(exit ${PIPESTATUS[0]})" | tee -a "$OUT"
}
: >"$OUT"
echo "# wgtrain GPU check, $(date -u +%FT%TZ), $(uname -srm)" | tee -a "$OUT"
command -v nvidia-smi >/dev/null && run nvidia-smi --query-gpu=name,driver_version,clocks.max.sm --format=csv
run "$BIN" devices
run "$BIN" verify
# The kernels measured on this adapter (then cached), and the fixed rule's, side by side.
run "$BIN" bench --devices gpu --workloads small,wide,cnn --steps 100 --kernels auto
run "$BIN" bench --devices gpu --workloads small,wide,cnn --steps 100 --kernels fixed
run "$BIN" bench --devices gpu --workloads small,wide,cnn,sweep --steps 100 --json
run "$BIN" bench --devices gpu --workloads wide --gemm --steps 50 --json
# Mixed precision (f16 operands, f32 accumulation) where the adapter has SHADER_F16.
run "$BIN" bench --devices gpu --workloads small,wide --steps 100 --precision mixed --json
run "$BIN" bench --devices gpu --workloads wide --gemm --steps 50 --precision mixed --json
run "$BIN" bench --conv --steps 20 --json
run "$BIN" bench --devices cpu --workloads small,wide,cnn --steps 50 --json
# Two epochs of the default run on the GPU: epoch times, samples/s and accuracy.
run "$BIN" train --device gpu --epochs 2 --out "${TMPDIR:-/tmp}/wgtrain-gpu-check" --force
run "$BIN" train --device gpu --epochs 2 --precision mixed --out "${TMPDIR:-/tmp}/wgtrain-gpu-check-mixed" --force
echo "results in $OUT"
