"""The English -> French grammar, the held-out split, the corpus reader and the tokenizer."""
import pytest

from numpy_transformer.data.translation import (
    ADJECTIVES,
    NOUNS,
    held_out_combinations,
    make_translation_pairs,
    make_translation_splits,
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
