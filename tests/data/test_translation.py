"""The English -> French grammar, the held-out split, the corpus reader and the tokenizer."""
import re
from pathlib import Path

import pytest

from numpy_transformer.data.translation import (
    ADJECTIVES,
    NOUNS,
    VERBS,
    describe_grammar,
    held_out_combinations,
    make_translation_pairs,
    make_translation_splits,
    noun_adjective_pairs,
    random_pair,
    read_parallel_corpus,
    tokenize,
    translate,
)


@pytest.mark.parametrize("english, french", [
    ("the small dog sleeps", "le petit chien dort"),
    ("the red car is fast", "la voiture rouge est rapide"),
    ("the small cats sleep", "les petits chats dorment"),
    ("a cat sees the big house", "un chat voit la grande maison"),
    ("these happy girls are tired", "ces filles heureuses sont fatiguées"),
    ("this white car is slow", "cette voiture blanche est lente"),
    ("two beautiful horses eat", "deux beaux chevaux mangent"),
    ("a woman likes the black boats", "une femme aime les bateaux noirs"),
])
def test_translate_word_order_and_agreement(english, french):
    assert translate(english) == french


def test_translate_rejects_sentences_outside_the_grammar():
    with pytest.raises(ValueError, match="sentence"):
        translate("the dog sleep")
    with pytest.raises(ValueError, match="sentence"):
        translate("the spaceship is red")


def test_pairs_are_deterministic_distinct_and_self_consistent():
    pairs = make_translation_pairs(200, seed=3)
    assert pairs == make_translation_pairs(200, seed=3)
    assert pairs != make_translation_pairs(200, seed=4)
    assert len({e for e, _ in pairs}) == 200
    for english, french in pairs:
        assert translate(english) == french  # the generator and the parser agree
    assert random_pair(5) == random_pair(5)


def test_splits_hold_out_noun_adjective_combinations():
    train, test = make_translation_splits(400, 60, seed=1)
    held = set(held_out_combinations(1))
    assert held and len(train) == 400 and len(test) == 60

    singular = {forms[0]: noun for noun, forms in NOUNS.items()}  # "mice" -> "mouse"

    def combinations(english):
        words = [singular.get(w, w) for w in english.split()]
        found = {(words[i + 1], w) for i, w in enumerate(words[:-1]) if w in ADJECTIVES}  # "the red dog"
        for i, word in enumerate(words):
            if word in ("is", "are"):
                found.add((words[i - 1], words[i + 1]))  # "the dog is red"
        return found

    for english, _ in train:
        assert not combinations(english) & held, english
    for english, _ in test:
        assert combinations(english) & held, english
    assert not {e for e, _ in train} & {e for e, _ in test}
    # every word of the test set was seen in training
    train_words = {w for e, _ in train for w in e.split()}
    assert all(w in train_words for e, _ in test for w in e.split())


def test_tokenize_splits_punctuation_and_lowercases():
    assert tokenize("Le chien dort.") == ["le", "chien", "dort", "."]
    assert tokenize("L\u2019homme, où?") == ["l'homme", ",", "où", "?"]
    assert tokenize("Hi!", lowercase=False) == ["Hi", "!"]


def test_read_parallel_corpus(tmp_path):
    path = tmp_path / "fra.txt"
    path.write_text("Go.\tVa !\tCC-BY 2.0 (France) Attribution: tatoeba.org\n\nHi.\tSalut !\n"
                    "Run!\tCours\u202f!\tCC-BY\n", encoding="utf-8")
    pairs = read_parallel_corpus(path)
    assert pairs == [("go.", "va !"), ("hi.", "salut !"), ("run!", "cours\u202f!")]
    assert read_parallel_corpus(path, max_pairs=2, lowercase=False) == [("Go.", "Va !"), ("Hi.", "Salut !")]


def test_read_parallel_corpus_names_file_and_line(tmp_path):
    path = tmp_path / "bad.txt"
    path.write_text("Go.\tVa !\n\nno tab here\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"bad\.txt, line 3"):
        read_parallel_corpus(path)


def test_read_parallel_corpus_refuses_bytes_that_are_not_utf8(tmp_path):
    path = tmp_path / "latin1.txt"
    path.write_bytes(b"Go.\tVa !\n" + "Caf\u00e9.\tCaf\u00e9.\n".encode("latin-1"))
    with pytest.raises(ValueError, match=r"latin1\.txt, line 2: byte 0xe9 at column 4 is not UTF-8"):
        read_parallel_corpus(path)


@pytest.mark.parametrize("line, side", [("hello\t", "French"), ("\tbonjour", "English"), ("  \t  \tCC-BY", "English")])
def test_read_parallel_corpus_refuses_a_pair_with_an_empty_side(tmp_path, line, side):
    path = tmp_path / "pairs.txt"
    path.write_text(f"Go.\tVa !\n{line}\n", encoding="utf-8")
    with pytest.raises(ValueError, match=rf"pairs\.txt, line 2: .* whose {side} side is empty"):
        read_parallel_corpus(path)


def test_read_parallel_corpus_names_a_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="nothing.txt"):
        read_parallel_corpus(tmp_path / "nothing.txt")


def test_noun_adjective_pairs_and_describe_grammar():
    assert noun_adjective_pairs("the red car is fast") == {("car", "red"), ("car", "fast")}
    assert noun_adjective_pairs("two small cats see a white horse") == {("cat", "small"), ("horse", "white")}
    with pytest.raises(ValueError, match="newspaper"):
        noun_adjective_pairs("the dog reads a newspaper")
    text = describe_grammar()
    for word in [*NOUNS, *ADJECTIVES, *VERBS, "these", "two"]:
        assert re.search(rf"\b{word}\b", text), word
    for english in ("the red car is fast", "the small cats sleep", "a cat sees the big house"):
        assert english in text and translate(english) in text  # each shape with its translation


def test_readme_lists_exactly_the_words_of_the_grammar():
    """README.md's "What the translator knows" list is the grammar's lexicon, word for word."""
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")

    def listed(label):
        match = re.search(rf"^- {label}: (.*?)(?=^- |^\n)", readme, flags=re.MULTILINE | re.DOTALL)
        assert match, f"README.md has no '- {label}:' line"
        return set(re.findall(r"[a-z]+", re.sub(r"\([^)]*\)", "", match.group(1)))) - {"and", "describe",
                                                                                           "animate", "nouns", "only"}

    assert listed("nouns") == set(NOUNS)
    assert listed("adjectives") == set(ADJECTIVES)
    assert listed("verbs") == set(VERBS)
    assert listed("determiners") == {"the", "a", "this", "these", "two"}
