"""`xpnet backends`: which array libraries are installed, what devices they see and which native kernels a model
on them runs (XPNET_NATIVE_KERNELS=0 or native_kernels=False turns those off), and the 16-bit types it can
compute in (--precision bf16-mixed needs bfloat16, fp16-mixed float16; xpnet.precision)."""
from __future__ import annotations

from ..backend import NAMES, backend_class, describe
from ._common import print_json


def add_parser(sub) -> None:
    sp = sub.add_parser("backends", help="list backends: available, version, devices")
    sp.add_argument("--json", action="store_true")
    sp.set_defaults(func=cmd_backends)


def cmd_backends(args) -> int:
    rows = [describe(name) for name in NAMES]
    if args.json:
        print_json(rows)
        return 0
    print(f"{'backend':<17} {'available':<9} {'version':<12} {'native kernels':<32} {'16-bit':<17} devices / reason")
    for r in rows:
        tail = ", ".join(r["devices"]) if r["available"] else r["reason"]
        kernels = ",".join(r["kernels"]) if r["kernels"] else "none (array-API reference)"
        low = ",".join(backend_class(r["name"]).compute_dtypes) or "none"
        print(f"{r['name']:<17} {'yes' if r['available'] else 'no':<9} {r['version'] or '-':<12} {kernels:<32} "
              f"{low:<17} {tail}")
    return 0
