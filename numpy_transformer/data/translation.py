"""English -> French sentence pairs: a small grammar that generates them, and a reader for real corpora.

The grammar is small enough to read in one screen and rich enough that translating it needs what a
Transformer learns: word order changes (most French adjectives follow the noun: "the red car" -> "la voiture
rouge"; a few precede it: "the small dog" -> "le petit chien"), agreement that depends on a word several
positions away (the noun's gender and number decide the determiner, the adjective's ending and the verb's:
"the small cats sleep" -> "les petits chats dorment"), and one English word with several French translations
("the" -> le / la / les).

Sentences are ``subject verb-phrase``:

    subject     = determiner [adjective] noun              (singular or plural)
    verb-phrase = intransitive verb                        "the dog sleeps"          -> "le chien dort"
                | is/are adjective                         "the red car is fast"     -> "la voiture rouge est rapide"
                | transitive verb  determiner [adjective] noun
                                                           "a cat sees the big house" -> "un chat voit la grande maison"

Every noun begins with a consonant, so French elision ("l'", "cet") never arises.

Public API:

- :func:`translate` -- the French of any English sentence of the grammar (e.g. "the small dog sleeps").
- :func:`describe_grammar` -- every word and sentence shape of the grammar, as text.
- :func:`noun_adjective_pairs` -- the (noun, adjective) combinations a sentence uses.
- :func:`random_pair` -- one random (English, French) pair.
- :func:`make_translation_pairs` -- ``n`` distinct pairs, deterministic given the seed.
- :func:`make_translation_splits` -- a training set and a test set whose (noun, adjective) combinations
  never occur in training: a test of generalization, not of memory.
- :func:`held_out_combinations` -- the (noun, adjective) combinations reserved for the test set.
- :func:`read_parallel_corpus` -- reads Tatoeba / Anki files of ``English<TAB>French[<TAB>attribution]`` lines.
- :func:`tokenize` -- lowercase and split punctuation from words.
"""
from __future__ import annotations

import os
import re
import textwrap
from dataclasses import dataclass

import numpy as np

__all__ = [
    "NOUNS",
    "ADJECTIVES",
    "VERBS",
    "translate",
    "describe_grammar",
    "noun_adjective_pairs",
    "random_pair",
    "make_translation_pairs",
    "make_translation_splits",
    "held_out_combinations",
    "read_parallel_corpus",
    "tokenize",
]

# ---------------------------------------------------------------------------------------------- lexicon
# noun: (English plural, French singular, French plural, gender, animate)
NOUNS = {
    "dog": ("dogs", "chien", "chiens", "m", True),
    "cat": ("cats", "chat", "chats", "m", True),
    "horse": ("horses", "cheval", "chevaux", "m", True),
    "boy": ("boys", "garçon", "garçons", "m", True),
    "girl": ("girls", "fille", "filles", "f", True),
    "woman": ("women", "femme", "femmes", "f", True),
    "mouse": ("mice", "souris", "souris", "f", True),
    "cow": ("cows", "vache", "vaches", "f", True),
    "car": ("cars", "voiture", "voitures", "f", False),
    "house": ("houses", "maison", "maisons", "f", False),
    "book": ("books", "livre", "livres", "m", False),
    "table": ("tables", "table", "tables", "f", False),
    "boat": ("boats", "bateau", "bateaux", "m", False),
    "train": ("trains", "train", "trains", "m", False),
    "flower": ("flowers", "fleur", "fleurs", "f", False),
    "chair": ("chairs", "chaise", "chaises", "f", False),
}

# adjective: (French m. sg., f. sg., m. pl., f. pl., placed before the noun, needs an animate noun)
ADJECTIVES = {
    "small": ("petit", "petite", "petits", "petites", True, False),
    "big": ("grand", "grande", "grands", "grandes", True, False),
    "beautiful": ("beau", "belle", "beaux", "belles", True, False),
    "young": ("jeune", "jeune", "jeunes", "jeunes", True, True),
    "red": ("rouge", "rouge", "rouges", "rouges", False, False),
    "black": ("noir", "noire", "noirs", "noires", False, False),
    "green": ("vert", "verte", "verts", "vertes", False, False),
    "white": ("blanc", "blanche", "blancs", "blanches", False, False),
    "blue": ("bleu", "bleue", "bleus", "bleues", False, False),
    "fast": ("rapide", "rapide", "rapides", "rapides", False, False),
    "slow": ("lent", "lente", "lents", "lentes", False, False),
    "happy": ("heureux", "heureuse", "heureux", "heureuses", False, True),
    "tired": ("fatigué", "fatiguée", "fatigués", "fatiguées", False, True),
}

