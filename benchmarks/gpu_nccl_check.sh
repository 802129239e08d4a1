#!/usr/bin/env bash
# The NCCL check of distributed training, for a lent GPU machine (not yet run: docs/distributed.md). At most
# 3 minutes (3 commands of 55 s at most, and the install). On one GPU NCCL refuses two ranks, so: world size 1
# over NCCL, world size 2 host-staged.
# Prepare here (the device machine has CuPy and PyTorch but not array-api-compat, mpi4py or MPICH):
#     echo /.whl/ >> .git/info/exclude
#     python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#         --platform manylinux_2_28_x86_64 --platform manylinux2014_x86_64 -d .whl array-api-compat mpi4py mpich
# (both platforms: MPICH's wheels are manylinux_2_28 only; with manylinux2014 alone pip takes mpich 0.0.0, an
# empty placeholder wheel without libmpi.) The wheels are installed with pip --prefix into /tmp/site
# (benchmarks/install_wheels.sh: pip --target would drop MPICH's lib/libmpi.so.12, and mpi4py would say "cannot
# load MPI library"), LD_LIBRARY_PATH pointing at /tmp/site/lib.
# Run there:  bash benchmarks/gpu_nccl_check.sh     (carry: .whl; OUT set by the device tool; timeout_s 200)
# Try here:   OUT=/tmp/nccl GPU_CHECK_DEVICE=cpu PYTHON=.venv/bin/python bash benchmarks/gpu_nccl_check.sh
#             (GPU_CHECK_DEVICE=cpu: the same commands on the CPU with numpy and torch, path mpi; XPNET_WHEELS:
#             another folder of wheels than .whl)
# Writes $OUT/nccl.txt: each command, its output and rc. Expected: `path nccl` in the -n 1 table and
# `mpi-staged` in the -n 2 table for cupy and torch, every row `pass`; with 2+ GPUs the last command's rows
# say `nccl` (each rank on its own GPU).
set -u
OUT=${OUT:-/tmp/xpnet-nccl-check}
PY=${PYTHON:-python3}
mkdir -p "$OUT"
cd "$(dirname "$0")/.."
LOG="$OUT/nccl.txt"
: > "$LOG"
source benchmarks/install_wheels.sh
install_wheels "${XPNET_WHEELS:-.whl}" /tmp/site >> "$LOG" 2>&1 || echo "installing the wheels failed: rc=$?" >> "$LOG"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1 OMP_NUM_THREADS=1
run() {  # run LIMIT COMMAND...
    local limit=$1; shift
    echo "\$ $*" >> "$LOG"
    timeout --kill-after=5 "$limit" "$@" >> "$LOG" 2>&1
    echo "rc=$?" >> "$LOG"
}
if [ "${GPU_CHECK_DEVICE:-cuda}" = cpu ]; then DEV=cpu BK=numpy,torch TBK=torch; else DEV=cuda BK=cupy,torch TBK=cupy; fi
{ date -u; echo "device: $DEV (GPU_CHECK_DEVICE=${GPU_CHECK_DEVICE:-cuda})"
  nvidia-smi --query-gpu=name,driver_version --format=csv 2>&1 | head -3
  $PY -c "import cupy.cuda.nccl as n; print('nccl', n.get_version())" 2>&1 | tail -n 1
  $PY -c "from mpi4py import MPI; print(MPI.Get_library_version().splitlines()[0])" 2>&1 | tail -n 1
  echo "mpiexec: $(command -v mpiexec || echo 'not found')"; } >> "$LOG" 2>&1
P="-m xpnet parity --distributed --backends $BK --device $DEV --steps 30"
run 55 mpiexec -n 1 $PY $P
run 55 mpiexec -n 2 $PY $P
run 55 mpiexec -n 2 $PY -m xpnet train --distributed --backend $TBK --device $DEV --epochs 2 --json
echo "done in $SECONDS s" >> "$LOG"
cat "$LOG"
