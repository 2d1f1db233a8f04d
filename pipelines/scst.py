"""Self-critical sequence training (Rennie et al. 2017): the reward and the loss that
fine-tune a trained captioner on its own CIDEr-D (the recipe: `train_scst`).

For each image, K captions are sampled from the model and one is decoded greedily; the reward
of a sample is its CIDEr-D against the image's references and the greedy caption's CIDEr-D
is the baseline (`--baseline mean`: the mean reward of the image's other samples
instead; `--candidates beam`: the K best captions of a beam search instead of K samples), so
the policy-gradient loss is
    - (r(sample) - r(greedy)) * sum_t log p(w_t | w_<t, image),
averaged over the sampled tokens.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from captioner.beam_search import repeat_rows
from captioner.decoding import GenerationConfig, SpecialIds, generate
from captioner.text import Vocabulary, tokenize


class CiderD:
    """CIDEr-D of a hypothesis against one training image's references, with document
    frequencies from the whole training corpus (as the coco-caption scorer computes it, x10)."""

    def __init__(self, references: Sequence[Sequence[str]], *, n: int = 4, sigma: float = 6.0):
        self.n, self.sigma = n, sigma
        counted = [[self._counts(tokenize(r)) for r in refs] for refs in references]
        self.df: Counter = Counter()
        for refs in counted:
            self.df.update({g for counts, _ in refs for g in counts})
        self.log_docs = math.log(max(1, len(references)))
        self.refs = [[self._vec(counts, length) for counts, length in refs] for refs in counted]

    def _counts(self, tokens: Sequence[str]) -> tuple[Counter, int]:
        grams = Counter(
            tuple(tokens[i : i + k])
            for k in range(1, self.n + 1)
            for i in range(len(tokens) - k + 1)
        )
        return grams, max(0, len(tokens) - 1)  # pycocoevalcap: "length" = number of bigrams

    def _vec(self, counts: Counter, length: int) -> tuple[dict, list[float], int]:
        vec = {g: c * (self.log_docs - math.log(max(1.0, self.df[g]))) for g, c in counts.items()}
        norms = [0.0] * self.n
        for g, v in vec.items():
            norms[len(g) - 1] += v * v
        return vec, [math.sqrt(x) for x in norms], length

    def score(self, index: int, tokens: Sequence[str]) -> float:
        """CIDEr-D of `tokens` (a tokenized caption) against training image `index`."""
        hyp, hyp_norms, hyp_len = self._vec(*self._counts(list(tokens)))
        total = 0.0
        for ref, ref_norms, ref_len in self.refs[index]:
            sims = [0.0] * self.n
            for g, v in hyp.items():
                if g in ref:
                    sims[len(g) - 1] += min(v, ref[g]) * ref[g]
            penalty = math.exp(-((hyp_len - ref_len) ** 2) / (2 * self.sigma**2))
            total += (
                sum(
                    s / (hn * rn) * penalty if hn and rn else 0.0
                    for s, hn, rn in zip(sims, hyp_norms, ref_norms)
                )
                / self.n
            )
        return 10.0 * total / max(1, len(self.refs[index]))


def _targets(tokens: list[list[int]], ended: list[bool], vocab: Vocabulary) -> Tensor:
    """Sampled words -> (B, T) `<start> w... <end>` (no `<end>` when cut at max_length)."""
    rows = [[vocab.bos_id, *t, *([vocab.eos_id] if e else [])] for t, e in zip(tokens, ended)]
    return nn.utils.rnn.pad_sequence(
        [torch.tensor(r) for r in rows], batch_first=True, padding_value=vocab.pad_id
    )


def scst_loss_fn(
    cider: CiderD,
    vocab: Vocabulary,
    *,
    samples: int,
    max_length: int,
    baseline: str = "greedy",
    candidates: str = "sample",
):
    """The SCST loss. `baseline`: "greedy" (the greedy caption's reward, Rennie et al.) or
    "mean" (the mean reward of the image's other samples, Luo 2020; needs samples >= 2).
    `candidates`: the `samples` captions per image are drawn from the model ("sample") or are
    the `samples` best of a beam search as wide ("beam", as the Meshed-Memory Transformer
    trains: the update moves the captions beam search returns, not random ones)."""
    if baseline not in ("greedy", "mean") or (baseline == "mean" and samples < 2):
        raise ValueError(f"baseline must be 'greedy' or 'mean' (with samples >= 2), got "
                         f"{baseline!r} with {samples} samples")  # fmt: skip
    if candidates not in ("sample", "beam"):
        raise ValueError(f"candidates must be 'sample' or 'beam', got {candidates!r}")
    # The policy searches as inference does (<unk> banned, no <end> after a dangling word).
    ids = SpecialIds.from_vocab(vocab)
    if candidates == "beam":
        sampling = GenerationConfig(method="beam", beam_size=samples, max_length=max_length)
    else:
        sampling = GenerationConfig(method="sample", max_length=max_length)
    greedy = GenerationConfig(method="greedy", max_length=max_length)

    def reward(indices: list[int], tokens: list[list[int]]) -> Tensor:
        return torch.tensor(
            [cider.score(i, [vocab.itos[t] for t in seq]) for i, seq in zip(indices, tokens)]
        )

    def loss_fn(model: nn.Module, batch: dict[str, Tensor]) -> tuple[Tensor, dict[str, float]]:
        core = model.module if hasattr(model, "module") else model  # DDP -> CaptionModel
        grid, index = batch["grid"].float(), batch["image_index"].tolist()  # (B, N, C)
        rep = grid.repeat_interleave(samples, dim=0)  # (B*K, N, C)
        with torch.no_grad():
            step, state = core.decoder.start(grid, grid.mean(1))  # K sample rows per image
            if candidates == "beam":  # the K best beams of each image, image after image
                drawn = generate(step, state, ids, sampling, n_best=samples)
            else:
                drawn = generate(step, repeat_rows(state, samples), ids, sampling)
            rep_index = [i for i in index for _ in range(samples)]
            r_sample = reward(rep_index, drawn.tokens)  # (B*K,)
            if baseline == "greedy":
                r_base = reward(index, generate(step, state, ids, greedy).tokens)
                r_base = r_base.repeat_interleave(samples)
            else:  # mean of the other samples of the same image
                per_image = r_sample.view(-1, samples)
                r_base = ((per_image.sum(1, keepdim=True) - per_image) / (samples - 1)).view(-1)
        advantage = (r_sample - r_base).to(grid.device)  # (B*K,)
        captions = _targets(drawn.tokens, drawn.ended, vocab).to(grid.device)  # (B*K, T)
        logits, _ = model({"grid": rep, "captions": captions})  # (B*K, T-1, V)
        targets = captions[:, 1:]
        logp = torch.log_softmax(logits.float(), -1).gather(2, targets[:, :, None]).squeeze(2)
        mask = (targets != vocab.pad_id).float()
        loss = -(advantage[:, None] * logp * mask).sum() / mask.sum().clamp(min=1)
        return loss, {"reward": float(r_sample.mean()), "baseline": float(r_base.mean())}

    return loss_fn
