"""classification_report, top_k_accuracy and `xpnet evaluate --report` on a sequence model's (samples, time)
targets and (samples, time, vocab) logits: every position counts once, as the loop's accuracy counts them."""
import json

import numpy as np
import pytest

from fakes import run_cli
from xpnet.errors import InputError
from xpnet.metrics import classification_report, confusion_matrix, top_k_accuracy
from xpnet.tools.parity import sequence_problem, transformer_model


def test_report_counts_every_position():
    rng = np.random.default_rng(0)
    t, p = rng.integers(0, 5, (7, 4)), rng.integers(0, 5, (7, 4))
    assert np.array_equal(confusion_matrix(t, p, 5), confusion_matrix(t.ravel(), p.ravel(), 5))
    report = classification_report(t, p, 5)
    assert report == classification_report(t.ravel(), p.ravel(), 5)
    assert report["macro avg"]["support"] == 28 and report["accuracy"] == pytest.approx((t == p).mean())
    scores = rng.standard_normal((7, 4, 5))
    assert top_k_accuracy(t, scores, 2) == top_k_accuracy(t.ravel(), scores.reshape(-1, 5), 2)
    with pytest.raises(InputError, match=r"same shape, got \(7, 4\) and \(28,\)"):
        confusion_matrix(t, p.ravel())
    with pytest.raises(InputError, match=r"scores must be .* = \(7, 4, classes\)"):
        top_k_accuracy(t, scores[:, 0])


def test_evaluate_report_on_a_sequence_model(tmp_path):
    """`xpnet evaluate --report --top-k 2` on a transformer checkpoint and an .npz of (samples, time) token ids
    and next-token targets: its accuracy and report are over every position."""
    X, y = sequence_problem(n=24)
    model = transformer_model("numpy", "float64").fit(X, y, epochs=2, batch_size=8, shuffle=False)
    model.save(tmp_path / "lm.safetensors")
    np.savez(tmp_path / "tokens.npz", X=X, y=y)
    rc, out, err = run_cli("evaluate", "--checkpoint", tmp_path / "lm.safetensors", "--dataset",
                           tmp_path / "tokens.npz", "--report", "--top-k", "2", "--json", "--quiet")
    assert rc == 0, err
    ev = json.loads(out)
    pred = model.predict(X)
    assert ev["n"] == 24 and ev["positions"] == 144
    assert ev["accuracy"] == pytest.approx(float((pred == y).mean()), abs=1e-12)
    assert np.asarray(ev["confusion_matrix"]).sum() == 144
    want = classification_report(y, pred, 11)
    assert ev["report"]["accuracy"] == pytest.approx(want["accuracy"]) == pytest.approx(ev["accuracy"])
    assert ev["report"]["macro avg"] == pytest.approx(want["macro avg"])
    z, _ = model.forward(X)
    assert ev["report"]["top_2_accuracy"] == pytest.approx(top_k_accuracy(y, np.asarray(z), 2))