# verb: (English plural, French 3rd singular, French 3rd plural, transitive)
VERBS = {
    "sleeps": ("sleep", "dort", "dorment", False),
    "eats": ("eat", "mange", "mangent", False),
    "runs": ("run", "court", "courent", False),
    "waits": ("wait", "attend", "attendent", False),
    "sees": ("see", "voit", "voient", True),
    "likes": ("like", "aime", "aiment", True),
    "watches": ("watch", "regarde", "regardent", True),
}

# English determiner -> (number, French for m, French for f)
DETERMINERS = {
    "the": ("sg", "le", "la"),
    "a": ("sg", "un", "une"),
    "this": ("sg", "ce", "cette"),
    "the+pl": ("pl", "les", "les"),
    "these": ("pl", "ces", "ces"),
    "two": ("pl", "deux", "deux"),
}
_DETERMINER_WORD = {"the+pl": "the"}  # the key "the+pl" is spelled "the" in English


@dataclass(frozen=True)
class _NounPhrase:
    determiner: str  # key of DETERMINERS
    adjective: str | None
    noun: str

    @property
    def plural(self) -> bool:
        return DETERMINERS[self.determiner][0] == "pl"

    def english(self) -> list[str]:
        noun = NOUNS[self.noun][0] if self.plural else self.noun
        adjective = [self.adjective] if self.adjective else []
        return [_DETERMINER_WORD.get(self.determiner, self.determiner)] + adjective + [noun]

    def french(self) -> list[str]:
        _, fr_sg, fr_pl, gender, _ = NOUNS[self.noun]
        determiner = DETERMINERS[self.determiner][1 if gender == "m" else 2]
        noun = fr_pl if self.plural else fr_sg
        if self.adjective is None:
            return [determiner, noun]
        adjective = _agree(self.adjective, gender, self.plural)
        before = ADJECTIVES[self.adjective][4]
        return [determiner, adjective, noun] if before else [determiner, noun, adjective]


def _agree(adjective: str, gender: str, plural: bool) -> str:
    """The French form of ``adjective`` agreeing with a noun of ``gender`` ("m"/"f") and number."""
    forms = ADJECTIVES[adjective]
    return forms[(2 if plural else 0) + (1 if gender == "f" else 0)]


@dataclass(frozen=True)
class _Sentence:
    subject: _NounPhrase
    verb: str | None = None  # a key of VERBS, or None for "is/are <predicate>"
    predicate: str | None = None  # an adjective after is/are
    obj: _NounPhrase | None = None  # object of a transitive verb

    def combinations(self) -> set[tuple[str, str]]:
        """Every (noun, adjective) pair in which the adjective describes the noun."""
        pairs = set()
        for phrase in (self.subject, self.obj):
            if phrase is not None and phrase.adjective:
                pairs.add((phrase.noun, phrase.adjective))
        if self.predicate:
            pairs.add((self.subject.noun, self.predicate))
        return pairs

    def english(self) -> str:
        words = self.subject.english()
        plural = self.subject.plural
        if self.verb is None:
            words += ["are" if plural else "is", self.predicate]
        else:
            words.append(VERBS[self.verb][0] if plural else self.verb)
            if self.obj is not None:
                words += self.obj.english()
        return " ".join(words)

    def french(self) -> str:
        words = self.subject.french()
        plural = self.subject.plural
        if self.verb is None:
            gender = NOUNS[self.subject.noun][3]
            words += ["sont" if plural else "est", _agree(self.predicate, gender, plural)]
        else:
            words.append(VERBS[self.verb][2 if plural else 1])
            if self.obj is not None:
                words += self.obj.french()
        return " ".join(words)


# ---------------------------------------------------------------------------------------------- parsing
_PLURAL_NOUNS = {forms[0]: noun for noun, forms in NOUNS.items()}
_PLURAL_VERBS = {forms[0]: verb for verb, forms in VERBS.items()}


