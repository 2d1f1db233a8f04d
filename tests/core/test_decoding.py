import itertools
import math

import pytest
import torch

from captioner.decoders import CaptionDecoder, DecoderConfig
from captioner.decoding import GenerationConfig, SpecialIds, generate
from captioner.logits_processors import no_repeat_ngram
from captioner.text import Vocabulary

BOS, EOS, PAD = 1, 2, 0


def run(dec, grid, pooled, *, banned=(), dangling=(), **config):
    """Search captions for these images with `generate` (no dangling ids unless given)."""
    step, state = dec.start(grid, pooled)
    ids = SpecialIds(BOS, EOS, PAD, banned=tuple(banned), dangling=tuple(dangling))
    return generate(step, state, ids, GenerationConfig(**config))


def greedy(dec, grid, pooled, **kw):
    return run(dec, grid, pooled, method="greedy", **kw)


def beam_search(dec, grid, pooled, **kw):
    return run(dec, grid, pooled, **{"method": "beam", **kw})


def sample(dec, grid, pooled, **kw):
    return run(dec, grid, pooled, method="sample", **kw)


def tiny_decoder(vocab=6, attention="soft", cell="lstm", seed=0):
    torch.manual_seed(seed)
    dec = CaptionDecoder(
        DecoderConfig(
            vocab_size=vocab,
            feature_dim=8,
            embed_dim=8,
            hidden_dim=16,
            attention_dim=8,
            cell=cell,
            attention=attention,
            dropout=0.0,
        )
    )
    # Sharpen the output layer so different images give clearly different captions.
    with torch.no_grad():
        dec.out.weight.mul_(4.0)
    return dec.eval()


def features(batch=3, n=5, c=8, seed=1):
    g = torch.Generator().manual_seed(seed)
    grid = torch.randn(batch, n, c, generator=g)
    return grid, grid.mean(1)


def exhaustive_best(dec, grid, pooled, max_length, must=()):
    """Score every caption up to max_length words (ended by <end> or cut at max_length) that
    contains the words `must` (a word listed twice: twice)."""
    allowed = [t for t in range(dec.config.vocab_size) if t not in (PAD, BOS)]
    best = (-math.inf, None)
    for length in range(1, max_length + 1):
        for seq in itertools.product(allowed, repeat=length):
            if EOS in seq[:-1] or (length < max_length and seq[-1] != EOS):
                continue
            if any(seq.count(t) < list(must).count(t) for t in must):
                continue
            step, state = dec.start(grid, pooled)
            tok, total = torch.tensor([BOS]), 0.0
            for t in seq:
                logits, state, _ = step(tok, state)
                logits[:, [PAD, BOS]] = -math.inf
                total += torch.log_softmax(logits, -1)[0, t].item()
                tok = torch.tensor([t])
            if total > best[0]:
                best = (total, [t for t in seq if t != EOS])
    return best


@pytest.mark.parametrize("cell,attention", [("lstm", "soft"), ("gru", "none"), ("rnn", "soft")])
def test_beam_size_one_equals_greedy(cell, attention):
    dec = tiny_decoder(vocab=9, cell=cell, attention=attention)
    grid, pooled = features(batch=4)
    g = greedy(dec, grid, pooled, max_length=7)
    b = beam_search(
        dec,
        grid,
        pooled,
        beam_size=1,
        max_length=7,
        length_penalty=0.0,
    )
    assert g.tokens == b.tokens
    assert g.scores == pytest.approx(b.scores, abs=1e-5)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_beam_search_equals_exhaustive_search(seed):
    dec = tiny_decoder(vocab=5, seed=seed)  # words: <end>, <unk>, one real word -> 3 choices
    grid, pooled = features(batch=1, seed=seed)
    max_length = 3
    want_score, want_tokens = exhaustive_best(dec, grid, pooled, max_length)
    got = beam_search(
        dec,
        grid,
        pooled,
        beam_size=27,
        max_length=max_length,
        length_penalty=0.0,
    )
    assert got.tokens[0] == want_tokens
    assert got.scores[0] == pytest.approx(want_score, abs=1e-4)


def test_batched_beam_search_equals_one_by_one():
    dec = tiny_decoder(vocab=12)
    grid, pooled = features(batch=5)
    batched = beam_search(dec, grid, pooled, beam_size=4, max_length=9)
    for i in range(5):
        one = beam_search(
            dec,
            grid[i : i + 1],
            pooled[i : i + 1],
            beam_size=4,
            max_length=9,
        )
        assert one.tokens[0] == batched.tokens[i]
        assert one.scores[0] == pytest.approx(batched.scores[i], abs=1e-5)
        assert torch.allclose(one.alphas[0], batched.alphas[i], atol=1e-5)


