"""`xpnet generate`: text from a language model's checkpoint (a GPT trained with `xpnet train --dataset
tinyshakespeare`), sampled on the host (xpnet.models.gpt.generate): the same text on every backend for a seed.
Prints the prompt and its continuation, then the tokens per second with the key/value cache and without."""
from __future__ import annotations

import sys

from ._common import common_flags, print_json, whole_number


def add_parser(sub) -> None:
    sp = sub.add_parser("generate", help="sample text from a language model's checkpoint (a GPT; docs/gpt.md)")
    common_flags(sp)
    sp.add_argument("--checkpoint", required=True, metavar="PATH", help="a checkpoint written by xpnet train")
    sp.add_argument("--prompt", default="\n", help="the text to continue (default: a newline, nanoGPT's start); "
                    "cropped to the model's context when longer")
    sp.add_argument("--tokens", type=whole_number("a number of tokens to generate, from 1"), default=500,
                    metavar="N", help="how many tokens (characters) to generate (default 500)")
    sp.add_argument("--temperature", type=float, default=0.8, metavar="T",
                    help="divide the logits by T before sampling (default 0.8; 1.0: the model's distribution)")
    sp.add_argument("--top-k", type=int, default=200, metavar="K",
                    help="sample among the K most likely tokens (default 200, nanoGPT's; 0: all)")
    sp.add_argument("--seed", type=int, default=1, help="the sampling seed (default 1)")
    sp.add_argument("--no-compare", action="store_true",
                    help="generate once, with the cache, without timing the uncached generation too")
    sp.set_defaults(func=cmd_generate)


def cmd_generate(args) -> int:
    from ..init import check_seed
    from ..models.gpt import check_sampling, generate
    from ..saving.checkpoint import load
    top_k = None if args.top_k == 0 else args.top_k
    check_sampling(args.temperature, top_k, args.tokens)
    check_seed("seed", args.seed)
    model = load(args.checkpoint, backend=args.backend, device=args.device)
    text, cached = generate(model, args.prompt, args.tokens, args.temperature, top_k, args.seed, cache=True)
    uncached = None
    if not args.no_compare:
        again, uncached = generate(model, args.prompt, args.tokens, args.temperature, top_k, args.seed, cache=False)
        if again != text:  # the two paths' logits differ by rounding only; a different draw is worth saying
            print("xpnet generate: note: the uncached run sampled a different text (rounding of the logits)",
                  file=sys.stderr)
    print(text, flush=True)
    line = f"{cached['tokens_per_second']:.1f} tokens/s with the key/value cache"
    if uncached is not None:
        line += f", {uncached['tokens_per_second']:.1f} tokens/s without"
    print(f"--- {args.tokens} tokens; {line} ({model.bk.name} on {model.bk.device})", file=sys.stderr, flush=True)
    if args.json:
        print_json({"text": text, "tokens": args.tokens, "tokens_per_second_cached": cached["tokens_per_second"],
                    "tokens_per_second_uncached": None if uncached is None else uncached["tokens_per_second"],
                    "backend": model.bk.name, "device": model.bk.device})
    return 0