def _parse_noun_phrase(words: list[str], start: int, sentence: str) -> tuple[_NounPhrase, int]:
    def fail(what):
        raise ValueError(f"sentence: got {sentence!r}; expected {what} at word {start + 1} (see the grammar "
                         "in numpy_transformer.data.translation)")

    if start >= len(words) or words[start] not in ("the", "a", "this", "these", "two"):
        fail("a determiner (the, a, this, these, two)")
    determiner = words[start]
    position = start + 1
    adjective = None
    if position < len(words) and words[position] in ADJECTIVES:
        adjective = words[position]
        position += 1
    if position >= len(words):
        fail("a noun")
    word = words[position]
    if word in NOUNS:
        noun, plural = word, False
    elif word in _PLURAL_NOUNS:
        noun, plural = _PLURAL_NOUNS[word], True
    else:
        fail(f"a noun (one of {', '.join(NOUNS)}), not {word!r}")
    if determiner == "the":
        determiner = "the+pl" if plural else "the"
    if (DETERMINERS[determiner][0] == "pl") != plural:
        fail(f"a {'plural' if DETERMINERS[determiner][0] == 'pl' else 'singular'} noun after {words[start]!r}")
    return _NounPhrase(determiner, adjective, noun), position + 1


def _parse(sentence: str) -> _Sentence:
    words = tokenize(sentence)
    if words and words[-1] in (".", "!"):
        words = words[:-1]
    subject, position = _parse_noun_phrase(words, 0, sentence)
    if position >= len(words):
        raise ValueError(f"sentence: got {sentence!r}; expected a verb after the subject")
    word = words[position]
    if word in ("is", "are"):
        if (word == "are") != subject.plural:
            raise ValueError(f"sentence: got {sentence!r}; expected {'are' if subject.plural else 'is'}")
        if position + 1 >= len(words) or words[position + 1] not in ADJECTIVES:
            raise ValueError(f"sentence: got {sentence!r}; expected an adjective after {word!r}")
        parsed, position = _Sentence(subject, predicate=words[position + 1]), position + 2
    else:
        verb = word if word in VERBS else _PLURAL_VERBS.get(word)
        if verb is None or (word in _PLURAL_VERBS) != subject.plural:
            raise ValueError(f"sentence: got {sentence!r}; expected a verb agreeing with the subject, not {word!r}")
        obj = None
        position += 1
        if VERBS[verb][3]:
            obj, position = _parse_noun_phrase(words, position, sentence)
        parsed = _Sentence(subject, verb=verb, obj=obj)
    if position != len(words):
        raise ValueError(f"sentence: got {sentence!r}; expected the sentence to end after word {position}")
    return parsed


def noun_adjective_pairs(sentence: str) -> set[tuple[str, str]]:
    """The (noun, adjective) combinations of an English sentence of the grammar ("the red car" gives
    ``("car", "red")``, and so does "the car is red"); raises ``ValueError`` as :func:`translate` does."""
    return _parse(sentence).combinations()


def describe_grammar() -> str:
    """Every word the grammar knows and every sentence shape it makes, as plain text (what the translator
    demo's ``--vocab`` prints)."""
    animate = [n for n, forms in NOUNS.items() if forms[4]]
    before = [a for a, forms in ADJECTIVES.items() if forms[4]]
    after = [a for a, forms in ADJECTIVES.items() if not forms[4]]
    animate_only = [a for a, forms in ADJECTIVES.items() if forms[5]]
    intransitive = [f"{v} ({forms[0]})" for v, forms in VERBS.items() if not forms[3]]
    transitive = [f"{v} ({forms[0]})" for v, forms in VERBS.items() if forms[3]]
    singular = [_DETERMINER_WORD.get(d, d) for d, forms in DETERMINERS.items() if forms[0] == "sg"]
    plural = [_DETERMINER_WORD.get(d, d) for d, forms in DETERMINERS.items() if forms[0] == "pl"]
    lines = [
        "Sentence shapes (a noun phrase is: determiner, an optional adjective, noun; only an animate noun can be "
        "the subject of a verb):",
        "  noun-phrase is/are adjective          the red car is fast -> la voiture rouge est rapide",
        "  noun-phrase verb                      the small cats sleep -> les petits chats dorment",
        "  noun-phrase verb noun-phrase          a cat sees the big house -> un chat voit la grande maison",
        f"Determiners: {', '.join(singular)} (singular); {', '.join(plural)} (plural)",
        f"Nouns (plural in brackets): {', '.join(f'{n} ({forms[0]})' for n, forms in NOUNS.items())}",
        f"  animate: {', '.join(animate)}",
        f"Adjectives: {', '.join(ADJECTIVES)}",
        f"  before the noun in French: {', '.join(before)}; after it: {', '.join(after)}",
        f"  only with an animate noun: {', '.join(animate_only)}",
        f"Verbs (plural in brackets): {', '.join(intransitive)}; with an object: {', '.join(transitive)}",
        "Capitals do not matter; punctuation is not part of the grammar.",
    ]
    return "\n".join(textwrap.fill(line, width=110, subsequent_indent="    ", break_on_hyphens=False)
                     for line in lines)