def test_n_best_returns_each_images_best_beams_in_order():
    dec = tiny_decoder(vocab=12)
    grid, pooled = features(batch=3)
    step, state = dec.start(grid, pooled)
    ids = SpecialIds(BOS, EOS, PAD)
    config = GenerationConfig(method="beam", beam_size=4, max_length=9)
    best = generate(step, state, ids, config)
    step, state = dec.start(grid, pooled)
    many = generate(step, state, ids, config, n_best=3)
    assert len(many.tokens) == len(many.scores) == len(many.alphas) == len(many.ended) == 9
    for i in range(3):
        rows = slice(3 * i, 3 * i + 3)
        assert many.tokens[3 * i] == best.tokens[i]  # the first of each image is its best
        assert many.scores[rows] == sorted(many.scores[rows], reverse=True)
        assert len({tuple(t) for t in many.tokens[rows]}) == 3  # three different captions
    with pytest.raises(ValueError, match="n_best=5 needs beam search with beam_size >= n_best"):
        generate(step, state, ids, config, n_best=5)
    with pytest.raises(ValueError, match="n_best=2 needs beam search"):
        generate(step, state, ids, GenerationConfig(method="greedy"), n_best=2)
    with pytest.raises(ValueError, match="slot_boost must be >= 0"):
        GenerationConfig(slot_boost=-1.0)


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("must", [(4,), (4, 5), (5, 5), (3, 4, 5)])
def test_constrained_beam_search_with_wide_beams_finds_the_best_caption_that_has_the_words(
    seed, must
):
    dec = tiny_decoder(vocab=6, seed=seed)  # words 3, 4, 5 and <end>
    grid, pooled = features(batch=1, seed=seed)
    want_score, want = exhaustive_best(dec, grid, pooled, 4, must=must)
    step, state = dec.start(grid, pooled)
    got = generate(step, state, SpecialIds(BOS, EOS, PAD),
                   GenerationConfig(beam_size=256, max_length=4, length_penalty=0.0),
                   constraints=[list(must)])  # fmt: skip
    assert got.tokens[0] == want
    assert got.scores[0] == pytest.approx(want_score, abs=1e-4)


def test_constrained_rows_name_their_words_and_the_others_keep_their_captions():
    dec = tiny_decoder(vocab=12)
    grid, pooled = features(batch=3)
    ids = SpecialIds(BOS, EOS, PAD, dangling=(11,))
    config = GenerationConfig(beam_size=3, max_length=8, no_repeat_ngram_size=2)
    step, state = dec.start(grid, pooled)
    plain = generate(step, state, ids, config, n_best=2)
    absent = [next(t for t in range(3, 11) if t not in plain.tokens[2 * i]) for i in range(3)]
    wanted = [[absent[0]], [], [absent[2], 10]]
    for cfg in (config, GenerationConfig(method="greedy", max_length=8)):
        step, state = dec.start(grid, pooled)
        got = generate(step, state, ids, cfg, constraints=wanted)
        assert absent[0] in got.tokens[0]
        assert absent[2] in got.tokens[2] and 10 in got.tokens[2]
    step, state = dec.start(grid, pooled)
    got = generate(step, state, ids, config, constraints=wanted, n_best=2)
    assert got.tokens[2:4] == plain.tokens[2:4]  # the unconstrained image: as before
    assert all(absent[0] in t for t in got.tokens[:2])  # both of its best meet the constraint


def test_a_constraint_that_cannot_be_met_gives_the_caption_meeting_the_most():
    dec = tiny_decoder(vocab=8)
    grid, pooled = features(batch=2)
    ids = SpecialIds(BOS, EOS, PAD, banned=(3,))
    config = GenerationConfig(beam_size=3, max_length=5)
    step, state = dec.start(grid, pooled)
    plain = generate(step, state, ids, config)
    step, state = dec.start(grid, pooled)
    got = generate(step, state, ids, config, constraints=[[3], [3, 6]])  # 3 is banned
    assert got.tokens[0] == plain.tokens[0]
    assert 6 in got.tokens[1] and 3 not in got.tokens[1]
    step, state = dec.start(grid, pooled)
    with pytest.raises(ValueError, match="constraints need beam search or greedy"):
        generate(step, state, ids, GenerationConfig(method="sample"), constraints=[[4], []])
    with pytest.raises(ValueError, match="at most 4 per image, got 5"):
        generate(step, state, ids, config, constraints=[[4] * 5, []])
    with pytest.raises(ValueError, match="3 lists for 2 images"):
        generate(step, state, ids, config, constraints=[[4], [], []])


