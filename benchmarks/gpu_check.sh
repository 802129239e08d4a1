#!/usr/bin/env bash
# The GPU check, for a lent device machine (see the device tool's README). It ends within about 5.5 minutes
# (GPU_CHECK_BUDGET, default 330 s), so that a fix and a second run fit one 15-minute GPU slot.
# Prepare here:   echo /.whl/ >> .git/info/exclude; echo /.data/ >> .git/info/exclude
#                 python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#                     --platform manylinux2014_x86_64 -d .whl array-api-compat
#                 mkdir -p .data && cp ../shared/data/mnist/*.gz .data/
# Run there:      bash benchmarks/gpu_check.sh      (carry: .whl, .data; OUT set by the device tool; timeout_s 400)
# (the device machine has CuPy, PyTorch and JAX but not array-api-compat: the wheel in .whl is installed into
# /tmp/site first.) Try here:  OUT=/tmp/gpucheck PYTHON=.venv/bin/python bash benchmarks/gpu_check.sh
#
# Sections, in order, each under `timeout` with its own limit, cut to what is left of the budget (a section
# with under 10 s left is reported skipped), each writing as it goes so a cut-short section still says what
# it did:
#   probe       which of CuPy / torch see a CUDA GPU (and why not)                                    30 s
#   backends    xpnet backends                                                                        20 s
#   gpu-tests   pytest -m gpu -v (cupy-cuda, torch-cuda, jax-cuda cases of six test files, every      100 s
#               registered layer's gradcheck and first-maximum ties among them)
#   parity      xpnet parity numpy + the GPU backends, float64/float32: the MLP, 100 steps, then the    35 s
#               small CNN (--model cnn: Conv2D, max- and average-pooling), 30 steps
#   benchmarks  run.py --device cuda, cases E, B, A float32, 2 repeats x 2 epochs: xpnet-cupy,        70 s
#               xpnet-torch, torch on the GPU and xpnet-numpy on this machine's host CPU (not case E);
#               no GEMM floor; interleaved repeats, so a cut run still has repeat 1 of every row
#   bench-cnn   run.py --device cuda, case F (LeNet-5, batch 128) float32, 2 repeats x 1 epoch:       40 s
#               xpnet-cupy, xpnet-torch and native torch (torch.nn.Conv2d: cuDNN); 25 s per worker
#   bench-compiled  run.py --device cuda, case B float32 (469 small steps an epoch: where compiling pays),  45 s
#               1 repeat x 2 timed epochs after one untimed compiling epoch: xpnet-jax-jit, the native
#               jax-jit, xpnet-torch-compile with torch.compile mode reduce-overhead (CUDA graphs), in that
#               order (torch compiles slowest: a cut run still has the JAX rows); 40 s per worker
#   book2015    xpnet train --preset book2015 --epochs 30, float32 and float64, on CuPy (else torch) 2x15 s
# Files in $OUT (the device tool returns at most 8): summary.txt (machine, versions, backends, every section's
# rc, time and figures), gpu_tests.txt, parity.json (stdout only: the MLP's JSON document, then the CNN's) and
# parity.stderr.txt, bench.txt (progress and tables of the three benchmark sections), bench.md (rewritten after
# every run; bench-cnn's and bench-compiled's tables appended as each ends), bench.jsonl (a line per run, the
# later sections' appended), book2015.txt.
# On a machine where neither CuPy nor torch sees a CUDA GPU, probe and backends run, every GPU section says
# "skipped: <reason>", and the script exits 0. It exits 0 whatever the sections gave: read summary.txt.
# XLA_PYTHON_CLIENT_PREALLOCATE=false: JAX would otherwise take 75 % of the GPU when pytest collects its cases.
set -u
OUT=${OUT:-/tmp/xpnet-gpu-check}
PY=${PYTHON:-python3}
BUDGET=${GPU_CHECK_BUDGET:-330}
mkdir -p "$OUT"
cd "$(dirname "$0")/.."
if ls .whl/*.whl >/dev/null 2>&1; then
    $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
        && export PYTHONPATH="/tmp/site:${PYTHONPATH:-}"
fi
export PYTHONPATH="$PWD:${PYTHONPATH:-}" PYTHONUNBUFFERED=1 XLA_PYTHON_CLIENT_PREALLOCATE=false
unset CUPY_TF32  # full float32 matrix products on both sides: CuPy's default; torch's is set in benchmarks/run.py
DATA=${XPNET_GPU_DATA:-.data}
[ -f "$DATA/train-images-idx3-ubyte.gz" ] || DATA=../shared/data/mnist
LOG="$OUT/summary.txt"
: > "$LOG"
say() { echo "$*" | tee -a "$LOG"; }

section() {  # section NAME LIMIT_SECONDS OUTFILE ERRFILE|- COMMAND...   (stderr into OUTFILE when ERRFILE is -)
    local name=$1 limit=$2 file=$3 err=$4; shift 4
    local left=$((BUDGET - SECONDS)) t0=$SECONDS rc
    if [ "$left" -lt 10 ]; then say "== $name: skipped: the script's budget of ${BUDGET} s is spent"; return 1; fi
    [ "$limit" -gt "$left" ] && limit=$left
    say "== $name (limit ${limit} s)"
    if [ "$err" = - ]; then
        timeout --kill-after=5 "$limit" "$@" >> "$OUT/$file" 2>&1
    else
        timeout --kill-after=5 "$limit" "$@" >> "$OUT/$file" 2>> "$OUT/$err"
    fi
    rc=$?
    # timeout exits 124 when the limit struck, 137 when it had to kill; 125-127 are its own or exec failures
    say "   rc=$rc$({ [ $rc -eq 124 ] || [ $rc -eq 137 ]; } && echo ', CUT SHORT at the limit'), $((SECONDS - t0)) s -> $file"
    return 0
}

{ date -u; uname -a
  if command -v nvidia-smi >/dev/null; then nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv 2>&1 | head -3
  else echo "nvidia-smi: not found"; fi
  nproc; $PY -c "import numpy, sys; print('python', sys.version.split()[0], 'numpy', numpy.__version__)"; } >> "$LOG" 2>&1

# probe: CUPY_WHY / TORCH_WHY are empty when that library sees a CUDA GPU, else why not
say "== probe (limit 30 s)"
eval "$(timeout 30 $PY - <<'EOF' 2>/dev/null
import shlex
def put(name, why):
    print(f"{name}={shlex.quote(why)}")
def first(exc):
    return f"{type(exc).__name__}: {(str(exc).splitlines() or [''])[0][:200]}"
try:
    import cupy
    n = cupy.cuda.runtime.getDeviceCount()
    put("CUPY_WHY", "" if n else "CuPy sees no CUDA device")
    put("CUPY_VER", f"cupy {cupy.__version__}, {n} device(s)")
except Exception as exc:
    put("CUPY_WHY", f"CuPy unusable ({first(exc)})")
try:
    import torch
    ok = torch.cuda.is_available()
    put("TORCH_WHY", "" if ok else f"torch {torch.__version__} sees no CUDA GPU"
        + (" (a CPU-only build)" if torch.version.cuda is None else ""))
    put("TORCH_VER", f"torch {torch.__version__}, CUDA {torch.version.cuda}")
except Exception as exc:
    put("TORCH_WHY", f"torch unusable ({first(exc)})")
try:
    import jax
    put("JAX_VER", f"jax {jax.__version__}, devices {[d.platform for d in jax.devices()]}")
except Exception as exc:
    put("JAX_VER", f"jax unusable ({first(exc)})")
EOF
)"
CUPY_WHY=${CUPY_WHY-the probe did not finish}
TORCH_WHY=${TORCH_WHY-the probe did not finish}
say "   ${CUPY_VER:-cupy not imported}; ${TORCH_VER:-torch not imported}; ${JAX_VER:-jax not imported}"
say "   cupy: ${CUPY_WHY:-sees a CUDA GPU}; torch: ${TORCH_WHY:-sees a CUDA GPU}"
GPU_WHY=""
[ -n "$CUPY_WHY" ] && [ -n "$TORCH_WHY" ] && GPU_WHY="no CUDA GPU usable: $CUPY_WHY; $TORCH_WHY"
skipped() { say "== $1: skipped: $GPU_WHY"; }

section backends 20 summary.txt - $PY -m xpnet backends

if [ -n "$GPU_WHY" ]; then
    skipped gpu-tests; skipped parity; skipped benchmarks; skipped bench-cnn; skipped bench-compiled
    skipped book2015
    say "done in $SECONDS s; files: $(ls "$OUT" | tr '\n' ' ')"
    exit 0
fi

if section gpu-tests 100 gpu_tests.txt - $PY -m pytest -v -m gpu -p no:cacheprovider tests/test_gradcheck.py \
        tests/test_training.py tests/test_checkpoint.py tests/test_backend.py tests/test_layers_api.py \
        tests/test_conv.py; then
    say "   so far: $(grep -c ' PASSED' "$OUT/gpu_tests.txt") passed, $(grep -c ' FAILED' "$OUT/gpu_tests.txt") failed," \
        "$(grep -c ' SKIPPED' "$OUT/gpu_tests.txt") skipped, $(grep -c ' ERROR' "$OUT/gpu_tests.txt") errors" \
        "| $(tail -n 1 "$OUT/gpu_tests.txt")"
    grep -E ' (FAILED|ERROR)' "$OUT/gpu_tests.txt" | head -n 10 | sed 's/^/   | /' | tee -a "$LOG"
fi

PAR=numpy
[ -z "$CUPY_WHY" ] && PAR="$PAR,cupy"
[ -z "$TORCH_WHY" ] && PAR="$PAR,torch"
parity_both() {  # the MLP's parity JSON document, then the small CNN's, one after the other on stdout
    $PY -m xpnet parity --backends "$PAR" --device cuda --dtype float64,float32 --steps 100 --json
    $PY -m xpnet parity --model cnn --backends "$PAR" --device cuda --dtype float64,float32 --steps 30 --json
}
export -f parity_both; export PY PAR  # `timeout` runs commands, not functions: it runs bash -c parity_both
if section parity 35 parity.json parity.stderr.txt bash -c parity_both; then
    $PY - "$OUT/parity.json" <<'EOF' 2>&1 | sed 's/^/   | /' | tee -a "$LOG"
import json, sys
text, docs, at, decoder = open(sys.argv[1]).read(), [], 0, json.JSONDecoder()
try:
    while text[at:].strip():
        at += len(text[at:]) - len(text[at:].lstrip())
        doc, at = decoder.raw_decode(text, at)
        docs.append(doc)
except ValueError as exc:
    print(f"parity JSON cut short after {len(docs)} document(s) ({exc}); see parity.stderr.txt")
for model, doc in zip(("mlp", "cnn"), docs):
    for r in doc["results"]:
        print(f"{model} {r['backend']} {r['device']} {r['dtype']}: lockstep {r['max_rel_diff']:.2g} (tolerance "
              f"{r['tolerance']:g}), free-running {r['free_max_rel_diff']:.2g}, {'passed' if r['passed'] else 'FAILED'}")
EOF
    tail -n 2 "$OUT/parity.stderr.txt" | sed 's/^/   | stderr: /' | tee -a "$LOG"
fi

FW=""
[ -z "$CUPY_WHY" ] && FW="${FW}xpnet-cupy,"
[ -z "$TORCH_WHY" ] && FW="${FW}xpnet-torch,torch,"
if section benchmarks 70 bench.txt - $PY benchmarks/run.py --device cuda --cases E,B,A --dtypes float32 \
        --frameworks "${FW}xpnet-numpy" --repeats 2 --epochs 2 --timeout 40 --data-dir "$DATA" \
        --json "$OUT/bench.jsonl" --markdown "$OUT/bench.md"; then
    grep -E '^- status|^\| [A-E] ' "$OUT/bench.md" 2>/dev/null | cut -c 1-160 | sed 's/^/   | /' | tee -a "$LOG"
fi

# later benchmark sections: their own runs (their own cases and frameworks), JSON lines and tables appended to
# bench.jsonl and bench.md afterwards (the device tool returns 8 files at most)
bench_appended() {  # bench_appended NAME LIMIT RUN.PY-ARGUMENTS...
    local name=$1 limit=$2 tmp; shift 2
    tmp=$(mktemp -d)
    echo "### $name" >> "$OUT/bench.txt"
    if section "$name" "$limit" bench.txt - $PY benchmarks/run.py --device cuda --data-dir "$DATA" \
            --json "$tmp/bench.jsonl" --markdown "$tmp/bench.md" "$@"; then
        cat "$tmp/bench.jsonl" >> "$OUT/bench.jsonl" 2>/dev/null
        { echo; echo "# $name (appended)"; echo; cat "$tmp/bench.md"; } >> "$OUT/bench.md" 2>/dev/null
        grep -E '^- status|^\| [A-F] ' "$tmp/bench.md" 2>/dev/null | cut -c 1-190 | sed 's/^/   | /' | tee -a "$LOG"
    fi
    rm -rf "$tmp"
}

# case F, LeNet-5: xpnet's convolutions (im2col GEMMs from standard operations) against cuDNN's
bench_appended bench-cnn 40 --cases F --dtypes float32 --frameworks "${FW%,}" --repeats 2 --epochs 1 --timeout 25

# compiled steps: JAX rows first, torch.compile's last
CFW="xpnet-jax-jit,jax-jit"
[ -z "$TORCH_WHY" ] && CFW="$CFW,xpnet-torch-compile"
bench_appended bench-compiled 45 --cases B --dtypes float32 --frameworks "$CFW" --torch-compile-mode reduce-overhead \
    --repeats 1 --epochs 2 --timeout 40

if [ -z "$CUPY_WHY" ]; then BK=cupy; else BK=torch; fi
for dt in float32 float64; do
    echo "### xpnet train --preset book2015 --backend $BK --device cuda --dtype $dt --epochs 30" >> "$OUT/book2015.txt"
    if section "book2015-$BK-$dt" 15 book2015.txt - $PY -m xpnet train --preset book2015 --backend $BK \
            --device cuda --dtype $dt --epochs 30 --data-dir "$DATA" --json; then
        $PY - "$OUT/book2015.txt" <<'EOF' 2>&1 | sed 's/^/   | /' | tee -a "$LOG"
import json, re, statistics, sys
run = open(sys.argv[1]).read().rsplit("### ", 1)[-1]  # this run's part of the file
epochs = [60000 / float(m.replace(",", "")) for m in re.findall(r"^epoch \d+/\d+ .* ([\d,.]+) samples/s$", run, re.M)]
done = [json.loads(line) for line in run.splitlines() if line.startswith("{")]
if epochs:
    print(f"{len(epochs)} epoch(s) seen: median {statistics.median(epochs):.4f} s/epoch (first {epochs[0]:.4f})")
if done:
    d = done[-1]
    print(f"{d['epochs']} epochs in {d['seconds']:.2f} s = {d['seconds'] / d['epochs']:.4f} s/epoch, train accuracy "
          f"{d['train_accuracy']:.4f}, test accuracy {d['test_accuracy']:.4f}")
elif not epochs:
    print("no epoch finished: " + (run.strip().splitlines() or ["no output"])[-1][:200])
EOF
    fi
done
say "done in $SECONDS s; files: $(ls "$OUT" | tr '\n' ' ')"
exit 0
