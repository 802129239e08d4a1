"""`xpnet train` on a text dataset (--dataset tinyshakespeare): a character-level language model trained by steps.

The text is read (xpnet.data.text: checked by SHA-256, downloaded once when missing), its characters are the
vocabulary (saved with the model as its outputs' names), the first 90 % trains and the last 10 % validates.
Each step draws `batch_size` random blocks of the context length (RandomBatches over TextBlocks: the stream of
`xpnet.data.text.block_offsets`); every --eval-every steps the validation loss is estimated on --eval-batches
minibatches of random validation blocks (their own stream); at the end the loss over the whole validation split
in non-overlapping blocks. Checkpoints (--checkpoint: every --eval-every steps and at the end) resume exactly.

train.py hands its own resolve_config and check_resume_flags in (`run_text_train`), so this module imports none
of it.
"""
from __future__ import annotations

import signal
import sys
import time

from ..errors import InputError, TrainingInterrupted
from ..models.presets import model_spec
from ..training.callbacks import Callback, ModelCheckpoint

INTERRUPTED = "xpnet-interrupted.safetensors"


class _StepLog(Callback):
    """Prints each periodic evaluation: the step, the mean training loss since the last one, the validation
    estimate, the rate and the seconds per step."""

    def __init__(self, quiet: bool):
        self.quiet, self.t0, self.last = quiet, None, 0

    def on_train_begin(self, logs=None):
        self.t0 = time.perf_counter()

    def on_batch_end(self, batch, logs=None):
        row = (logs or {}).get("evaluation")
        if row is None or self.quiet:
            return
        now = time.perf_counter()
        per = (now - self.t0) / max(1, row["step"] - self.last)
        self.t0, self.last = now, row["step"]
        print(f"step {row['step']}: train loss {row['loss']:.4f}, val loss {row['val_loss']:.4f}, lr {row['lr']:.2e}, "
              f"{per * 1000:.1f} ms/step", flush=True)


def _setting(args, cfg: dict, key: str, saved: dict | None):
    """A run option (steps, eval_every, eval_batches): the flag, else the resumed run's, else the preset's."""
    value = getattr(args, key, None)
    if value is None and saved:
        value = saved.get(key)
    return cfg.get(key) if value is None else value


def run_text_train(args, resolve_config, check_resume_flags, build_model) -> dict:
    """Train a language model on the text dataset of the resolved settings (see the module's docstring);
    returns what --json prints: the final validation loss over the whole split, the last estimate, seconds
    per step."""
    from ..data.text import CharVocab, TextBlocks, default_steps_per_epoch, load_text, split_ids
    from ..training.sources import RandomBatches
    started = time.perf_counter()
    saved_model, saved = _resumed(args, check_resume_flags)
    cfg = resolve_config(args, saved or None)
    if saved_model is None and cfg.get("block") is None and not cfg.get("model_file"):
        raise InputError(f"--dataset {cfg['dataset']} trains a language model: give a GPT preset (--preset "
                         f"gpt-shakespeare-cpu) or --model FILE.json (a GPT config)")
    steps = _setting(args, cfg, "steps", saved)
    eval_every = _setting(args, cfg, "eval_every", saved)
    eval_batches = _setting(args, cfg, "eval_batches", saved)
    if steps is None:
        raise InputError("a text run trains by steps: give --steps N")
    data_dir = getattr(args, "data_dir", None) or saved.get("data_dir")
    text = load_text(cfg["dataset"], data_dir, download=not args.offline)
    vocab = CharVocab.from_text(text)
    train, val = split_ids(vocab.encode(text), 0.9)
    model = _text_model(args, cfg, saved_model, vocab, build_model)
    block = int(model.input_shape[0])
    batch = cfg.get("batch_size") or 12
    blocks, val_blocks = TextBlocks(train, block), TextBlocks(val, block)
    source = RandomBatches(batch, seed=cfg["seed"], steps_per_epoch=default_steps_per_epoch(len(blocks), batch, block))
    cli_cfg = dict(cfg, steps=steps, eval_every=eval_every, eval_batches=eval_batches, block=block,
                   batch_size=batch, inputs="text", **({"data_dir": str(data_dir)} if data_dir else {}))
    checkpointer = ModelCheckpoint(args.checkpoint, {"cli": cli_cfg}, every_steps=eval_every)
    callbacks = [checkpointer, _StepLog(args.quiet)]
    if not args.quiet:
        what = "resuming" if saved_model is not None else "training"
        print(f"{what} on {cfg['dataset']}: {len(train):,} training and {len(val):,} validation characters, "
              f"vocabulary {len(vocab)}, context {block}, batch {batch}, {steps} steps; {model.bk.name} on "
              f"{model.bk.device}, {model.dtype_name}", flush=True)
        model.summary()
    done = len(model.state.batch_losses) + model.state.batch if saved_model is not None else 0
    t0 = time.perf_counter()
    _fit(args, model, blocks, val_blocks, source, steps, eval_every, eval_batches, saved_model is not None,
         callbacks, checkpointer)
    seconds = time.perf_counter() - t0
    if args.checkpoint:
        checkpointer.save(args.checkpoint, model)
    return _text_result(args, model, val, block, batch, steps, seconds / max(1, steps - done), seconds, started)


