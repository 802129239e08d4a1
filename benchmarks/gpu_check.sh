#!/usr/bin/env bash
# The GPU check, for a lent device machine (see the device tool's README). It ends within 350 s
# (GPU_CHECK_BUDGET), under 6 minutes, so that a fix and a second run fit one 15-minute GPU slot.
# Prepare here:   echo /.whl/ >> .git/info/exclude; echo /.data/ >> .git/info/exclude
#                 python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#                     --platform manylinux_2_28_x86_64 --platform manylinux2014_x86_64 -d .whl array-api-compat
#                 mkdir -p .data && cp ../shared/data/mnist/*.gz .data/
# Run there:      bash benchmarks/gpu_check.sh      (carry: .whl, .data; OUT set by the device tool; timeout_s 380)
# (the device machine has CuPy, PyTorch and JAX but not array-api-compat: the wheels in .whl, or XPNET_WHEELS,
# are installed with pip --prefix into /tmp/site first: benchmarks/install_wheels.sh.)
# Try here:       OUT=/tmp/gpucheck GPU_CHECK_DEVICE=cpu PYTHON=.venv/bin/python bash benchmarks/gpu_check.sh
# GPU_CHECK_DEVICE=cpu forces the GPU sections onto the CPU (torch and JAX on the CPU, no CuPy; the gpu-marked
# tests then skip), to check the script itself on a machine without a GPU. GPU_CHECK_DRY_RUN=1 prints each
# section's limit and command and the limits' sum, and runs nothing (tests/test_bench_scripts.py reads it).
#
# Sections, in order, each under `timeout` with its own limit (LIMITS below; with the 3 s each may take to be
# killed and 10 s for the install they add up to at most the budget, so no section is cut by another's
# overrun), each writing as it goes so a cut-short section still says what it did:
#   probe       which of CuPy / torch see a CUDA GPU (and why not)                                    25 s
#   backends    xpnet backends                                                                        10 s
#   compiled-smoke  xpnet.parity with compile=True, torch (torch.compile mode reduce-overhead: CUDA    55 s
#               graphs) and JAX (jax.jit), float32, 8 steps: the compiled steps against NumPy and against
#               their own eager steps, first, while a cold Inductor/Triton cache has the most time
#   gpu-tests   pytest -m gpu -v (cupy-cuda, torch-cuda, jax-cuda cases of eight test files, among them    63 s
#               test_gpu_paths.py and test_prefetch.py (prefetch's staging on the GPU); every registered
#               layer's gradcheck and first-maximum ties among them)
#   parity      xpnet parity numpy + the GPU backends, float64/float32: the MLP, 100 steps, then the    25 s
#               small CNN (--model cnn: Conv2D, max- and average-pooling), 30 steps
#   benchmarks  run.py --device cuda, cases E, B, A float32, 1 repeat x 2 epochs: xpnet-cupy,         35 s
#               xpnet-torch, torch on the GPU and xpnet-numpy on this machine's host CPU (not case E);
#               no GEMM floor; each row written as it ends (forced onto the CPU: cases B, A)
#   bench-cnn   run.py --device cuda, case F (LeNet-5, batch 128) float32, 2 repeats x 1 epoch:       20 s
#               xpnet-cupy (im2col), xpnet-torch (its native kernels: F.conv2d and its backward, cuDNN;
#               the row's note names them) and native torch (torch.nn.Conv2d: cuDNN); 18 s per worker
#   bench-torch-compile  run.py --device cuda, case B float32 (469 small steps an epoch: where         35 s
#               compiling pays), 1 repeat x 2 timed epochs after one untimed compiling epoch:
#               xpnet-torch-compile, torch.compile mode reduce-overhead (CUDA graphs); a section of its own
#               (torch compiles slowest), 32 s for its worker
#   bench-jax-jit   the same for xpnet-jax-jit and the native jax-jit; 10 s per worker                 12 s
#   prefetch    benchmarks/prefetch.py on torch CUDA (else CuPy): the seconds a step waits for its data  14 s
#               as a fraction of the step time, --prefetch 0 against 2 (pinned memory, a copy stream), a
#               784-4096-4096-10 MLP at batch 1024 on reads of 2 ms, 2 interleaved repeats x 30 steps
#   book2015    xpnet train --preset book2015 --epochs 30 float32 on CuPy (else torch): the epochs     10 s
#               that end in the time (each epoch's line is parsed)
# GPU_CHECK_SECTIONS=gpt runs, in place of the sections above after probe and backends, the GPU recipe of the
# character-level GPT (issue 32; docs/gpt.md), a few hundred steps each (carry .data with
# .data/tinyshakespeare/input.txt, else ../shared/data is read):
#   gpt-cupy    xpnet train --preset gpt-shakespeare --backend cupy --device cuda --steps 300            140 s
#               --eval-every 100 --eval-batches 20 --json (6 layers, 6 heads, 384 wide, context 256, batch 64,
#               dropout 0.2 with device masks): its lines every 100 steps (losses, ms/step) and the final
#               validation loss over the whole split -> gpt.txt
#   gpt-torch   the same on torch CUDA                                                                  140 s
# GPU_CHECK_SECTIONS=precision runs, in place of them, mixed precision against float32 (issue 33;
# docs/precision.md; benchmarks/precision_check.py) on CuPy (float16 only: it has no bfloat16), torch CUDA and
# JAX on the GPU, each row written as it finishes -> precision.txt (a text line, then its JSON line):
#   precision-parity  xpnet parity --precision's comparison per backend and type (bf16-mixed, fp16-mixed) on   60 s
#               the parity MLP, 20 steps: the lockstep medians of gradients and update, the last free-running
#               loss's gap, float32 matmuls pinned to full precision on both sides
#   precision-speed   eager steps/s of an MLP 784-1024-1024-10 at batch 512 in float32, then each type, per     90 s
#               backend (the ratio to float32 on the row), at most 4 s or 200 steps a row after 3 warm-up steps
# Files in $OUT (the device tool returns at most 8): summary.txt (machine, versions, backends, every section's
# rc, time and figures), compiled_smoke.txt, gpu_tests.txt, parity.json (stdout only: the MLP's JSON
# document, then the CNN's) and parity.stderr.txt, bench.txt (progress and tables of the benchmark sections,
# then book2015's output), bench.md (rewritten after every run; later sections' tables appended as each ends),
# bench.jsonl (a line per run, the later sections' appended).
# On a machine where neither CuPy nor torch sees a CUDA GPU, probe and backends run, every GPU section says
# "skipped: <reason>", and the script exits 0. It exits 0 whatever the sections gave: read summary.txt.
# XLA_PYTHON_CLIENT_PREALLOCATE=false: JAX would otherwise take 75 % of the GPU when pytest collects its cases.
set -u
OUT=${OUT:-/tmp/xpnet-gpu-check}
PY=${PYTHON:-python3}
BUDGET=${GPU_CHECK_BUDGET:-350}
DRY=${GPU_CHECK_DRY_RUN:-}
KILL_AFTER=3  # seconds `timeout` waits after its TERM before it kills
SETUP=10      # seconds kept for the install and what runs outside the sections
MODE=${GPU_CHECK_SECTIONS:-all}
if [ "$MODE" = gpt ]; then
    declare -A LIMITS=([probe]=25 [backends]=10 [gpt-cupy]=140 [gpt-torch]=140)
    LATER="gpt-cupy gpt-torch"