def translate(sentence: str) -> str:
    """The French translation of an English sentence of the grammar.

    >>> translate("the small dog sleeps")
    'le petit chien dort'
    >>> translate("the red car is fast")
    'la voiture rouge est rapide'

    Raises ``ValueError`` naming the first word that does not fit the grammar.
    """
    return _parse(sentence).french()


# ---------------------------------------------------------------------------------------------- sampling
def _random_noun_phrase(rng: np.random.Generator, noun: str | None = None, adjective: str | None = None,
                        allow_adjective: bool = True) -> _NounPhrase:
    """A random noun phrase; ``noun`` and ``adjective`` fix those words, else an adjective comes 6 times in 10."""
    if noun is None:
        noun = str(rng.choice(list(NOUNS)))
    determiner = str(rng.choice(list(DETERMINERS)))
    if adjective is None and allow_adjective and rng.random() < 0.6:
        options = [a for a, forms in ADJECTIVES.items() if NOUNS[noun][4] or not forms[5]]
        adjective = str(rng.choice(options))
    return _NounPhrase(determiner, adjective, noun)


def _random_sentence(rng: np.random.Generator, combination: tuple[str, str] | None = None) -> _Sentence:
    """A random sentence; with ``combination = (noun, adjective)`` one where that adjective describes that noun."""
    if combination is None:
        subject = _random_noun_phrase(rng)
        predicate = None
    elif rng.random() < 0.5:  # "the red dog ..."
        subject = _random_noun_phrase(rng, *combination)
        predicate = None
    else:  # "the dog is red"
        subject = _random_noun_phrase(rng, combination[0])
        predicate = combination[1]
    animate = NOUNS[subject.noun][4]
    kind = "predicate" if predicate else str(rng.choice(
        ["intransitive", "predicate", "transitive"] if animate else ["predicate"]))
    if kind == "predicate":
        if predicate is None:
            options = [a for a, f in ADJECTIVES.items() if (animate or not f[5]) and a != subject.adjective]
            predicate = str(rng.choice(options))
        return _Sentence(subject, predicate=predicate)
    transitive = kind == "transitive"
    verb = str(rng.choice([v for v, forms in VERBS.items() if forms[3] == transitive]))
    obj = _random_noun_phrase(rng) if transitive else None
    return _Sentence(subject, verb=verb, obj=obj)


def random_pair(rng: np.random.Generator | int | None = None) -> tuple[str, str]:
    """One random (English, French) sentence pair of the grammar."""
    rng = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
    sentence = _random_sentence(rng)
    return sentence.english(), sentence.french()


def _valid_combinations() -> list[tuple[str, str]]:
    """Every (noun, adjective) pair the grammar allows (animate-only adjectives go with animate nouns)."""
    return [(n, a) for n, nf in NOUNS.items() for a, af in ADJECTIVES.items() if nf[4] or not af[5]]


def held_out_combinations(seed: int = 0, fraction: float = 0.15) -> list[tuple[str, str]]:
    """The (noun, adjective) combinations kept out of training by :func:`make_translation_splits`.

    Chosen at random given ``seed``, but every noun and every adjective still occurs in training with other
    partners, so the test asks for a new combination of known words.
    """
    if not 0.0 < fraction < 0.5:
        raise ValueError(f"fraction: got {fraction!r}; expected a number in (0, 0.5)")
    rng = np.random.default_rng([seed, 7919])
    combos = _valid_combinations()
    order = rng.permutation(len(combos))
    target = max(1, int(round(fraction * len(combos))))
    held, nouns_left, adjectives_left = [], {}, {}
    for n, a in combos:
        nouns_left[n] = nouns_left.get(n, 0) + 1
        adjectives_left[a] = adjectives_left.get(a, 0) + 1
    for index in order:
        n, a = combos[index]
        if nouns_left[n] > 1 and adjectives_left[a] > 1:  # keep each word in some training combination
            held.append((n, a))
            nouns_left[n] -= 1
            adjectives_left[a] -= 1
            if len(held) == target:
                break
    return sorted(held)


def make_translation_pairs(n: int, seed: int = 0) -> list[tuple[str, str]]:
    """``n`` distinct random (English, French) pairs, the same for the same seed."""
    return _sample(n, np.random.default_rng(seed), forbidden=set(), exclude=set())


