"""The character GPT on Tiny Shakespeare: xpnet's `gpt-shakespeare-cpu` beside a native PyTorch GPT of the same
shape and recipe (benchmarks/bench/gpt_torch.py, nanoGPT's model and CPU recipe), trained on the same batches.

    python benchmarks/gpt_shakespeare.py loss --frameworks torch,xpnet-numpy --seeds 1,2,3 --steps 2000
    python benchmarks/gpt_shakespeare.py time --frameworks torch,xpnet-numpy,xpnet-torch --steps 20 --rounds 5

loss: every (seed, framework) trains `--steps` updates from that seed in a process of its own, one at a time,
then scores the whole validation split in non-overlapping context-length blocks; a JSON line per run as it
finishes (framework, seed, val_loss, seconds, seconds per step).
time: one process per framework, each warmed up (`--warmup` updates; compilation happens there), then the
rounds interleaved: in each round every framework in turn runs `--steps` more updates while the others wait
(blocked on a pipe, doing nothing); per framework the median seconds per update over the rounds and its ratio
to the first framework. The batches of every framework come from xpnet's block sampler for the seed, so the
rows do the same work.

Frameworks: torch (native), xpnet-numpy, xpnet-torch, xpnet-jax, xpnet-strict, xpnet-torch-compiled,
xpnet-jax-compiled. --out FILE writes the JSON lines (under benchmarks/results/DATE-NAME/ it records the run in
that folder's manifest.json).
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(1, str(ROOT / "benchmarks"))

from bench.results import Rows  # noqa: E402

FRAMEWORKS = ("torch", "xpnet-numpy", "xpnet-torch", "xpnet-jax", "xpnet-strict", "xpnet-torch-compiled",
              "xpnet-jax-compiled")
DATA = ROOT.parent / "shared" / "data"
PRESET = "gpt-shakespeare-cpu"


# ---------------------------------------------------------------------------------------------- the workers
class TorchRun:
    """The native PyTorch GPT of the preset's shape and recipe on xpnet's batches for the seed."""

    def __init__(self, seed: int, steps_total: int):
        import torch
        from bench import gpt_torch
        torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS") or os.cpu_count()))
        self.torch, self.g = torch, gpt_torch
        self.data = blocks_for(seed)
        s = self.data.settings
        self.net = gpt_torch.build(s["vocab"], s["context"], s["layers"], s["heads"], s["dim"], seed)
        self.opt = gpt_torch.optimizer(self.net, lr=s["lr"], betas=s["betas"], weight_decay=s["weight_decay"])
        self.sched = dict(lr=s["lr"], warmup=s["warmup_steps"], decay_steps=s["decay_steps"], min_lr=s["min_lr"])
        self.clip, self.done, self.loss = s["clip_norm"], 0, None

    def run(self, k: int) -> None:
        torch = self.torch
        for _ in range(k):
            i = self.done
            for group in self.opt.param_groups:
                group["lr"] = self.g.rate(i, **self.sched)
            x, y = self.data.batch(i)
            loss = self.net(torch.from_numpy(x), torch.from_numpy(y))
            self.opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(self.net.parameters(), self.clip)
            self.opt.step()
            self.loss, self.done = loss.detach(), i + 1
        float(self.loss)  # the last update finished

    def val_loss(self) -> float:
        return self.g.mean_loss(self.net, self.data.val_blocks())


class Blocks:
    """The preset's settings and data: xpnet's text split and its batch stream for the seed (host NumPy)."""

    def __init__(self, seed: int):
        from xpnet.data.text import CharVocab, TextBlocks, load_text, split_ids
        from xpnet.models.presets import preset_settings
        s = dict(preset_settings(PRESET), seed=seed, betas=(0.9, 0.99))
        text = load_text(s["dataset"], DATA, download=False)
        self.vocab = CharVocab.from_text(text)
        s["vocab"], s["context"] = len(self.vocab), s["block"]
        self.train, self.val = split_ids(self.vocab.encode(text), 0.9)
        self.blocks = TextBlocks(self.train, s["block"])
        self.settings = s

    def batch(self, step: int):
        """(x, y) host int64 (batch, context): the blocks xpnet's fit trains on at update `step` (0-based)."""
        from xpnet.data.text import block_offsets
        s = self.settings
        rows = block_offsets(step, seed=s["seed"], n_blocks=len(self.blocks), batch=s["batch_size"], block=s["block"])
        return self.blocks.__getitems__(rows)

    def val_blocks(self, batch: int = 64):
        """The whole validation split in non-overlapping context-length blocks, `batch` blocks at a time."""
        from xpnet.data.text import TextBlocks
        vb = TextBlocks(self.val, self.settings["block"], stride=self.settings["block"])
        for i in range(0, len(vb), batch):
            yield vb.__getitems__(range(i, min(i + batch, len(vb))))


def blocks_for(seed: int) -> Blocks:
    return Blocks(seed)