elif [ "$MODE" = precision ]; then
    declare -A LIMITS=([probe]=25 [backends]=10 [precision-parity]=60 [precision-speed]=90)
    LATER="precision-parity precision-speed"
else
    declare -A LIMITS=([probe]=25 [backends]=10 [compiled-smoke]=55 [gpu-tests]=63 [parity]=25 [benchmarks]=35
                       [bench-cnn]=20 [bench-torch-compile]=35 [bench-jax-jit]=12 [prefetch]=14 [book2015]=10)
    LATER="compiled-smoke gpu-tests parity benchmarks bench-cnn bench-torch-compile bench-jax-jit prefetch book2015"
fi
mkdir -p "$OUT"
cd "$(dirname "$0")/.."
LOG="$OUT/summary.txt"
: > "$LOG"
say() { echo "$*" | tee -a "$LOG"; }
total=$SETUP
for name in "${!LIMITS[@]}"; do total=$((total + LIMITS[$name] + KILL_AFTER)); done
say "section limits: ${#LIMITS[@]} sections, with ${KILL_AFTER} s each to be killed and ${SETUP} s of set-up: $total s of" \
    "the budget's $BUDGET s$([ "$total" -gt "$BUDGET" ] && echo ' (OVER: later sections will be cut)')"

if [ -z "$DRY" ]; then
    source benchmarks/install_wheels.sh
    install_wheels "${XPNET_WHEELS:-.whl}" /tmp/site >> "$LOG" 2>&1 || say "installing the wheels failed: rc=$?"
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1 XLA_PYTHON_CLIENT_PREALLOCATE=false
unset CUPY_TF32  # full float32 matrix products on both sides: CuPy's default; torch's is set in benchmarks/bench/train_torch.py
DATA=${XPNET_GPU_DATA:-.data}
[ -f "$DATA/train-images-idx3-ubyte.gz" ] || DATA=../shared/data/mnist