@pytest.mark.parametrize("method", ["greedy", "beam"])
def test_a_per_row_bias_moves_each_rows_words(method):
    dec = tiny_decoder(vocab=12)
    grid, pooled = features(batch=3)
    ids = SpecialIds(BOS, EOS, PAD)
    config = GenerationConfig(method=method, beam_size=3, max_length=4)
    step, state = dec.start(grid, pooled)
    plain = generate(step, state, ids, config)
    bias = torch.zeros(3, 12)
    bias[0, 5], bias[2, 7] = 100.0, 100.0  # row 1 unbiased
    step, state = dec.start(grid, pooled)
    got = generate(step, state, ids, config, bias=bias)
    assert got.tokens[0] == [5, 5, 5, 5] and got.tokens[2] == [7, 7, 7, 7]
    assert got.tokens[1] == plain.tokens[1]


def test_search_returns_caption_when_end_never_comes():
    dec = tiny_decoder(vocab=7)
    with torch.no_grad():
        dec.out.bias[EOS] = -1e4  # <end> is never the likely choice
    grid, pooled = features(batch=2)
    for out in (
        greedy(dec, grid, pooled, max_length=6),
        beam_search(
            dec,
            grid,
            pooled,
            beam_size=3,
            max_length=6,
        ),
    ):
        assert [len(t) for t in out.tokens] == [6, 6]
        assert all(PAD not in t and BOS not in t and EOS not in t for t in out.tokens)
        assert all(a.shape == (6, 5) for a in out.alphas)


def test_attention_weights_are_distributions_per_word():
    dec = tiny_decoder(vocab=10)
    grid, pooled = features(batch=3)
    out = beam_search(dec, grid, pooled, beam_size=3)
    for toks, a in zip(out.tokens, out.alphas):
        assert a.shape == (max(len(toks), 1), 5)
        assert torch.allclose(a.sum(-1), torch.ones(a.size(0)), atol=1e-5)


def test_no_attention_model_has_no_alphas():
    dec = tiny_decoder(attention="none")
    grid, pooled = features()
    out = greedy(
        dec,
        grid,
        pooled,
    )
    assert out.alphas == [None, None, None]


def test_no_repeat_ngram_blocking():
    dec = tiny_decoder(vocab=6)
    with torch.no_grad():
        dec.out.bias[EOS] = -1e4
    grid, pooled = features(batch=2)
    plain = beam_search(dec, grid, pooled, beam_size=2, max_length=8)
    assert any(len(set(t)) < len(t) for t in plain.tokens)  # repetition happens without blocking
    blocked = beam_search(
        dec,
        grid,
        pooled,
        beam_size=2,
        max_length=8,
        no_repeat_ngram_size=2,
    )
    for t in blocked.tokens:
        bigrams = list(zip(t, t[1:]))
        assert len(bigrams) == len(set(bigrams))


def test_length_penalty_prefers_longer_captions():
    dec = tiny_decoder(vocab=12, seed=3)
    grid, pooled = features(batch=6, seed=3)
    raw = beam_search(
        dec,
        grid,
        pooled,
        beam_size=5,
        max_length=10,
        length_penalty=0.0,
    )
    norm = beam_search(
        dec,
        grid,
        pooled,
        beam_size=5,
        max_length=10,
        length_penalty=1.0,
    )
    assert sum(map(len, norm.tokens)) >= sum(map(len, raw.tokens))


def test_sampling_is_seeded_and_filters():
    dec = tiny_decoder(vocab=15)
    grid, pooled = features(batch=4)

    def run(seed, **kw):
        return sample(dec, grid, pooled, max_length=8, seed=seed, **kw)

    assert run(0).tokens == run(0).tokens
    # top_k=1 and a tiny top_p both reduce sampling to greedy decoding.
    want = greedy(dec, grid, pooled, max_length=8).tokens
    assert run(1, top_k=1).tokens == want
    assert run(2, top_p=1e-6).tokens == want
    assert run(3, temperature=1e-3).tokens == want
    with pytest.raises(ValueError, match="temperature"):
        run(0, temperature=0)


def test_banned_tokens_are_never_generated():
    dec = tiny_decoder(vocab=7)
    with torch.no_grad():
        dec.out.bias[3] = 50.0  # token 3 (<unk>) would win every step
    grid, pooled = features(batch=3)
    for out in (
        greedy(dec, grid, pooled, banned=(3,)),
        beam_search(dec, grid, pooled, banned=(3,)),
        sample(dec, grid, pooled, banned=(3,)),
    ):
        assert all(3 not in t for t in out.tokens)
    plain = greedy(dec, grid, pooled, max_length=3)
    assert all(t == [3, 3, 3] for t in plain.tokens)


