#!/usr/bin/env bash
# The NCCL check of distributed training, for a lent GPU machine (not yet run: docs/distributed.md). About 2
# minutes. On one GPU NCCL refuses two ranks, so: world size 1 over NCCL, world size 2 host-staged.
# Prepare here (the device machine has CuPy and PyTorch but not array-api-compat, mpi4py or MPICH):
#     echo /.whl/ >> .git/info/exclude
#     python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#         --platform manylinux2014_x86_64 -d .whl array-api-compat mpi4py mpich
# Run there:  bash benchmarks/gpu_nccl_check.sh     (carry: .whl; OUT set by the device tool; timeout_s 200)
# Writes $OUT/nccl.txt: each command, its output and rc. Expected: `path nccl` in the -n 1 table and
# `mpi-staged` in the -n 2 table for cupy and torch, every row `pass`; with 2+ GPUs the last command's rows
# say `nccl` (each rank on its own GPU).
set -u
OUT=${OUT:-/tmp/xpnet-nccl-check}
PY=${PYTHON:-python3}
mkdir -p "$OUT"
cd "$(dirname "$0")/.."
if ls .whl/*.whl >/dev/null 2>&1; then
    $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
        && export PYTHONPATH="/tmp/site:${PYTHONPATH:-}" PATH="/tmp/site/bin:$PATH"
fi
export PYTHONPATH="$PWD:${PYTHONPATH:-}" PYTHONUNBUFFERED=1 OMP_NUM_THREADS=1
LOG="$OUT/nccl.txt"
: > "$LOG"
run() {  # run LIMIT COMMAND...
    local limit=$1; shift
    echo "\$ $*" >> "$LOG"
    timeout --kill-after=5 "$limit" "$@" >> "$LOG" 2>&1
    echo "rc=$?" >> "$LOG"
}
{ date -u; nvidia-smi --query-gpu=name,driver_version --format=csv 2>&1 | head -3
  $PY -c "import cupy.cuda.nccl as n; print('nccl', n.get_version())" 2>&1; } >> "$LOG"
P="-m xpnet parity --distributed --backends cupy,torch --device cuda --steps 30"
run 60 mpiexec -n 1 $PY $P
run 60 mpiexec -n 2 $PY $P
run 60 mpiexec -n 2 $PY -m xpnet train --distributed --backend cupy --device cuda --epochs 2 --json
cat "$LOG"
