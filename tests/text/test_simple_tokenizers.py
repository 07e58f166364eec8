"""CharTokenizer and WordTokenizer: vocabulary, encoding, decoding, batching and argument errors."""
import numpy as np
import pytest

from numpy_transformer.text import CharTokenizer, WordTokenizer

SENTENCES = ["the cat sat.", "the dog sat", "a cat ran!"]


def test_word_vocab_and_round_trip():
    tok = WordTokenizer().build_vocab(SENTENCES)
    assert tok.itos[:4] == ["<pad>", "<bos>", "<eos>", "<unk>"]
    assert (tok.pad_id, tok.bos_id, tok.eos_id, tok.unk_id) == (0, 1, 2, 3)
    assert tok.itos[4:7] == ["cat", "sat", "the"]  # most frequent first, ties alphabetically
    ids = tok.encode("the cat ran!", add_bos=True, add_eos=True)
    assert ids[0] == tok.bos_id and ids[-1] == tok.eos_id
    assert tok.decode(ids) == "the cat ran !"
    assert tok.encode("the zebra") == [tok.stoi["the"], tok.unk_id]
    assert tok.decode(ids + [tok.stoi["dog"]]) == "the cat ran !"  # stops at <eos>
    assert tok.decode([tok.pad_id, tok.bos_id, tok.stoi["dog"], tok.pad_id]) == "dog"


def test_char_vocab_and_round_trip():
    tok = CharTokenizer(lowercase=True).build_vocab(SENTENCES)
    assert tok.vocab_size == len(tok) == 4 + len(set("".join(SENTENCES)))
    assert tok.decode(tok.encode("The cat", add_eos=True)) == "the cat"
    assert tok.encode("z") == [tok.unk_id]


def test_min_freq_and_max_size():
    tok = WordTokenizer().build_vocab(SENTENCES, min_freq=2)
    assert tok.itos[4:] == ["cat", "sat", "the"]
    assert WordTokenizer().build_vocab(SENTENCES, max_size=6).itos[4:] == ["cat", "sat"]


def test_batch_encode():
    tok = WordTokenizer().build_vocab(SENTENCES)
    ids, lengths = tok.batch_encode(["the cat", "a dog sat ."], add_eos=True)
    assert ids.dtype == np.int64 and lengths.dtype == np.int64
    assert ids.shape == (2, 5) and lengths.tolist() == [3, 5]
    assert ids[0, 3:].tolist() == [tok.pad_id, tok.pad_id] and ids[0, 2] == tok.eos_id
    assert ((ids != tok.pad_id) == (np.arange(5) < lengths[:, None])).all()
    assert tok.batch_decode(ids) == ["the cat", "a dog sat ."]
    cut, cut_lengths = tok.batch_encode(["the cat sat", "a"], max_len=2)
    assert cut.shape == (2, 2) and cut_lengths.tolist() == [2, 1]
    wide, _ = tok.batch_encode(["a"], max_len=4)
    assert wide.tolist() == [[tok.stoi["a"], 0, 0, 0]]
    empty, empty_lengths = tok.batch_encode([])
    assert empty.shape == (0, 0) and empty_lengths.shape == (0,)


def test_bad_arguments():
    tok = CharTokenizer().build_vocab(["abc"])
    with pytest.raises(TypeError, match="sentence"):
        tok.encode(5)
    with pytest.raises(TypeError, match="add_eos"):
        tok.encode("ab", add_eos="yes")
    with pytest.raises(TypeError, match="sentences"):
        tok.build_vocab("abc")
    with pytest.raises(ValueError, match="min_freq"):
        tok.build_vocab(["abc"], min_freq=0)
    with pytest.raises(ValueError, match="max_size"):
        tok.build_vocab(["abc"], max_size=2)
    with pytest.raises(ValueError, match="max_len"):
        tok.batch_encode(["ab"], max_len=0)
    with pytest.raises(ValueError, match="ids"):
        tok.decode([1000])
    with pytest.raises(ValueError, match="ids"):
        tok.decode([[1, 2]])
    with pytest.raises(TypeError, match="lowercase"):
        WordTokenizer(lowercase="no")
    with pytest.raises(TypeError, match="unexpected keyword"):
        tok.encode("ab", add_sos=True)


@pytest.mark.parametrize("make", [CharTokenizer, WordTokenizer])
def test_what_is_not_a_list_of_sentences_is_named(make):
    tok = make().build_vocab(["the cat"])
    for method in (tok.batch_encode, tok.build_vocab):
        for bad, message in ((None, "sentences: got NoneType"), (5, "sentences: got int"),
                             (b"the cat", "sentences: got bytes"), ("the cat", "sentences: got a single str"),
                             (["the", None], r"sentences\[1\]: got None")):
            with pytest.raises(TypeError, match=message):
                method(bad)
    for bad, message in ((5, "tokens: got int"), (b"ab", "tokens: got bytes"), (["a", 1], r"tokens\[1\]: got 1")):
        with pytest.raises(TypeError, match=message):
            make(bad)
    with pytest.raises(TypeError, match="ids: got NoneType"):
        tok.decode(None)
    with pytest.raises(TypeError, match="ids: got NoneType"):
        tok.batch_decode(None)
    with pytest.raises(ValueError, match=r"ids: got shape \(2,\)"):
        tok.batch_decode([4, 5])
    ids, lengths = tok.batch_encode([])                           # an empty batch is well defined
    assert ids.shape == (0, 0) and lengths.shape == (0,)
