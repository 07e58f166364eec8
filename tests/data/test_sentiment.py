"""The built-in movie-review sentences, the stratified split and the IMDb folder reader."""
import numpy as np
import pytest

from numpy_transformer.data.sentiment import load_sentiment_sentences, read_imdb_folder, train_test_split


def test_builtin_sentences_are_balanced_varied_and_labelled():
    texts, labels = load_sentiment_sentences()
    assert 400 <= len(texts) <= 600
    assert labels.dtype == np.int64 and set(labels.tolist()) == {0, 1}
    assert labels.sum() == len(labels) // 2
    assert len(set(texts)) == len(texts)
    contrasts = [t for t in texts if " but " in t]
    assert len(contrasts) > 50
    assert sum("not" in t.split() for t in texts) > 20


def test_train_test_split_is_seeded_disjoint_and_stratified():
    texts, labels = load_sentiment_sentences()
    (train_x, train_y), (test_x, test_y) = train_test_split(texts, labels, test_fraction=0.2, seed=7)
    assert len(train_x) + len(test_x) == len(texts)
    assert not set(train_x) & set(test_x)
    assert abs(test_y.mean() - 0.5) < 0.02 and abs(train_y.mean() - 0.5) < 0.02
    assert len(test_x) == round(0.2 * len(texts)) == 96
    again = train_test_split(texts, labels, test_fraction=0.2, seed=7)
    assert again[1][0] == test_x
    assert train_test_split(texts, labels, seed=8)[1][0] != test_x
    for text, label in zip(test_x, test_y, strict=True):  # labels travel with their texts
        assert labels[texts.index(text)] == label
    with pytest.raises(ValueError, match="labels"):
        train_test_split(texts, labels[:-1])


def _write_imdb(root):
    for split in ("train", "test"):
        for name, count in (("pos", 3), ("neg", 2)):
            folder = root / split / name
            folder.mkdir(parents=True)
            for i in range(count):
                (folder / f"{i}_{7 if name == 'pos' else 2}.txt").write_text(
                    f"{split} {name} review {i}.<br />Second line.", encoding="utf-8")


def test_read_imdb_folder(tmp_path):
    _write_imdb(tmp_path)
    texts, labels = read_imdb_folder(tmp_path, split="test")
    assert labels.tolist() == [1, 1, 1, 0, 0]
    assert texts[0] == "test pos review 0. Second line."
    texts, labels = read_imdb_folder(tmp_path, "train", max_per_class=1)
    assert texts == ["train pos review 0. Second line.", "train neg review 0. Second line."]
    assert labels.tolist() == [1, 0]


def test_read_imdb_folder_names_the_missing_folder(tmp_path):
    (tmp_path / "train" / "pos").mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match=r"train[/\\]neg"):
        read_imdb_folder(tmp_path)
    with pytest.raises(ValueError, match="split"):
        read_imdb_folder(tmp_path, split="validation")