section() {  # section NAME OUTFILE ERRFILE|- COMMAND...   (stderr into OUTFILE when ERRFILE is -; limit: LIMITS)
    local name=$1 file=$2 err=$3; shift 3
    local limit=${LIMITS[${name%%:*}]} left=$((BUDGET - SECONDS)) t0=$SECONDS rc
    if [ "$left" -lt 10 ]; then say "== $name: skipped: the script's budget of ${BUDGET} s is spent"; return 1; fi
    [ "$limit" -gt "$left" ] && limit=$left
    if [ -n "$DRY" ]; then say "== $name (limit ${limit} s): $*"; return 1; fi
    say "== $name (limit ${limit} s)"
    if [ "$err" = - ]; then
        timeout --kill-after=$KILL_AFTER "$limit" "$@" >> "$OUT/$file" 2>&1
    else
        timeout --kill-after=$KILL_AFTER "$limit" "$@" >> "$OUT/$file" 2>> "$OUT/$err"
    fi
    rc=$?
    # timeout exits 124 when the limit struck, 137 when it had to kill; 125-127 are its own or exec failures
    say "   rc=$rc$({ [ $rc -eq 124 ] || [ $rc -eq 137 ]; } && echo ', CUT SHORT at the limit'), $((SECONDS - t0)) s -> $file"
    return 0
}

if [ "${GPU_CHECK_DEVICE:-cuda}" = cpu ]; then DEV=cpu; else DEV=cuda; fi
if [ -n "$DRY" ]; then
    say "== probe (limit ${LIMITS[probe]} s): dry run: CuPy and torch taken to see a GPU"
    CUPY_WHY="" TORCH_WHY=""
else
    { date -u; uname -a
      if command -v nvidia-smi >/dev/null; then nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv 2>&1 | head -3
      else echo "nvidia-smi: not found"; fi
      nproc; $PY -c "import numpy, sys; print('python', sys.version.split()[0], 'numpy', numpy.__version__)"; } >> "$LOG" 2>&1

    # probe: CUPY_WHY / TORCH_WHY are empty when that library sees a CUDA GPU (or, forced onto the CPU, when
    # torch imports), else why not
    say "== probe (limit ${LIMITS[probe]} s)"
    eval "$(DEV=$DEV timeout --kill-after=$KILL_AFTER ${LIMITS[probe]} $PY - <<'EOF' 2>/dev/null
import os, shlex
cpu = os.environ["DEV"] == "cpu"
def put(name, why):
    print(f"{name}={shlex.quote(why)}")
def first(exc):
    return f"{type(exc).__name__}: {(str(exc).splitlines() or [''])[0][:200]}"
