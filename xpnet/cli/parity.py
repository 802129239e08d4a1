"""`xpnet parity`: the same training steps on several backends and dtypes, compared (--distributed: N ranks
against one process)."""
from __future__ import annotations

from ..backend import NAMES, BackendError
from ..errors import InputError
from ._common import common_flags, csv_values, print_json


def add_parser(sub) -> None:
    sp = sub.add_parser("parity", help="compare backends with NumPy float64: lockstep and free-running")
    common_flags(sp, "device for the GPU-capable backends")
    sp.add_argument("--backends", default=None, help="comma-separated (default numpy,array_api_strict,torch,jax; "
                    "with --precision those that have its type)")
    sp.add_argument("--dtype", default=None, help="one or more of float64,float32 (default float64; with "
                    "--distributed float64,float32)")
    sp.add_argument("--steps", type=int, default=100)
    sp.add_argument("--optimizer", choices=["sgd", "adam"], default="sgd", help="the built-in models' optimizer")
    sp.add_argument("--model", default="mlp", metavar="MODEL", help="mlp (default), cnn (Conv2D, max-pool, "
                    "average-pool and dense layers on 8x8 images), resnet (residual blocks, BatchNorm, Concatenate and "
                    "a shared Dense on 8x8 images), transformer (Embedding, PositionalEmbedding, causal attention, "
                    "LayerNorm, GELU on token ids, logits per position), or your own model: a .json file (or JSON "
                    "text) in the registry's config format, as xpnet.serialize(model) gives, on data of its input shape")
    sp.add_argument("--free-tol", type=float, default=None, help="also fail when the free-running difference exceeds this")
    sp.add_argument("--seed", type=int, default=0)
    sp.add_argument("--compile", action="store_true", help="also compare each backend's compiled step (compile=True) "
                    "with the reference and with its own eager step; backends without a compiler say so")
    sp.add_argument("--batch-size", type=int, default=64, help="rows per step (default 64)")
    sp.add_argument("--kernels", choices=["default", "native", "reference", "both"], default="default",
                    help="the backends' layers on their native kernels (torch, jax: convolution, pooling, attention, "
                    "scatter-add; cupy: scatter-add), on the "
                    "array-API reference, or both (two rows each); default: native unless XPNET_NATIVE_KERNELS=0")
    sp.add_argument("--distributed", action="store_true", help="under an MPI launcher (mpiexec -n 2 xpnet parity "
                    "--distributed): all ranks together against one process, same backend and dtype (float64 "
                    "and float32 unless --dtype says otherwise)")
    sp.add_argument("--precision", choices=["bf16-mixed", "fp16-mixed"], default=None,
                    help="compare a mixed-precision run with the float32 run of the same seed on each backend: "
                    "one step from the same state (gradients, update) at every step, and the free-running losses "
                    "(docs/precision.md)")
    sp.add_argument("--tol", type=float, default=None, help="with --precision: the lockstep tolerance (default "
                    "2e-2 for bf16-mixed, 2e-3 for fp16-mixed, set on the MLP; --free-tol the free-running one)")
    sp.set_defaults(func=cmd_parity)


#: the backends `xpnet parity` runs by default (with --precision: those of them that have its compute type)
DEFAULT_BACKENDS = "numpy,array_api_strict,torch,jax"


def cmd_parity(args) -> int:
    from ..tools.parity import parity
    backends = csv_values(args.backends or DEFAULT_BACKENDS)
    for name in backends:
        if name not in NAMES:
            raise BackendError(f"unknown backend {name!r} in --backends; choose from: {', '.join(NAMES)}")
    if args.precision:
        return _mixed_parity(args, backends)
    if args.tol is not None:
        raise InputError("--tol sets the tolerance of --precision's comparison; the backend comparison's are fixed "
                         "per dtype (--free-tol adds a free-running one)")
    if args.distributed:
        return _distributed_parity(args, backends)
    from ..tools.parity import MODELS
    model_fn = X = y = None
    if args.model not in MODELS:  # the user's own model config
        from ..tools.parity import config_model
        model_fn, X, y = config_model(args.model, args.seed)
    report = parity(model_fn, X, y, backends=backends, dtypes=csv_values(args.dtype or "float64"), steps=args.steps,
                    device=args.device, free_tol=args.free_tol, optimizer=args.optimizer, seed=args.seed,
                    compile=args.compile, batch_size=args.batch_size, model=args.model if model_fn is None else "mlp",
                    kernels=args.kernels)
    if args.json:
        print_json(report)
    else:
        ref = report["reference"]
        w = max([17] + [len(r["label"]) for r in report["results"]])
        print(f"reference {ref['backend']} {ref['dtype']} ({ref['device']}), {report['steps']} steps"
              + ("; compiled rows compare loss, parameters and optimizer buffers (no gradients come out of a "
                 "compiled step)" if report.get("compile") else ""))
        print(f"{'backend':<{w}} {'device':<7} {'dtype':<8} {'lockstep abs':>12} {'lockstep rel':>12} "
              f"{'tol':>6} {'free rel':>9} {'growth/step':>11}  result")
        for r in report["results"]:
            if r.get("skipped"):
                print(f"{r['label']:<{w}} {r['device']:<7} {r['dtype']:<8} skipped: {r['skipped']}")
                continue
            growth = "-" if r["growth_per_step"] is None else f"{r['growth_per_step']:.4f}"
            print(f"{r['label']:<{w}} {r['device']:<7} {r['dtype']:<8} {r['max_abs_diff']:>12.2e} "
                  f"{r['max_rel_diff']:>12.2e} {r['tolerance']:>6.0e} {r['free_max_rel_diff']:>9.2e} "
                  f"{growth:>11}  {'pass' if r['passed'] else 'FAIL'}"
                  + (f"  native: {', '.join(r['kernels'])}" if r.get("kernels") else ""))
            if r.get("error"):
                where = f" in {r['error']['where']}" if r["error"]["where"] else ""
                print(f"{'':<{w}} error{where}: {r['error']['type']}: {r['error']['message']}")
    return 0 if report["passed"] else 1