def test_generation_config_rules_and_errors():
    import captioner

    assert captioner.GenerationConfig is GenerationConfig  # the package exports it
    assert GenerationConfig(method="beam", beam_size=1).search == "greedy"
    assert GenerationConfig(method="beam", beam_size=2).search == "beam"
    assert GenerationConfig(method="sample", beam_size=1).search == "sample"
    for bad, match in [
        ({"method": "nucleus"}, "method"),
        ({"beam_size": 0}, "beam_size"),
        ({"top_p": 0.0}, "top_p"),
        ({"max_length": 0}, "max_length"),
        ({"no_repeat_ngram_size": -1}, "no_repeat_ngram_size"),
    ]:
        with pytest.raises(ValueError, match=match):
            GenerationConfig(**bad)


def blocked_reference(history, n):
    """Tokens that would repeat an n-gram already in `history` (a plain Python reading)."""
    if len(history) < n:
        return set()
    prefix = tuple(history[len(history) - n + 1 :]) if n > 1 else ()
    return {
        history[i + n - 1]
        for i in range(len(history) - n + 1)
        if tuple(history[i : i + n - 1]) == prefix
    }


@pytest.mark.parametrize("n", [1, 2, 3, 4])
def test_vectorised_no_repeat_ngram_matches_the_reference(n):
    g = torch.Generator().manual_seed(n)
    process = no_repeat_ngram(n)
    for length in range(0, 12):
        history = torch.randint(0, 4, (16, length), generator=g)  # small vocabulary: repeats
        logp = torch.randn(16, 6, generator=g)
        got = process(logp, history)
        for r in range(16):
            want = blocked_reference(history[r].tolist(), n)
            assert {t for t in range(6) if got[r, t] == float("-inf")} == want
            keep = [t for t in range(6) if t not in want]
            assert torch.equal(got[r, keep], logp[r, keep])


def dangling_decoder():
    """A decoder whose unconstrained searches end captions in "the" (token 4): after any
    word but "the", "the" is the likeliest; after "the", <end> is."""
    dec = tiny_decoder(vocab=8)
    with torch.no_grad():
        dec.out.weight.zero_()
        dec.out.bias.copy_(torch.tensor([0.0, 0.0, -4.0, -9.0, 4.0, 0.5, 0.2, -1.0]))
    step = dec.step

    def biased(tokens, state, context):
        logits, state, alpha = step(tokens, state, context)
        after_the = (tokens == 4)[:, None]
        bonus = torch.tensor([0.0, 0.0, 10.0, 0.0, -10.0, 0.0, 0.0, 0.0])
        return logits + after_the * bonus, state, alpha

    dec.step = biased
    return dec


def test_captions_never_end_in_a_dangling_word():
    dec = dangling_decoder()
    grid, pooled = features(batch=3)
    for method in ("greedy", "beam", "sample"):
        free = run(dec, grid, pooled, method=method, max_length=6, seed=0, avoid_dangling=False,
                   dangling=(4,))  # fmt: skip
        assert all(t and t[-1] == 4 for t in free.tokens), method  # "... the" unconstrained
        kept = run(dec, grid, pooled, method=method, max_length=6, seed=0, dangling=(4,))
        assert all(t and t[-1] != 4 for t in kept.tokens), method


def test_a_caption_cut_at_max_length_loses_its_dangling_tail():
    dec = tiny_decoder(vocab=7)
    with torch.no_grad():
        dec.out.bias[EOS] = -1e4  # never ends: every caption is cut at max_length
    grid, pooled = features(batch=3)
    plain = greedy(dec, grid, pooled, max_length=5)
    last = {t[-1] for t in plain.tokens}
    cut = greedy(dec, grid, pooled, max_length=5, dangling=tuple(last))
    for before, after in zip(plain.tokens, cut.tokens):
        assert after == before[: len(after)] and (not after or after[-1] not in last)
        assert len(after) < len(before)
    assert cut.ended == [False] * 3
    assert all(a.shape[0] == max(len(t), 1) for t, a in zip(cut.tokens, cut.alphas))


def test_special_ids_from_a_vocabulary():
    vocab = Vocabulary(["<pad>", "<start>", "<end>", "<unk>", "a", "dog", "on", "the", "grass"])
    ids = SpecialIds.from_vocab(vocab)
    assert (ids.bos_id, ids.eos_id, ids.pad_id, ids.banned) == (1, 2, 0, (3,))
    assert ids.dangling == (4, 6, 7)
    assert SpecialIds.from_vocab(vocab, dangling_words=()).dangling == ()