if cpu:
    put("CUPY_WHY", "the GPU sections are forced onto the CPU (GPU_CHECK_DEVICE=cpu)")
else:
    try:
        import cupy
        n = cupy.cuda.runtime.getDeviceCount()
        put("CUPY_WHY", "" if n else "CuPy sees no CUDA device")
        put("CUPY_VER", f"cupy {cupy.__version__}, {n} device(s)")
    except Exception as exc:
        put("CUPY_WHY", f"CuPy unusable ({first(exc)})")
try:
    import torch
    ok = cpu or torch.cuda.is_available()
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
    say "   device $DEV; cupy: ${CUPY_WHY:-sees a CUDA GPU}; torch: ${TORCH_WHY:-usable}"
fi
GPU_WHY=""
[ -n "$CUPY_WHY" ] && [ -n "$TORCH_WHY" ] && GPU_WHY="no CUDA GPU usable: $CUPY_WHY; $TORCH_WHY"
skipped() { say "== $1: skipped: $GPU_WHY"; }

section backends summary.txt - $PY -m xpnet backends

if [ -n "$GPU_WHY" ]; then
    for name in $LATER; do
        skipped $name
    done
    say "done in $SECONDS s; files: $(ls "$OUT" | tr '\n' ' ')"
    exit 0
fi

if [ "$MODE" = gpt ]; then  # the GPT's GPU recipe, a few hundred steps on each GPU backend (docs/gpt.md)
    TEXT=${XPNET_GPU_DATA:-.data}
    [ -f "$TEXT/tinyshakespeare/input.txt" ] || TEXT=../shared/data
    for BK in cupy torch; do
        if [ "$BK" = cupy ]; then WHY=$CUPY_WHY; else WHY=$TORCH_WHY; fi
        if [ -n "$WHY" ]; then say "== gpt-$BK: skipped: $WHY"; continue; fi
        [ -z "$DRY" ] && echo "### xpnet train --preset gpt-shakespeare --backend $BK --device $DEV --steps 300" \
            >> "$OUT/gpt.txt"
        if section "gpt-$BK" gpt.txt - $PY -m xpnet train --preset gpt-shakespeare --backend $BK --device "$DEV" \
                --steps 300 --eval-every 100 --eval-batches 20 --data-dir "$TEXT" --offline --json; then
            grep -E '^step |^validation loss' "$OUT/gpt.txt" | tail -n 4 | sed 's/^/   | /' | tee -a "$LOG"
        fi
    done
    say "done in $SECONDS s; files: $(ls "$OUT" | tr '\n' ' ')"
    exit 0
fi

if [ "$MODE" = precision ]; then  # mixed precision against float32 on each GPU backend (docs/precision.md)
    MP=""
    [ -z "$CUPY_WHY" ] && MP="cupy,"
    [ -z "$TORCH_WHY" ] && MP="${MP}torch,"
    MP="${MP}jax"  # a JAX without a GPU says so in its row
    for part in parity speed; do
        [ -z "$DRY" ] && echo "### precision-$part: $MP on $DEV" >> "$OUT/precision.txt"
        if section "precision-$part" precision.txt - $PY benchmarks/precision_check.py $part --backends "$MP" \
                --device "$DEV"; then
            grep -E "^$part " "$OUT/precision.txt" | cut -c 1-220 | sed 's/^/   | /' | tee -a "$LOG"
        fi
    done
    say "done in $SECONDS s; files: $(ls "$OUT" | tr '\n' ' ')"
    exit 0
fi

# compiled steps first: torch.compile's first compilation (Inductor, Triton) is the slowest thing here, and
# whether a compiled step trains like the eager one on this GPU is what the later benchmark rows rest on
SMOKE=""
[ -z "$TORCH_WHY" ] && SMOKE="torch"
SMOKE="${SMOKE:+$SMOKE,}jax"
export DEV SMOKE
if section compiled-smoke compiled_smoke.txt - $PY - <<'EOF'; then
import json, os, time
import xpnet
from xpnet.backend._torch import TorchBackend
TorchBackend.compile_mode = "reduce-overhead" if os.environ["DEV"] != "cpu" else "default"  # CUDA graphs on a GPU
t0 = time.perf_counter()
report = xpnet.parity(backends=os.environ["SMOKE"].split(","), dtypes=["float32"], steps=8, device=os.environ["DEV"],
                      compile=True)