def _distributed_parity(args, backends) -> int:
    """`mpiexec -n N xpnet parity --distributed`: N ranks against one process (xpnet.distributed.parity)."""
    from ..distributed.communicator import Communicator
    from ..distributed.parity import distributed_parity
    if args.compile:
        raise InputError("--compile cannot be combined with --distributed (distributed training is eager)")
    comm = Communicator()
    dtypes = csv_values(args.dtype or "float64,float32")
    report = distributed_parity(comm, backends, dtypes, args.steps, args.batch_size, args.optimizer, args.seed,
                                args.device)
    if comm.rank != 0:
        return 0 if report["passed"] else 1
    if args.json:
        print_json(report)
        return 0 if report["passed"] else 1
    print(f"{report['ranks']} ranks against one process, {report['steps']} steps of {report['batch_size']} rows "
          f"(shards {report['shards']}); worst over the ranks of max|a-b|/max|b| per tensor")
    print(f"{'backend':<17} {'dtype':<8} {'path':<10} {'lockstep rel':>12} {'tol':>6} {'free rel':>9} {'tol':>6}  "
          f"result")
    for r in report["results"]:
        tol = r["tolerances"]
        free_tol = "-" if tol["free"] is None else f"{tol['free']:.0e}"
        print(f"{r['backend']:<17} {r['dtype']:<8} {r['path']:<10} {r['lockstep_rel']:>12.2e} {tol['lockstep']:>6.0e} "
              f"{r['free_rel']:>9.2e} {free_tol:>6}  {'pass' if r['passed'] else 'FAIL'}")
    return 0 if report["passed"] else 1


def _mixed_parity(args, backends) -> int:
    """`xpnet parity --precision P`: P against float32 on each backend (xpnet.tools.parity.mixed_parity)."""
    from ..backend import backend_class
    from ..precision import POLICIES
    from ..tools.parity import MODELS, config_model, mixed_parity
    for flag, given in (("--distributed", args.distributed), ("--compile", args.compile),
                        ("--kernels", args.kernels != "default")):
        if given:
            raise InputError(f"{flag} cannot be combined with --precision: the mixed-precision comparison runs "
                             f"eager steps on one process with the models' default kernels; drop {flag}")
    if args.dtype not in (None, "float32"):
        raise InputError(f"--precision compares against float32 (the master dtype), got --dtype {args.dtype}; "
                         f"drop --dtype")
    compute = POLICIES[args.precision][0]
    if args.backends is None:  # the default backends that have the type (the others would be refused)
        backends = [b for b in backends if compute in backend_class(b).compute_dtypes]
    model_fn = X = y = None
    if args.model not in MODELS:
        model_fn, X, y = config_model(args.model, args.seed)
    report = mixed_parity(args.precision, model_fn, X, y, backends=backends, steps=args.steps,
                          batch_size=args.batch_size, device=args.device, seed=args.seed, optimizer=args.optimizer,
                          model=args.model if model_fn is None else "mlp", free_tol=args.free_tol, tol=args.tol)
    if args.json:
        print_json(report)
        return 0 if report["passed"] else 1
    print(f"{args.precision} ({report['compute']}) against float32 on the same backend, {report['steps']} steps, "
          f"float32 matmuls at full precision; lockstep: median over the steps of ||mixed - float32|| / ||float32|| "
          f"(tol {report['tolerance']:.0e}); free-running: the last loss's relative gap (tol "
          f"{report['free_tolerance']:.0e})")
    print(f"{'backend':<8} {'device':<7} {'grads':>9} {'update':>9} {'worst':>9} {'skipped':>7} {'free last':>9} "
          f"{'free max':>9}  result")
    for r in report["results"]:
        if r.get("error"):
            where = f" in {r['error']['where']}" if r["error"]["where"] else ""
            print(f"{r['backend']:<8} {r['device']:<7} error{where}: {r['error']['type']}: {r['error']['message']}")
            continue
        print(f"{r['backend']:<8} {r['device']:<7} {r['grad_rel']:>9.2e} {r['update_rel']:>9.2e} "
              f"{r['grad_rel_max']:>9.2e} {r['lockstep_skipped'] + r['free_skipped']:>7} {r['free_final_rel']:>9.2e} "
              f"{r['free_loss_gap']:>9.2e}  {'pass' if r['passed'] else 'FAIL'}")
    return 0 if report["passed"] else 1