def _resumed(args, check_resume_flags) -> tuple:
    """(the model of --resume, the `xpnet train` settings saved with it), or (None, {}) for a new run; a
    checkpoint that `xpnet train` did not write, or flags that contradict its settings, refused in one line."""
    from ..saving.checkpoint import load
    if not args.resume:
        return None, {}
    saved_model = load(args.resume, backend=args.backend, device=args.device, compile=args.compile)
    saved = saved_model.checkpoint_meta_.get("cli") or {}
    if not saved:
        raise InputError(f"{args.resume} was not written by `xpnet train`; resume it from Python with "
                         f"xpnet.load(path).fit(blocks, None, source=..., resume=True)")
    check_resume_flags(args, saved)
    return saved_model, saved


def _text_model(args, cfg: dict, saved_model, vocab, build_model):
    """The language model to train: the resumed one (refused in one line when it was trained on another
    vocabulary) or a new one from cfg's GPT settings, its outputs named by the vocabulary's characters;
    --no-native-kernels applied; refused when its outputs are not one per character."""
    from ..models.gpt import vocabulary
    if saved_model is not None:
        held = vocabulary(saved_model)
        if held is None or held.chars != vocab.chars:
            raise InputError(f"{args.resume} was trained on another vocabulary than {cfg['dataset']} gives now; "
                             f"resume with the same text")
        model = saved_model
    else:
        spec = model_spec(None, len(vocab), cfg)
        model = build_model(spec, args.backend, args.device, **({"compile": True} if args.compile else {}))
        model.class_names_ = list(vocab.chars)
    if getattr(args, "no_native_kernels", False):
        model.native_kernels = False
    if model.n_outputs != len(vocab):
        raise InputError(f"the model has {model.n_outputs} outputs but {cfg['dataset']} has {len(vocab)} characters; "
                         f"make its vocabulary {len(vocab)}")
    return model


def _text_result(args, model, val, block: int, batch: int, steps: int, per_step: float, seconds: float,
                 started: float) -> dict:
    """What --json prints after a text run (and, unless --quiet, the final line): the validation loss over the
    whole split val (token ids) in non-overlapping blocks of `block`, the last estimate, the last training loss,
    seconds per step (per_step) and of training (seconds), the total since `started`."""
    from ..data.text import TextBlocks
    from ..training.loop import evaluate
    # the whole split in non-overlapping blocks, ~16k tokens a batch (the attention weights of a batch then
    # hold 16k·heads·block values: 100 MB in float32 for the GPU recipe)
    final_loss, _ = evaluate(model, TextBlocks(val, block, stride=block), None, batch_size=max(batch, 16384 // block))
    history = model.state.step_history
    result = {"backend": model.bk.name, "device": model.bk.device, "dtype": model.dtype_name,
              "precision": None if model.precision is None else model.precision.name, "steps": steps,
              "seconds": seconds, "seconds_per_step": per_step,
              "final_train_loss": _last_loss(model),
              "val_loss_estimate": history["val_loss"][-1] if history["val_loss"] else None,
              "val_loss": final_loss, "checkpoint": str(args.checkpoint) if args.checkpoint else None,
              "total_seconds": time.perf_counter() - started}
    if not args.quiet:
        print(f"validation loss {final_loss:.4f} over the whole validation split ({len(val) // block} blocks of "
              f"{block}); {result['seconds_per_step'] * 1000:.1f} ms/step, {seconds:.1f} s training", flush=True)
    return result


def _last_loss(model):
    """The last update's training loss (a run ended by steps keeps its epoch's losses as device scalars)."""
    st = model.state
    if st.partial_losses:
        return float(model.bk.to_numpy(st.partial_losses[-1]))
    return st.batch_losses[-1] if st.batch_losses else None


def _fit(args, model, blocks, val_blocks, source, steps, eval_every, eval_batches, resume, callbacks,
         checkpointer) -> None:
    """model.fit by steps with SIGINT/SIGTERM caught: the run stops after the current step, its state is saved
    (to --checkpoint or INTERRUPTED) and the command exits 130 or 143."""
    received = []

    def on_signal(signum, frame):
        received.append(signum)
        model.state.stop_requested = True

    old = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        model.fit(blocks, None, steps=steps, source=source, validation_data=val_blocks, eval_every=eval_every,
                  eval_batches=eval_batches, resume=resume, callbacks=callbacks,
                  prefetch=getattr(args, "prefetch", None) or 0)
    except TrainingInterrupted as stopped:
        path = args.checkpoint or INTERRUPTED
        checkpointer.save(path, model)
        signum = received[-1] if received else signal.SIGINT
        print(f"\nxpnet train: stopped; saved the state {stopped.where} to {path}; resume with the same command "
              f"and --resume {path}", file=sys.stderr)
        raise SystemExit(143 if signum == signal.SIGTERM else 130) from None
    finally:
        for s, h in old.items():
            signal.signal(s, h)