def _sample(n: int, rng: np.random.Generator, forbidden: set, exclude: set,
            required: list | None = None) -> list[tuple[str, str]]:
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
        raise ValueError(f"n: got {n!r}; expected a non-negative integer")
    pairs, seen = [], set(exclude)
    attempts = 0
    while len(pairs) < n:
        attempts += 1
        if attempts > 50 * n + 1000:
            raise ValueError(f"n: got {n}; the grammar could not produce that many distinct sentences")
        combination = required[int(rng.integers(len(required)))] if required else None
        sentence = _random_sentence(rng, combination)
        if forbidden and sentence.combinations() & forbidden:
            continue
        english = sentence.english()
        if english in seen:
            continue
        seen.add(english)
        pairs.append((english, sentence.french()))
    return pairs


def make_translation_splits(n_train: int, n_test: int, seed: int = 0, held_out_fraction: float = 0.15):
    """A training set and a test set that asks for combinations never seen in training.

    The test sentences each contain at least one (noun, adjective) combination from
    :func:`held_out_combinations` (as "the red dog" or "the dog is red"); no training sentence contains any
    of them. No sentence is in both sets.

    Returns:
        (train_pairs, test_pairs): lists of (English, French) strings
    """
    held_out = held_out_combinations(seed, held_out_fraction)
    rng = np.random.default_rng(seed)
    train = _sample(n_train, rng, forbidden=set(held_out), exclude=set())
    test = _sample(n_test, rng, forbidden=set(), exclude={e for e, _ in train}, required=held_out)
    return train, test


# ---------------------------------------------------------------------------------------------- real corpora
_TOKEN = re.compile(r"\w+(?:'\w+)*|[^\w\s]")


def tokenize(text: str, lowercase: bool = True) -> list[str]:
    """Split ``text`` into words and punctuation marks: "Le chien dort." -> ["le", "chien", "dort", "."].

    A word keeps its inner apostrophes ("l'homme", "don't"); curly apostrophes become straight ones.
    """
    text = text.replace("\u2019", "'")
    if lowercase:
        text = text.lower()
    return _TOKEN.findall(text)


def read_parallel_corpus(path, max_pairs: int | None = None, lowercase: bool = True) -> list[tuple[str, str]]:
    """Read ``English<TAB>French[<TAB>attribution]`` lines (the Tatoeba / manythings.org Anki format).

    Blank lines are skipped; any columns after the second (attribution) are ignored. A line with no tab, with
    an empty English or French side (``"hello<TAB>"``), or that is not UTF-8 text is refused: the error names
    the file and the line, so that it can be mended; a corpus is not silently shortened.

    Inputs:
        path: the text file (UTF-8)
        max_pairs: stop after this many pairs (None: all)
        lowercase: lowercase both sides

    Returns:
        a list of (English, French) strings, stripped of surrounding spaces

    Raises ``ValueError`` naming the file and line number of a bad line, and ``FileNotFoundError`` (an
    ``OSError``) naming a file that cannot be opened.
    """
    if max_pairs is not None and (isinstance(max_pairs, bool) or not isinstance(max_pairs, int) or max_pairs < 0):
        raise ValueError(f"max_pairs: got {max_pairs!r}; expected None or a non-negative integer")
    name = os.fspath(path)
    pairs = []
    with open(name, "rb") as handle:
        for number, raw in enumerate(handle, start=1):
            if max_pairs is not None and len(pairs) >= max_pairs:
                break
            try:
                line = raw.decode("utf-8-sig" if number == 1 else "utf-8")
            except UnicodeDecodeError as error:
                raise ValueError(f"{name}, line {number}: byte 0x{raw[error.start]:02x} at column {error.start + 1} "
                                 "is not UTF-8 text; expected a UTF-8 file (re-save it as UTF-8)") from None
            line = line.rstrip("\r\n")
            if not line.strip():
                continue
            fields = line.split("\t")
            if len(fields) < 2:
                raise ValueError(f"{name}, line {number}: got {line[:60]!r} with no tab; expected "
                                 "'English<TAB>French[<TAB>attribution]'")
            english, french = fields[0].strip(), fields[1].strip()
            if not english or not french:
                side = "English" if not english else "French"
                raise ValueError(f"{name}, line {number}: got {line[:60]!r} whose {side} side is empty; expected "
                                 "text on both sides of the tab")
            if lowercase:
                english, french = english.lower(), french.lower()
            pairs.append((english, french))
    return pairs