for r in report["results"]:
    why = r.get("skipped") or (r.get("error") or {}).get("message") or ""
    print(f"{r['label']} {r['device']} {r['dtype']}: lockstep {r['max_rel_diff']} (tolerance {r['tolerance']}), "
          f"free-running {r['free_max_rel_diff']}, "
          f"{ {True: 'passed', False: 'FAILED', None: 'skipped'}[r['passed']]} {why}", flush=True)
print(f"compiled smoke: {'passed' if report['passed'] else 'FAILED'} in {time.perf_counter() - t0:.1f} s "
      f"(torch.compile mode {TorchBackend.compile_mode})")
print(json.dumps(report))
EOF
    { grep -E '^(torch|jax|compiled smoke)' "$OUT/compiled_smoke.txt" || tail -n 3 "$OUT/compiled_smoke.txt"; } \
        | cut -c 1-200 | sed 's/^/   | /' | tee -a "$LOG"
fi

if section gpu-tests gpu_tests.txt - $PY -m pytest -v -m gpu -p no:cacheprovider tests/test_gpu_paths.py \
        tests/test_gradcheck.py tests/test_training.py tests/test_checkpoint.py tests/test_backend.py \
        tests/test_layers_api.py tests/test_conv.py tests/test_prefetch.py; then
    say "   so far: $(grep -c ' PASSED' "$OUT/gpu_tests.txt") passed, $(grep -c ' FAILED' "$OUT/gpu_tests.txt") failed," \
        "$(grep -c ' SKIPPED' "$OUT/gpu_tests.txt") skipped, $(grep -c ' ERROR' "$OUT/gpu_tests.txt") errors" \
        "| $(tail -n 1 "$OUT/gpu_tests.txt")"
    grep -E ' (FAILED|ERROR)' "$OUT/gpu_tests.txt" | head -n 10 | sed 's/^/   | /' | tee -a "$LOG"
fi

PAR=numpy
[ -z "$CUPY_WHY" ] && PAR="$PAR,cupy"
[ -z "$TORCH_WHY" ] && PAR="$PAR,torch"
parity_both() {  # the MLP's parity JSON document, then the small CNN's, one after the other on stdout
    $PY -m xpnet parity --backends "$PAR" --device "$DEV" --dtype float64,float32 --steps 100 --json
    $PY -m xpnet parity --model cnn --backends "$PAR" --device "$DEV" --dtype float64,float32 --steps 30 --json
}
export -f parity_both; export PY PAR  # `timeout` runs commands, not functions: it runs bash -c parity_both
if section parity parity.json parity.stderr.txt bash -c parity_both; then
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
    tail -n 2 "$OUT/parity.stderr.txt" | sed 's/^/   | /' | sed 's/^   | /   | stderr: /' | tee -a "$LOG"
fi

FW=""
[ -z "$CUPY_WHY" ] && FW="${FW}xpnet-cupy,"
[ -z "$TORCH_WHY" ] && FW="${FW}xpnet-torch,torch,"
CASES=E,B,A
[ "$DEV" = cpu ] && CASES=B,A  # case E (4096-wide layers, batch 4096) is a GPU case
if section benchmarks bench.txt - $PY benchmarks/run.py --device "$DEV" --cases $CASES --dtypes float32 \
        --frameworks "${FW}xpnet-numpy" --repeats 1 --epochs 2 --timeout 30 --data-dir "$DATA" \
        --json "$OUT/bench.jsonl" --markdown "$OUT/bench.md"; then
    grep -E '^- status|^\| [A-E] ' "$OUT/bench.md" 2>/dev/null | cut -c 1-160 | sed 's/^/   | /' | tee -a "$LOG"
