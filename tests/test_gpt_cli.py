"""`xpnet train --dataset tinyshakespeare` and `xpnet generate` round trip on a tiny GPT (issue 32): train by
steps, resume exactly, generate the same text on NumPy and PyTorch."""
import json
from pathlib import Path

import numpy as np
import pytest

import xpnet
from xpnet.cli import main

from fakes import installed

DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data"
pytestmark = pytest.mark.skipif(not (DATA / "tinyshakespeare" / "input.txt").is_file(),
                                reason="../shared/data/tinyshakespeare/input.txt is not here")
TINY = ["--preset", "gpt-shakespeare-cpu", "--layers", "1", "--heads", "2", "--dim", "16", "--block", "16",
        "--batch-size", "4", "--eval-every", "2", "--eval-batches", "2", "--data-dir", str(DATA), "--offline",
        "--backend", "numpy", "--quiet", "--json"]


def _last_json(capsys) -> dict:
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def test_train_resume_and_generate_round_trip(tmp_path, capsys):
    straight, part = tmp_path / "straight.safetensors", tmp_path / "part.safetensors"
    assert main(["train", *TINY, "--steps", "6", "--checkpoint", str(straight)]) == 0
    result = _last_json(capsys)
    assert result["steps"] == 6 and 3.5 < result["val_loss"] < 4.6 and result["seconds_per_step"] > 0
    assert 3.5 < result["final_train_loss"] < 4.6 and 3.5 < result["val_loss_estimate"] < 4.6
    assert main(["train", *TINY, "--steps", "4", "--checkpoint", str(part)]) == 0
    capsys.readouterr()
    assert main(["train", *TINY, "--steps", "6", "--checkpoint", str(part), "--resume", str(part)]) == 0
    assert _last_json(capsys)["val_loss"] == result["val_loss"]
    again = tmp_path / "again.safetensors"
    assert main(["train", *TINY, "--steps", "4", "--checkpoint", str(again)]) == 0
    capsys.readouterr()
    # the preset and data given again without the run options (--steps, --eval-every, ...): they resume as saved
    assert main(["train", "--preset", "gpt-shakespeare-cpu", "--layers", "1", "--heads", "2", "--dim", "16",
                 "--block", "16", "--batch-size", "4", "--data-dir", str(DATA), "--offline", "--backend", "numpy",
                 "--quiet", "--json", "--steps", "6", "--resume", str(again), "--checkpoint", str(again)]) == 0
    assert _last_json(capsys)["val_loss"] == result["val_loss"]
    a, b = xpnet.load(straight), xpnet.load(part)
    assert all(np.array_equal(v, b.state.params[k]) for k, v in a.state.params.items())
    assert len(a.class_names_) == 65 and a.checkpoint_meta_["cli"]["steps"] == 6
    texts = []
    for backend in ["numpy"] + (["torch"] if installed("torch") else []):
        assert main(["generate", "--checkpoint", str(straight), "--prompt", "ROMEO:", "--tokens", "30", "--seed", "2",
                     "--backend", backend, "--json"]) == 0
        out = capsys.readouterr()
        texts.append(json.loads(out.out.strip().splitlines()[-1])["text"])
        assert "tokens/s with the key/value cache" in out.err and texts[-1].startswith("ROMEO:")
    assert len(texts[0]) == 36 and len(set(texts)) == 1


def test_text_runs_refuse_in_one_line(tmp_path, capsys):
    assert main(["train", "--dataset", "tinyshakespeare", "--data-dir", str(DATA), "--steps", "2"]) != 0
    assert "trains a language model: give a GPT preset" in capsys.readouterr().err
    assert main(["train", "--steps", "2", "--backend", "numpy"]) != 0
    assert "--steps train a text dataset by steps" in capsys.readouterr().err
    ck = tmp_path / "x.safetensors"
    main(["train", *TINY, "--steps", "2", "--checkpoint", str(ck)])
    capsys.readouterr()
    assert main(["generate", "--checkpoint", str(ck), "--prompt", "€", "--tokens", "3"]) != 0
    assert "outside the model's vocabulary of 65" in capsys.readouterr().err
    assert main(["generate", "--checkpoint", str(ck), "--temperature", "-1", "--tokens", "3"]) != 0
    assert "temperature must be a positive number" in capsys.readouterr().err
