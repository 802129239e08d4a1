"""Text for character-level language models: Tiny Shakespeare (found locally or downloaded once, SHA-256
checked), a character vocabulary saved with the model, the 90/10 split, `TextBlocks` (a map-style dataset of
context-length blocks, xpnet.training.sources' dataset protocol) and the offsets of each training step.

    text = load_text("tinyshakespeare")               # str, 1,115,394 characters
    vocab = CharVocab.from_text(text)                  # 65 characters, sorted (nanoGPT's stoi/itos)
    train, val = split_ids(vocab.encode(text), 0.9)    # int64 ids: the first 90 % and the last 10 %
    ds = TextBlocks(train, block=64)                   # row i: ids[i:i+64], target ids[i+1:i+65]

The batch stream (what `xpnet.training.RandomBatches` draws and `block_offsets` gives): step i (0-based) of a run
trains on the blocks at offsets `block_offsets(i, seed=, n_blocks=len(ds), batch=)` of the training split, `batch`
offsets drawn with replacement in [0, n_blocks) (nanoGPT's get_batch: [0, len(train) - block)), from a
NumPy generator made for the step's epoch from (seed, epoch) alone, so the stream is the same on every
backend, does not depend on the model, is not changed by evaluation, and is a pure function of the step.
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np

from ..errors import DataError, InputError
from ..training.sources import EVAL_STREAM, TRAIN_STREAM, epoch_rows, eval_rows, step_rows  # noqa: F401

#: the text datasets `load_text` knows: file name in its folder, SHA-256, URL, characters
TEXT_DATASETS = {
    "tinyshakespeare": {
        "file": "input.txt",
        "sha256": "86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed",
        "url": "https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/input.txt",
        "characters": 1_115_394,
    },
}


def is_text_dataset(name) -> bool:
    """Whether `name` is a text dataset `load_text` knows (a character-level language-model run)."""
    return isinstance(name, str) and name in TEXT_DATASETS


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def text_path(name: str, data_dir=None, download: bool = True) -> Path:
    """The checked file of text dataset `name`: in data_dir (default $XPNET_DATA or the cache), directly or in
    data_dir/<name>/; else downloaded once into data_dir/<name>/ (download=True). A file whose SHA-256 differs
    is refused in one line (a wrong or damaged file is never trained on)."""
    from .datasets import _fetch, _NetworkError, default_data_dir
    if not is_text_dataset(name):
        raise InputError(f"unknown text dataset {name!r}; choose one of: {', '.join(TEXT_DATASETS)}")
    info = TEXT_DATASETS[name]
    folder = Path(data_dir).expanduser() if data_dir is not None else default_data_dir()
    for candidate in (folder / name / info["file"], folder / info["file"]):
        if candidate.is_file():
            actual = _sha256(candidate)
            if actual != info["sha256"]:
                raise DataError(f"{candidate}: not the {name} file (SHA-256 {actual[:16]}..., expected "
                                f"{info['sha256'][:16]}...); remove it, or point --data-dir at the right copy "
                                f"({info['url']})")
            return candidate
    if not download:
        raise DataError(f"{name}: no {info['file']} in {folder / name} or {folder}; get it from {info['url']} "
                        f"(or pass --data-dir FOLDER / set XPNET_DATA), or allow the download")
    target = folder / name
    try:
        target.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DataError(f"cannot create {target} ({exc.strerror or exc}); pass --data-dir or set XPNET_DATA "
                        f"to a writable folder") from None
    try:
        tmp, actual = _fetch(info["url"], target, info["file"], 60)
    except _NetworkError as exc:
        raise DataError(f"{name}: could not download it ({exc}); put {info['file']} in {target} or pass "
                        f"--data-dir FOLDER") from None
    if actual != info["sha256"]:
        os.unlink(tmp)
        raise DataError(f"{name}: the download from {info['url']} has the wrong SHA-256 {actual[:16]}... (expected "
                        f"{info['sha256'][:16]}...); nothing was saved")
    final = target / info["file"]
    os.replace(tmp, final)
    return final


def load_text(name: str, data_dir=None, download: bool = True) -> str:
    """The text of dataset `name` (see `text_path`), decoded as UTF-8."""
    return text_path(name, data_dir, download).read_text(encoding="utf-8")


class CharVocab:
    """A character vocabulary: the sorted distinct characters of a text, id i the i-th (nanoGPT's stoi/itos).
    Saved with a model as its `chars` string (`to_config`/`from_config`)."""

    def __init__(self, chars: str):
        if not isinstance(chars, str) or not chars or len(set(chars)) != len(chars):
            raise InputError(f"CharVocab takes a string of distinct characters, got {chars!r:.40}")
        self.chars = chars
        self._stoi = {c: i for i, c in enumerate(chars)}
        self._table = None

    @classmethod
    def from_text(cls, text: str) -> "CharVocab":
        return cls("".join(sorted(set(text))))

    def __len__(self) -> int:
        return len(self.chars)

    def encode(self, text: str) -> np.ndarray:
        """int64 ids (len(text),); a character outside the vocabulary refused in one line."""
        unknown = sorted(set(text) - set(self._stoi))
        if unknown:
            shown = ", ".join(repr(c) for c in unknown[:5])
            raise InputError(f"the text holds {len(unknown)} character(s) outside the model's vocabulary of "
                             f"{len(self.chars)} ({shown}); use only characters of its training text")
        if self._table is None:
            self._table = np.full(max(map(ord, self.chars)) + 1, -1, dtype=np.int64)
            self._table[[ord(c) for c in self.chars]] = np.arange(len(self.chars))
        codes = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32).astype(np.int64)
        return self._table[codes] if len(codes) else np.zeros(0, dtype=np.int64)

    def decode(self, ids) -> str:
        return "".join(self.chars[int(i)] for i in np.asarray(ids).reshape(-1))

    def to_config(self) -> dict:
        return {"chars": self.chars}

    @classmethod
    def from_config(cls, config: dict) -> "CharVocab":
        return cls(config["chars"])


def split_ids(ids, train_fraction: float = 0.9) -> tuple[np.ndarray, np.ndarray]:
    """(the first int(n * train_fraction) ids, the rest): nanoGPT's prepare.py split."""
    ids = np.asarray(ids)
    n = int(len(ids) * train_fraction)
    return ids[:n], ids[n:]


class TextBlocks:
    """A map-style dataset of context-length blocks of token ids (xpnet.training.sources' dataset protocol):
    row i is ids[i·stride : i·stride + block] with target ids[i·stride + 1 : i·stride + block + 1].

    stride 1 (default): every offset in [0, len(ids) - block), the rows nanoGPT's get_batch draws from;
    stride=block: non-overlapping blocks (the final validation figure over the whole split). Nothing is
    materialized: `__getitems__(indices)` reads a batch of rows as host int64 (rows, block) arrays."""

    def __init__(self, ids, block: int, stride: int = 1):
        ids = np.ascontiguousarray(np.asarray(ids), dtype=np.int64)
        if ids.ndim != 1:
            raise InputError(f"TextBlocks takes a 1-D array of token ids, got shape {ids.shape}")
        for what, v in (("block", block), ("stride", stride)):
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
                raise InputError(f"TextBlocks' {what} is a positive whole number, got {v!r}")
        if len(ids) <= block:
            raise InputError(f"TextBlocks needs more than block={block} ids to make one block with its targets, "
                             f"got {len(ids)}; use a longer text or a shorter context")
        self.ids, self.block, self.stride = ids, int(block), int(stride)
        self.n = (len(ids) - block - 1) // self.stride + 1 if self.stride > 1 else len(ids) - block
        self._window = np.arange(self.block)

    def __len__(self) -> int:
        return self.n

    def __getitems__(self, indices) -> tuple[np.ndarray, np.ndarray]:
        """(x, y): host int64 arrays (len(indices), block): the blocks at rows `indices` and their next tokens."""
        starts = np.asarray(indices, dtype=np.int64).reshape(-1, 1) * self.stride
        rows = starts + self._window
        return self.ids[rows], self.ids[rows + 1]

    def __repr__(self) -> str:
        return f"TextBlocks({len(self.ids)} ids, block={self.block}, stride={self.stride})"


def default_steps_per_epoch(n_blocks: int, batch: int, block: int) -> int:
    """The epoch of a text run (RandomBatches' steps_per_epoch as `xpnet train` sets it): as many steps as it
    takes to draw the split's tokens once, ceil(n_blocks / (batch·block)) (1308 for Tiny Shakespeare at
    batch 12, context 64)."""
    return max(1, -(-n_blocks // (batch * block)))


def block_offsets(step: int, *, seed: int, n_blocks: int, batch: int, block: int,
                  steps_per_epoch: int | None = None) -> np.ndarray:
    """The offsets (batch,) int64 of training step `step` (0-based) of a text run: the rows of
    TextBlocks(train, block) that fit trains on at that step (x = train[o:o+block], y = train[o+1:o+block+1]
    for each offset o), exactly as `xpnet train --dataset tinyshakespeare --seed S` and
    `fit(source=RandomBatches(batch, seed=S, steps_per_epoch=default_steps_per_epoch(n_blocks, batch, block)))`
    draw them. n_blocks: len(TextBlocks(train, block)) = len(train) - block; steps_per_epoch: default
    `default_steps_per_epoch`."""
    spe = default_steps_per_epoch(n_blocks, batch, block) if steps_per_epoch is None else steps_per_epoch
    return step_rows(step, seed=seed, n=n_blocks, batch=batch, steps_per_epoch=spe)
