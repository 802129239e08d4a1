"""The largest oracle error of tests/test_conv.py's torch comparisons over many hypothesis examples (the tests
themselves run 15 each): `python benchmarks/conv_oracle_errors.py [--examples 300]`. Prints, per layer, the worst
max|a - b| / max|b| over outputs, input and parameter gradients (BatchNorm: also running statistics; its input
gradient is asserted on the scale of its terms, see the test)."""
import argparse
import sys
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--examples", type=int, default=300)
    args = p.parse_args(argv)
    warnings.filterwarnings("ignore")
    from hypothesis import HealthCheck, given, settings
    import test_conv as T
    from xpnet.parity import rel_diff
    worst, current = {}, [None]

    def close(got, want):
        r = rel_diff(got, want.detach().numpy())[1]
        worst[current[0]] = max(worst.get(current[0], 0.0), r)
        assert r <= T.TOL, (current[0], r)

    T._close = close
    for name, strategy, test in [("conv2d", T.conv_cases(), T.test_conv2d_matches_torch),
                                 ("max_pool2d", T.pool_cases(), T.test_max_pool2d_matches_torch),
                                 ("avg_pool2d", T.pool_cases(), T.test_avg_pool2d_matches_torch),
                                 ("batch_norm", T.norm_cases(), T.test_batch_norm_matches_torch)]:
        current[0] = name
        run = settings(max_examples=args.examples, deadline=None, database=None,
                       suppress_health_check=list(HealthCheck))(test.hypothesis.inner_test)
        given(strategy)(run)()
        print(f"{name}: {args.examples} examples, worst relative error {worst[name]:.2e}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
