import pytest
import torch

from captioner.sentiment import SentimentConfig, SentimentModel, encode_texts
from captioner.text import Vocabulary


@pytest.mark.parametrize(
    "cell,bi,pooling",
    [("lstm", True, "last_max"), ("gru", False, "last_max"), ("lstm", True, "max_mean"),
     ("gru", True, "attention")],
)  # fmt: skip
def test_padding_does_not_change_the_prediction(cell, bi, pooling):
    torch.manual_seed(0)
    vocab = Vocabulary.build(["good great fine bad awful poor movie"])
    model = SentimentModel(
        SentimentConfig(
            vocab_size=len(vocab), cell=cell, bidirectional=bi, dropout=0.0, pooling=pooling
        )
    ).eval()
    short, _ = encode_texts(["good movie"], vocab, 64)
    batch, lengths = encode_texts(["good movie", "awful awful poor bad movie"], vocab, 64)
    alone = model(short, torch.tensor([2]))
    together = model(batch, lengths)
    assert together.shape == (2, 2)
    assert torch.allclose(alone[0], together[0], atol=1e-5)


def test_encode_texts_handles_empty_and_long_texts():
    vocab = Vocabulary.build(["a b c"])
    ids, lengths = encode_texts(["", "a b c a b c"], vocab, max_length=4)
    assert lengths.tolist() == [1, 4]
    assert ids[0, 0].item() == vocab.unk_id and ids.shape == (2, 4)


def test_learns_a_separable_toy_task():
    torch.manual_seed(0)
    pos = ["good", "great", "lovely"]
    neg = ["bad", "awful", "poor"]
    texts = [f"the {w} movie" for w in pos + neg] * 4
    labels = torch.tensor([1] * 3 + [0] * 3).repeat(4)
    vocab = Vocabulary.build(texts)
    model = SentimentModel(
        SentimentConfig(vocab_size=len(vocab), dropout=0.0, embed_dim=16, hidden_dim=16)
    )
    ids, lengths = encode_texts(texts, vocab, 64)
    opt = torch.optim.Adam(model.parameters(), lr=0.02)
    for _ in range(40):
        loss = torch.nn.functional.cross_entropy(model(ids, lengths), labels)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert (model(ids, lengths).argmax(-1) == labels).float().mean().item() == 1.0


def test_config_validation():
    with pytest.raises(ValueError, match="cell"):
        SentimentConfig(vocab_size=10, cell="rnn")
    with pytest.raises(ValueError, match="two labels"):
        SentimentConfig(vocab_size=10, labels=["only"])
