"""`xpnet parity --precision` (xpnet.tools.parity.mixed_parity): a mixed-precision run against the float32 run of
the same seed on the same backend, matmuls pinned to full float32 precision on both sides; and a deliberately broken
mixed run (loss scaling without the unscaling) fails it."""
import json

import numpy as np
import pytest

from xpnet.backend import Backend
from xpnet.cli import main
from xpnet.precision import LossScale
from xpnet.tools.parity import MIXED_FREE_TOLERANCES, MIXED_TOLERANCES, mixed_parity

from fakes import installed


# numpy has float16 only (its bfloat16 would come through ml_dtypes, which the policy does not offer)
BACKENDS = {"fp16-mixed": [b for b in ("numpy", "torch", "jax") if installed(b)],
            "bf16-mixed": [b for b in ("torch", "jax") if installed(b)]}


@pytest.mark.parametrize("precision", ["bf16-mixed", "fp16-mixed"])
def test_mixed_parity_passes_on_each_backend(precision):
    """12 steps of the MLP: the lockstep medians within MIXED_TOLERANCES (measured over 100 steps: gradients 1.5e-2
    bf16, 7e-4 to 8e-4 fp16), the last free-running loss within MIXED_FREE_TOLERANCES, no step skipped."""
    if not BACKENDS[precision]:
        pytest.skip("no backend with the type installed")
    report = mixed_parity(precision, backends=BACKENDS[precision], steps=12)
    assert report["passed"], report
    assert [r["backend"] for r in report["results"]] == BACKENDS[precision]
    for r in report["results"]:
        assert r["compute"] == {"bf16-mixed": "bfloat16", "fp16-mixed": "float16"}[precision]
        assert 0 < r["grad_rel"] <= MIXED_TOLERANCES[precision] and r["update_rel"] <= MIXED_TOLERANCES[precision]
        assert r["free_final_rel"] <= MIXED_FREE_TOLERANCES[precision]
        assert r["lockstep_skipped"] == r["free_skipped"] == 0
        assert (r["loss_scale"] is None) == (precision == "bf16-mixed")


def test_skipping_the_unscaling_fails_the_check(monkeypatch):
    """A broken fp16-mixed run: the gradients left multiplied by the loss scale (2**15). The check must fail, in
    lockstep (the gradients 2**15 too large) and free-running (a loss far from float32's)."""
    monkeypatch.setattr(LossScale, "unscale", staticmethod(lambda grads, scale: grads))
    report = mixed_parity("fp16-mixed", backends=["numpy"], steps=10)
    r = report["results"][0]
    assert not report["passed"] and not r["passed"], r
    assert r["grad_rel"] > 1e3, r


def test_cli_json_and_text(capsys):
    """The command line: --json gives the report (default backends: those with the type), text a row per backend;
    the exit status says whether it passed."""
    assert main(["parity", "--precision", "fp16-mixed", "--steps", "4", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["precision"] == "fp16-mixed" and report["passed"]
    assert [r["backend"] for r in report["results"]] == BACKENDS["fp16-mixed"]
    if BACKENDS["bf16-mixed"]:
        assert main(["parity", "--precision", "bf16-mixed", "--steps", "4", "--backends",
                     ",".join(BACKENDS["bf16-mixed"])]) == 0
        out = capsys.readouterr().out
        assert "bf16-mixed (bfloat16) against float32" in out
        assert sum(line.endswith("pass") for line in out.splitlines()) == len(BACKENDS["bf16-mixed"])


def test_cli_broken_run_exits_non_zero(monkeypatch, capsys):
    monkeypatch.setattr(LossScale, "unscale", staticmethod(lambda grads, scale: grads))
    assert main(["parity", "--precision", "fp16-mixed", "--steps", "3", "--backends", "numpy"]) == 1
    assert capsys.readouterr().out.rstrip().endswith("FAIL")


@pytest.mark.parametrize("argv, message", [
    (["--precision", "bf16-mixed", "--backends", "numpy"], "backend 'numpy' has no bfloat16"),
    (["--precision", "fp16-mixed", "--backends", "array_api_strict"], "'array_api_strict' has no float16"),
    (["--precision", "fp16-mixed", "--compile"], "--compile cannot be combined with --precision"),
    (["--precision", "fp16-mixed", "--dtype", "float64"], "compares against float32"),
])
def test_cli_refusals_in_one_line(argv, message, capsys):
    assert main(["parity", *argv]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1, err


def test_exact_matmul_pins_and_restores():
    """Backend.exact_matmul: torch's float32 matmul precision "highest" inside, the previous setting after; JAX's
    default matmul precision "highest" inside; a no-op context on NumPy."""
    with Backend("numpy").exact_matmul():
        pass
    if installed("torch"):
        import torch
        before = torch.get_float32_matmul_precision()
        torch.set_float32_matmul_precision("medium")
        try:
            with Backend("torch").exact_matmul():
                assert torch.get_float32_matmul_precision() == "highest"
            assert torch.get_float32_matmul_precision() == "medium"
        finally:
            torch.set_float32_matmul_precision(before)
    if installed("jax"):
        import jax
        with Backend("jax").exact_matmul():
            assert jax.config.jax_default_matmul_precision == "highest"


def test_cli_tol_sets_the_lockstep_tolerance(capsys):
    """--tol replaces the MLP's tolerance (for deeper models, docs/precision.md): at 1e-9 a correct run fails;
    without --precision it is refused in one line."""
    assert main(["parity", "--precision", "fp16-mixed", "--backends", "numpy", "--steps", "3", "--tol", "1e-9",
                 "--json"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["tolerance"] == 1e-9 and not report["passed"]
    assert main(["parity", "--backends", "numpy", "--steps", "1", "--tol", "1"]) == 2
    err = capsys.readouterr().err
    assert "--tol sets the tolerance of --precision" in err and err.count("\n") == 1
