#!/usr/bin/env bash
# The GPU check, for a lent device machine (see DEVELOPERS' guide and the device tool's README).
# Prepare here:   echo /.whl/ >> .git/info/exclude; echo /.data/ >> .git/info/exclude
#                 python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#                     --platform manylinux2014_x86_64 -d .whl array-api-compat
#                 mkdir -p .data && cp ../shared/data/mnist/*.gz .data/
# Run there:      bash benchmarks/gpu_check.sh      (with carry: .whl, .data; OUT set by the device tool)
# Each section runs under its own time limit so one hang cannot eat the budget; results land in $OUT as
# at most 8 files. On a CPU-only machine every GPU section reports "skipped" and the script still ends 0.
set -u
OUT=${OUT:-/tmp/xpnet-gpu-check}
mkdir -p "$OUT"
cd "$(dirname "$0")/.."
if ls .whl/*.whl >/dev/null 2>&1; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
        && export PYTHONPATH="/tmp/site:${PYTHONPATH:-}"
fi
export PYTHONPATH="$PWD:${PYTHONPATH:-}" PYTHONUNBUFFERED=1
unset CUPY_TF32  # full float32 matrix products on both sides: CuPy's default; torch's is set in benchmarks/run.py
DATA=${XPNET_GPU_DATA:-.data}
[ -f "$DATA/train-images-idx3-ubyte.gz" ] || DATA=../shared/data/mnist
LOG="$OUT/summary.txt"
: > "$LOG"

section() {  # section NAME LIMIT_SECONDS OUTFILE COMMAND...
    local name=$1 limit=$2 file=$3; shift 3
    local t0=$SECONDS
    echo "== $name (limit ${limit}s)" | tee -a "$LOG"
    timeout --kill-after=10 "$limit" "$@" > "$OUT/$file" 2>&1
    local rc=$?
    echo "   rc=$rc, $((SECONDS - t0)) s -> $file" | tee -a "$LOG"
    tail -n 3 "$OUT/$file" | sed 's/^/   | /' | tee -a "$LOG"
}

{ date -u; uname -a; nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv 2>&1 | head -3
  python3 -c "import numpy, sys; print('python', sys.version.split()[0], 'numpy', numpy.__version__)"
  python3 -c "import cupy; print('cupy', cupy.__version__)" 2>&1 | tail -1
  python3 -c "import torch; print('torch', torch.__version__, torch.version.cuda)" 2>&1 | tail -1
  python3 -c "import jax; print('jax', jax.__version__)" 2>&1 | tail -1; } >> "$LOG" 2>&1

section backends 30 backends.txt python3 -m xpnet backends
section gpu-tests 60 gpu_tests.txt python3 -m pytest -q -m gpu -p no:cacheprovider tests/test_gradcheck.py \
    tests/test_training.py tests/test_checkpoint.py tests/test_backend.py
section parity 45 parity.json python3 -m xpnet parity --backends numpy,cupy,torch --device cuda \
    --dtype float64,float32 --steps 100 --json
section benchmarks 100 bench.txt python3 benchmarks/run.py --device cuda --cases A,B,E \
    --frameworks xpnet-cupy,xpnet-torch,torch --repeats 3 --epochs 2 --data-dir "$DATA" --json "$OUT/bench.json"
for dt in float32 float64; do
    section "book2015-cupy-$dt" 50 "book2015_$dt.txt" python3 -m xpnet train --preset book2015 --backend cupy \
        --device cuda --dtype $dt --data-dir "$DATA" --json
done
echo "done; files: $(ls "$OUT" | tr '\n' ' ')" | tee -a "$LOG"
exit 0