class XpnetRun:
    """xpnet's gpt-shakespeare-cpu model (the preset's config) on a backend, trained by fit on the same stream."""

    def __init__(self, framework: str, seed: int, steps_total: int):
        from xpnet.data.text import TextBlocks, default_steps_per_epoch
        from xpnet.models.presets import gpt_build
        from xpnet.registry import model_from_config
        from xpnet.training import RandomBatches
        self.data = d = blocks_for(seed)
        s = d.settings
        backend = framework.split("-")[1]
        compiled = framework.endswith("-compiled")
        self.model = model_from_config(gpt_build(s["block"], s["vocab"], s), backend,
                                       **({"compile": True} if compiled else {}))
        self.source = lambda: RandomBatches(s["batch_size"], seed=seed, steps_per_epoch=default_steps_per_epoch(
            len(d.blocks), s["batch_size"], s["block"]))
        self.val_set = TextBlocks(d.val, s["block"], stride=s["block"])
        self.done = 0

    def run(self, k: int) -> None:
        self.model.fit(self.data.blocks, None, steps=self.done + k, source=self.source(),
                       resume=True if self.done else None)
        self.done += k

    def val_loss(self) -> float:
        from xpnet.training import evaluate
        return float(evaluate(self.model, self.val_set, None)[0])


def worker(framework: str, seed: int, steps_total: int) -> int:
    """The child: builds its run, says 'ready', then answers commands on stdin, a JSON line each:
    'run K' -> {"seconds": s}; 'val' -> {"val_loss": v}; 'quit'."""
    run = TorchRun(seed, steps_total) if framework == "torch" else XpnetRun(framework, seed, steps_total)
    print(json.dumps({"ready": True}), flush=True)
    for line in sys.stdin:
        cmd = line.split()
        if not cmd or cmd[0] == "quit":
            break
        if cmd[0] == "run":
            t = time.perf_counter()
            run.run(int(cmd[1]))
            print(json.dumps({"seconds": time.perf_counter() - t}), flush=True)
        elif cmd[0] == "val":
            print(json.dumps({"val_loss": run.val_loss()}), flush=True)
    return 0


class Child:
    """A worker process and its pipe."""

    def __init__(self, framework: str, seed: int, steps_total: int):
        self.framework = framework
        self.p = subprocess.Popen([sys.executable, __file__, "_worker", framework, str(seed), str(steps_total)],
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1)
        self.read()

    def read(self) -> dict:
        line = self.p.stdout.readline()
        if not line:
            raise SystemExit(f"gpt_shakespeare.py: the {self.framework} worker died (rc {self.p.wait()})")
        return json.loads(line)

    def ask(self, command: str) -> dict:
        self.p.stdin.write(command + "\n")
        self.p.stdin.flush()
        return self.read()

    def close(self) -> None:
        self.p.stdin.write("quit\n")
        self.p.stdin.close()
        self.p.wait()


# ---------------------------------------------------------------------------------------------- the modes
def loss_mode(args, rows) -> None:
    for seed in args.seeds:
        for fw in args.frameworks:
            t = time.perf_counter()
            child = Child(fw, seed, args.steps)
            build = time.perf_counter() - t
            r = child.ask(f"run {args.steps}")
            v = child.ask("val")
            child.close()
            rows.emit({"framework": fw, "seed": seed, "steps": args.steps, "val_loss": v["val_loss"],
                  "train_seconds": r["seconds"],
                  "seconds_per_step": r["seconds"] / args.steps, "setup_seconds": build})


def time_mode(args, rows) -> None:
    total = args.warmup + args.steps * args.rounds
    children = {}
    for fw in args.frameworks:
        children[fw] = Child(fw, args.seeds[0], total)
        children[fw].ask(f"run {args.warmup}")
    times = {fw: [] for fw in args.frameworks}
    for r in range(args.rounds):
        for fw in args.frameworks:
            s = children[fw].ask(f"run {args.steps}")["seconds"] / args.steps
            times[fw].append(s)
            rows.emit({"round": r + 1, "framework": fw, "seconds_per_step": s})
    for c in children.values():
        c.close()
    base = statistics.median(times[args.frameworks[0]])
    for fw in args.frameworks:
        med = statistics.median(times[fw])
        rows.emit({"framework": fw, "median_seconds_per_step": med, "min": min(times[fw]), "max": max(times[fw]),
              "rounds": args.rounds, "steps_per_round": args.steps, "warmup": args.warmup,
              f"ratio_to_{args.frameworks[0]}": med / base})


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "_worker":
        return worker(argv[1], int(argv[2]), int(argv[3]))
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("mode", choices=("loss", "time"))
    p.add_argument("--frameworks", default="torch,xpnet-numpy")
    p.add_argument("--seeds", default="1")
    p.add_argument("--steps", type=int, default=None, help="loss: updates per run (default 2000); time: updates "
                                                            "per round (default 20)")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--out", type=Path, default=None)
    args = p.parse_args(argv)
    args.frameworks = args.frameworks.split(",")
    bad = [f for f in args.frameworks if f not in FRAMEWORKS]
    if bad:
        p.error(f"unknown framework(s) {', '.join(bad)}; choose from {', '.join(FRAMEWORKS)}")
    args.seeds = [int(s) for s in args.seeds.split(",")]
    args.steps = args.steps or (2000 if args.mode == "loss" else 20)
    with Rows(args.out, root=ROOT) as rows:
        (loss_mode if args.mode == "loss" else time_mode)(args, rows)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
