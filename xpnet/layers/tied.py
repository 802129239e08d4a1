"""TiedOutput: the output projection of a language model that reuses its input Embedding's table (GPT-2's tied
input and output embeddings, nanoGPT's `lm_head.weight = wte.weight`): logits = x @ weight.T.

It holds the Embedding instance itself as its one child ("embedding"), so the table is one parameter of the
model under the Embedding's name ("layers.0.weight"), and its gradient is the sum of the lookup's scatter-add and
this projection's dz.T @ x (the model sums a shared layer's gradients: layers/combinators.py). In a config the
child is written {"shared": "layers.0"}, the path of the Embedding's first use.
"""
from __future__ import annotations

from ..errors import InputError
from ..namespace import namespace
from ..registry import register
from .combinators import Combinator, deserialize_layers, serialize_layers


@register("TiedOutput.v1", aliases=("tied_output",))
class TiedOutput(Combinator):
    """(batch, ..., dim) -> (batch, ..., vocab) logits through the transposed table of `embedding` (an Embedding
    used earlier in the same model: pass the instance, or {"shared": "<its path>"} in a config). No bias. The
    Embedding is not rebuilt here: only its table is read."""

    def __init__(self, embedding):
        made = deserialize_layers([("embedding", embedding)], owner="TiedOutput: ")[0]
        if not (hasattr(made, "vocab") and made.param_shapes().get("weight") == (made.vocab, made.dim)):
            raise InputError(f"TiedOutput ties its projection to an Embedding's table; got {type(made).__name__}: "
                             f"pass the model's Embedding instance (e.g. TiedOutput(emb) with emb = Embedding(65, "
                             f"128) as layers[0])")
        self.embedding = made

    @property
    def _children(self):
        return [("embedding", self.embedding)]

    @classmethod
    def examples(cls):
        from .embedding import Embedding
        return [({"embedding": Embedding(5, 3)}, (2, 3))]

    def get_config(self) -> dict:
        return {"embedding": serialize_layers(self._children)[0]}

    def build(self, input_shape):
        input_shape = tuple(input_shape)
        dim, vocab = self.embedding.dim, self.embedding.vocab
        if not input_shape or input_shape[-1] != dim:
            raise InputError(f"TiedOutput projects vectors of the Embedding's dim {dim} onto its {vocab} tokens, "
                             f"but gets (batch, {', '.join(map(str, input_shape))}); make the last axis {dim}")
        return self._finish_build(input_shape, (*input_shape[:-1], vocab))

    def forward_with_state(self, params, x, training=False, need_dx=True, noise=None, state=None, kernels=None):
        xp = namespace(x)
        w = params["embedding.weight"]
        vocab, dim = w.shape
        lead = tuple(x.shape[:-1])
        x2 = xp.reshape(x, (-1, dim))
        z = xp.reshape(x2 @ w.T, (*lead, vocab))

        def backward(dz):
            dz2 = xp.reshape(dz, (-1, vocab))
            grads = {"embedding.weight": dz2.T @ x2}
            return (xp.reshape(dz2 @ w, (*lead, dim)) if need_dx else None), grads

        return z, backward, (dict(state) if state else {})

    def __repr__(self) -> str:
        return f"TiedOutput({self.embedding!r})"
