"""nanoGPT's own code on its README's CPU recipe, a few seeds: how far its validation loss moves from seed to seed,
the yardstick for issue 32's "at most 1.90 after 2,000 steps (nanoGPT: 1.88)".

    git clone https://github.com/karpathy/nanoGPT /tmp/nanogpt
    python benchmarks/nanogpt_reference.py --nanogpt-dir /tmp/nanogpt --seeds 1337,1,2,3

For each seed this runs nanoGPT's unmodified `train.py` with the README's command (config/train_shakespeare_char.py,
--device=cpu --compile=False --eval_iters=20 --log_interval=1 --block_size=64 --batch_size=12 --n_layer=4
--n_head=4 --n_embd=128 --max_iters=2000 --lr_decay_iters=2000 --dropout=0.0), plus --always_save_checkpoint=True
(so the checkpoint is the step-2000 model) and an --out_dir of its own. train.py seeds with
`torch.manual_seed(1337 + seed_offset)`; a seed other than 1337 is given by wrapping `torch.manual_seed` before
train.py runs (the file itself is not edited). The data: nanoGPT's data/shakespeare_char/prepare.py on
../shared/data/tinyshakespeare/input.txt (copied into the nanoGPT checkout, where prepare.py reads it; its
vocabulary and 90/10 split are xpnet's). Per seed, one JSON line: nanoGPT's own estimate at step 2000 (the mean
of eval_iters=20 random batches of the validation split, as printed by train.py, and the train estimate beside
it), the median milliseconds per iteration it printed, and the step-2000 model scored on the whole validation
split in non-overlapping 64-character blocks (xpnet's `TextBlocks(val, 64, stride=64)`, the figure
benchmarks/gpt_shakespeare.py gives for xpnet and the native PyTorch GPT).

--out FILE writes the JSON lines (under benchmarks/results/DATE-NAME/ it records the run in that folder's
manifest.json, with nanoGPT's commit).
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(1, str(ROOT / "benchmarks"))

from bench.results import Rows  # noqa: E402

DATA = ROOT.parent / "shared" / "data"
README_CPU = ["config/train_shakespeare_char.py", "--device=cpu", "--compile=False", "--eval_iters=20",
              "--log_interval=1", "--block_size=64", "--batch_size=12", "--n_layer=4", "--n_head=4",
              "--n_embd=128", "--max_iters=2000", "--lr_decay_iters=2000", "--dropout=0.0"]

# train.py run with torch.manual_seed shifted from 1337 to the seed asked for (argv[1]); the rest of argv is train.py's
SEEDED = """import runpy, sys, torch
seed = int(sys.argv[1]); _manual_seed = torch.manual_seed
torch.manual_seed = lambda s: _manual_seed(s - 1337 + seed)
sys.argv = ["train.py"] + sys.argv[2:]
runpy.run_path("train.py", run_name="__main__")
"""

# the step-2000 checkpoint on the whole validation split: argv ckpt, xpnet root, data dir
SCORE = """import json, sys, numpy as np, torch
from model import GPT, GPTConfig
sys.path.insert(0, sys.argv[2])
from xpnet.data.text import CharVocab, TextBlocks, load_text, split_ids
ck = torch.load(sys.argv[1], map_location="cpu")
net = GPT(GPTConfig(**ck["model_args"]))
net.load_state_dict({k.removeprefix("_orig_mod."): v for k, v in ck["model"].items()})
net.eval()
text = load_text("tinyshakespeare", sys.argv[3], download=False)
val = split_ids(CharVocab.from_text(text).encode(text), 0.9)[1]
vb = TextBlocks(val, ck["model_args"]["block_size"], stride=ck["model_args"]["block_size"])
total = count = 0
with torch.no_grad():
    for i in range(0, len(vb), 64):
        x, y = vb.__getitems__(np.arange(i, min(i + 64, len(vb))))
        _, loss = net(torch.from_numpy(x), torch.from_numpy(y))
        total += float(loss) * y.size
        count += y.size
print(json.dumps({"whole_val_loss": total / count, "val_blocks": len(vb), "iter_num": ck["iter_num"]}))
"""


def prepare(nanogpt: Path) -> None:
    """nanoGPT's data/shakespeare_char/{train,val}.bin from the shared input.txt, by nanoGPT's own prepare.py."""
    folder = nanogpt / "data" / "shakespeare_char"
    if (folder / "train.bin").is_file() and (folder / "val.bin").is_file():
        return
    shutil.copyfile(DATA / "tinyshakespeare" / "input.txt", folder / "input.txt")
    subprocess.run([sys.executable, "prepare.py"], cwd=folder, check=True)


def run_seed(nanogpt: Path, work: Path, seed: int, steps: int) -> dict:
    out_dir = work / f"seed{seed}"
    out_dir.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-c", SEEDED, str(seed), *README_CPU, f"--out_dir={out_dir}",
           "--always_save_checkpoint=True"]
    if steps != 2000:  # a shorter run, to try the script (not the recipe)
        cmd += [f"--max_iters={steps}", f"--lr_decay_iters={steps}", f"--eval_interval={min(250, steps)}"]
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    log = subprocess.run(cmd, cwd=nanogpt, env=env, capture_output=True, text=True)
    (out_dir / "train.log").write_text(log.stdout + log.stderr)
    if log.returncode:
        raise SystemExit(f"nanoGPT's train.py failed for seed {seed} (rc {log.returncode}); see {out_dir}/train.log")
    evals = {int(m[1]): (float(m[2]), float(m[3]))
             for m in re.finditer(r"step (\d+): train loss ([\d.]+), val loss ([\d.]+)", log.stdout)}
    ms = [float(m[1]) for m in re.finditer(r"iter \d+: loss [\d.]+, time ([\d.]+)ms", log.stdout)]
    score = subprocess.run([sys.executable, "-c", SCORE, str(out_dir / "ckpt.pt"), str(ROOT), str(DATA)],
                           cwd=nanogpt, capture_output=True, text=True, check=True)
    last = max(evals)
    return {"framework": "nanoGPT", "seed": seed, "steps": last, "val_loss_estimate": evals[last][1],
            "train_loss_estimate": evals[last][0], "estimates": {str(k): v for k, v in sorted(evals.items())},
            **json.loads(score.stdout.strip().splitlines()[-1]),
            "median_ms_per_iter": statistics.median(ms[1:]) if len(ms) > 1 else None}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--nanogpt-dir", type=Path, required=True, help="a checkout of github.com/karpathy/nanoGPT")
    p.add_argument("--seeds", type=lambda s: [int(v) for v in s.split(",")], default=[1337, 1, 2, 3])
    p.add_argument("--steps", type=int, default=2000, help="the README's 2000; fewer only to try the script")
    p.add_argument("--work", type=Path, default=Path("/tmp/nanogpt-runs"), help="checkpoints and logs")
    p.add_argument("--out", type=Path, default=None)
    args = p.parse_args(argv)
    nanogpt = args.nanogpt_dir.resolve()
    commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=nanogpt, capture_output=True, text=True).stdout.strip()
    prepare(nanogpt)
    with Rows(args.out, root=ROOT, mode="w", nanogpt_commit=commit) as rows:
        for seed in args.seeds:
            rows.emit(dict(run_seed(nanogpt, args.work, seed, args.steps), nanogpt_commit=commit))
    return 0


if __name__ == "__main__":
    sys.exit(main())