fi

# later benchmark sections: their own runs (their own cases and frameworks), JSON lines and tables appended to
# bench.jsonl and bench.md afterwards (the device tool returns 8 files at most)
bench_appended() {  # bench_appended NAME RUN.PY-ARGUMENTS...
    local name=$1 tmp; shift
    tmp=$(mktemp -d)
    [ -z "$DRY" ] && echo "### $name" >> "$OUT/bench.txt"
    if section "$name" bench.txt - $PY benchmarks/run.py --device "$DEV" --data-dir "$DATA" \
            --json "$tmp/bench.jsonl" --markdown "$tmp/bench.md" "$@"; then
        cat "$tmp/bench.jsonl" >> "$OUT/bench.jsonl" 2>/dev/null
        { echo; echo "# $name (appended)"; echo; cat "$tmp/bench.md"; } >> "$OUT/bench.md" 2>/dev/null
        grep -E '^- status|^\| [A-F] ' "$tmp/bench.md" 2>/dev/null | cut -c 1-190 | sed 's/^/   | /' | tee -a "$LOG"
    fi
    rm -rf "$tmp"
}

# case F, LeNet-5: xpnet's convolutions (im2col GEMMs from standard operations on CuPy; torch's native kernels,
# cuDNN, on xpnet-torch: issue 37) against cuDNN's
[ -n "$FW" ] && bench_appended bench-cnn --cases F --dtypes float32 --frameworks "${FW%,}" --repeats 2 --epochs 1 \
    --timeout 18

# compiled steps: torch.compile in a section of its own (its cold compile must not be cut by the JAX rows'),
# CUDA graphs on a GPU; then the JAX rows
if [ -z "$TORCH_WHY" ]; then
    MODE=reduce-overhead
    [ "$DEV" = cpu ] && MODE=default  # CUDA graphs need a GPU
    bench_appended bench-torch-compile --cases B --dtypes float32 --frameworks xpnet-torch-compile \
        --torch-compile-mode $MODE --repeats 1 --epochs 2 --timeout 32
fi
bench_appended bench-jax-jit --cases B --dtypes float32 --frameworks xpnet-jax-jit,jax-jit --repeats 1 --epochs 2 \
    --timeout 10

# prefetch (issue 34): the data wait of a step on a dataset with slow reads, prefetch 0 against 2; torch first (its
# pinned memory and non_blocking copy on a stream of its own), else CuPy (a copy stream of its own)
if [ -z "$TORCH_WHY" ]; then PBK=torch; else PBK=cupy; fi
[ -z "$DRY" ] && echo "### benchmarks/prefetch.py --backend $PBK --device $DEV" >> "$OUT/bench.txt"
if section prefetch bench.txt - $PY benchmarks/prefetch.py --backend $PBK --device "$DEV" --hidden 4096 \
        --batch-size 1024 --read-ms 2 --decode sleep --steps 30 --repeats 2 --prefetch 0,2; then
    sed -n '/^### benchmarks\/prefetch.py/,$p' "$OUT/bench.txt" | grep -E '^\| [0-9]|^# a read' | sed 's/^/   | /' \
        | tee -a "$LOG"
fi

if [ -z "$CUPY_WHY" ]; then BK=cupy; else BK=torch; fi
[ -z "$DRY" ] && echo "### xpnet train --preset book2015 --backend $BK --device $DEV --dtype float32 --epochs 30" \
    >> "$OUT/bench.txt"
if section "book2015:$BK-float32" bench.txt - $PY -m xpnet train --preset book2015 --backend $BK \
        --device "$DEV" --dtype float32 --epochs 30 --data-dir "$DATA" --json; then
    $PY - "$OUT/bench.txt" <<'EOF' 2>&1 | sed 's/^/   | /' | tee -a "$LOG"
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
say "done in $SECONDS s; files: $(ls "$OUT" | tr '\n' ' ')"
exit 0
