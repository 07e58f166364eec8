"""Train a Transformer to translate English into French, on a laptop CPU, in under a minute.

The model is the encoder-decoder of "Attention Is All You Need", every forward and backward pass written out
in NumPy (numpy_transformer.models.Seq2SeqTransformer). The data comes from a small English -> French grammar
(numpy_transformer.data.translation): a few thousand sentences such as

    the red car is fast          ->  la voiture rouge est rapide
    the small cats sleep         ->  les petits chats dorment
    a cat sees the big house     ->  un chat voit la grande maison

so the model must learn word order (most French adjectives follow the noun), agreement (the noun's gender and
number choose the determiner and the endings of the adjective and the verb) and one English word with several
French words ("the" -> le / la / les). The test sentences each hold a (noun, adjective) combination that never
occurs in training ("red" with "horse", say): the score measures generalization, not memory.

Training uses teacher forcing: the decoder reads the reference translation shifted right (<bos> la voiture
...) and predicts every next word at once, each position seeing only the words before it (the causal mask).
Translating a new sentence cannot do that, since there is no reference: the decoder starts from <bos>, picks a
word, appends it to its own input and runs again, one word per step, until it produces <eos>. The demo prints
one sentence decoded this way, step by step, with the words the model weighed at each step.

Then it translates the held-out sentences greedily and by beam search, scores them (exact match, token
accuracy, corpus BLEU), draws the loss curve and the cross-attention of a sentence whose adjective moves, and
saves the model and its vocabularies, so that

    python demos/translate.py --translate "the small dog sleeps"

translates any sentence with the saved model, and ``--vocab`` lists the words and sentence shapes it knows.
``--pairs FILE`` trains on a real tab-separated corpus instead (the Tatoeba / manythings.org Anki format
``English<TAB>French[<TAB>attribution]``, e.g. fra.txt).
"""
import os

# The matrices here are small (a few hundred rows of 64 numbers): one BLAS thread does them fastest, and
# spares the thread hand-offs that cost more than they save. Set before NumPy loads; the environment wins.
for _variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_variable, "1")

import json  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402
from _common import Progress, done, fail, integer, output_path, save, section, setup  # noqa: E402

from numpy_transformer.data.metrics import corpus_bleu, exact_match, token_accuracy  # noqa: E402
from numpy_transformer.data.translation import (  # noqa: E402
    describe_grammar,
    held_out_combinations,
    make_translation_splits,
    noun_adjective_pairs,
    read_parallel_corpus,
    translate,
)
from numpy_transformer.io.checkpoint import load_checkpoint, load_config, save_checkpoint  # noqa: E402
from numpy_transformer.models import Seq2SeqTransformer  # noqa: E402
from numpy_transformer.optim import AdamW, clip_grad_norm_, warmup_linear_decay  # noqa: E402
from numpy_transformer.text import WordTokenizer  # noqa: E402
from numpy_transformer.viz import attention_heads_grid, attention_heatmap, loss_curve  # noqa: E402

NAME = "translate"
DESCRIPTION = "an encoder-decoder Transformer learns English -> French"
CHECKPOINT = "translator.npz"
VOCABULARIES = {"source": "vocab_en.json", "target": "vocab_fr.json"}
ALIGNMENT_SENTENCE = "the red car is fast"  # the adjective moves: "la voiture rouge est rapide"

# The default run: sizes and schedule chosen so that it trains in well under a minute on a 2-core CPU and
# still translates the held-out sentences (new noun-adjective combinations) almost perfectly.
# (Measured: a width of 32 generalizes to the held-out combinations better than 64 and costs less per step;
# 1200 steps at a peak learning rate of 7e-3 reach what 2000 steps at 2e-3 did, for seeds 0, 1 and 2 alike.)
DEFAULT = {"d_model": 32, "layers": 2, "dim_feedforward": 64, "steps": 1200, "batch": 64, "lr": 7e-3,
           "n_train": 4000, "n_test": 400}
QUICK = {"d_model": 32, "layers": 1, "dim_feedforward": 64, "steps": 40, "batch": 64, "lr": 1e-3,
         "n_train": 300, "n_test": 40}


def add_options(parser):
    """This demo's own options, beside the shared --quick, --out and --seed."""
    parser.add_argument("--translate", metavar="SENTENCE",
                        help="translate SENTENCE with the model saved in --out (train first)")
    parser.add_argument("--vocab", action="store_true",
                        help="list the words and sentence shapes the translator knows, and exit")
    parser.add_argument("--pairs", metavar="FILE",
                        help="train on a tab-separated English<TAB>French corpus instead of the grammar")
    parser.add_argument("--max-pairs", type=integer(10), default=20000,
                        help="read at most this many pairs of --pairs FILE (default 20000)")
    parser.add_argument("--steps", type=integer(1), default=None,
                        help=f"training steps (default {DEFAULT['steps']}; --quick {QUICK['steps']})")
    parser.add_argument("--beam", type=integer(1, 64), default=4, help="beam width of the beam search (default 4)")


# ------------------------------------------------------------------------------------------------ data
def load_data(args, sizes):
    """(train_pairs, test_pairs, what): the grammar's split, or a real corpus split 90 / 10 at random."""
    if args.pairs:
        try:
            pairs = read_parallel_corpus(args.pairs, max_pairs=args.max_pairs)
        except OSError as error:
            fail(f"--pairs: cannot read {args.pairs}: {error.strerror or error}")
        except ValueError as error:
            fail(f"--pairs: {error}")
        if len(pairs) < 10:
            fail(f"--pairs: {args.pairs} holds {len(pairs)} pairs; expected at least 10")
        order = np.random.default_rng(args.seed).permutation(len(pairs))
        n_test = max(2, len(pairs) // 10)
        test = [pairs[i] for i in order[:n_test]]
        train = [pairs[i] for i in order[n_test:]]
        return train, test, f"the corpus {args.pairs}"
    train, test = make_translation_splits(sizes["n_train"], sizes["n_test"], seed=args.seed)
    return train, test, "the English -> French grammar (numpy_transformer.data.translation)"


def save_vocabulary(tokenizer, path):
    with open(path, "w", encoding="utf-8") as handle:
        json.dump({"lowercase": tokenizer.lowercase, "tokens": tokenizer.itos}, handle, ensure_ascii=False,
                  indent=0)


def load_vocabulary(path):
    with open(path, encoding="utf-8") as handle:
        saved = json.load(handle)
    tokenizer = WordTokenizer(lowercase=saved["lowercase"])
    tokenizer.itos = list(saved["tokens"])
    tokenizer.stoi = {token: i for i, token in enumerate(tokenizer.itos)}
    return tokenizer


def trim(ids):
    """Drop the columns that are padding in every row: (B, L) -> (B, L')."""
    width = max(1, int((ids != 0).sum(axis=1).max()))
    return ids[:, :width]


# ------------------------------------------------------------------------------------------------ model
def build_model(config):
    return Seq2SeqTransformer(
        config["source_vocab_size"], config["target_vocab_size"], d_model=config["d_model"],
        nhead=config["nhead"], num_encoder_layers=config["layers"], num_decoder_layers=config["layers"],
        dim_feedforward=config["dim_feedforward"], dropout=config["dropout"], max_len=config["max_len"],
        pad_id=0, label_smoothing=config["label_smoothing"], dtype=np.float32, rng=config["seed"])


def translate_batch(model, source_tokenizer, target_tokenizer, sentences, max_len, beam=None):
    """Translate English strings; greedy decoding, or beam search of width ``beam``."""
    src, _ = source_tokenizer.batch_encode(sentences)               # (B, S)
    bos, eos = target_tokenizer.bos_id, target_tokenizer.eos_id
    if beam is None:
        ids = model.greedy_decode(src, max_len=max_len, bos_id=bos, eos_id=eos)  # (B, 1 + n)
    else:
        ids, _ = model.beam_search(src, beam_width=beam, max_len=max_len, bos_id=bos, eos_id=eos)
    return [target_tokenizer.decode(row) for row in ids], ids


def translate_in_chunks(model, source_tokenizer, target_tokenizer, sentences, max_len, beam=None, chunk=200):
    outputs = []
    for start in range(0, len(sentences), chunk):
        outputs += translate_batch(model, source_tokenizer, target_tokenizer, sentences[start:start + chunk],
                                   max_len, beam)[0]
    return outputs


def aligned_token_accuracy(hypotheses, references, target_tokenizer):
    """Fraction of reference words (and the final <eos>) that the hypothesis has at the same position."""
    hyp, _ = target_tokenizer.batch_encode(hypotheses, add_eos=True)
    ref, _ = target_tokenizer.batch_encode(references, add_eos=True)
    width = max(hyp.shape[1], ref.shape[1])
    hyp = np.pad(hyp, ((0, 0), (0, width - hyp.shape[1])))         # (B, L) both, padded with 0
    ref = np.pad(ref, ((0, 0), (0, width - ref.shape[1])))
    return token_accuracy(hyp, ref, pad_id=target_tokenizer.pad_id)


def decode_step_by_step(model, source_tokenizer, target_tokenizer, sentence, max_len, top=3):
    """Greedy decoding of one sentence written out: at each step, the decoder's input and its top choices."""
    src, _ = source_tokenizer.batch_encode([sentence])              # (1, S)
    model.eval()
    memory, src_padding = model.encode(src)                         # (1, S, D), (1, S)
    tokens = np.array([[target_tokenizer.bos_id]])                  # (1, 1): <bos>
    for step in range(1, max_len + 1):
        logits = model.decode(tokens, memory, src_padding)[0, -1]   # (1, t, V) -> (V,): scores of the next word
        logits[target_tokenizer.pad_id] = -np.inf                   # padding is not a word
        probabilities = np.exp(logits - logits.max())
        probabilities /= probabilities.sum()                        # (V,) softmax
        best = np.argsort(-probabilities)[:top]
        reads = " ".join(target_tokenizer.itos[i] for i in tokens[0])
        choices = ", ".join(f"{target_tokenizer.itos[i]} {probabilities[i]:.2f}" for i in best)
        print(f"  step {step}: the decoder reads [{reads}]\n          next word: {choices}  -> "
              f"{target_tokenizer.itos[best[0]]}")
        tokens = np.concatenate([tokens, best[:1][None]], axis=1)   # (1, t) -> (1, t + 1): append the pick
        if best[0] == target_tokenizer.eos_id:
            break
    model.train()
    return target_tokenizer.decode(tokens[0])


# ------------------------------------------------------------------------------------------------ commands
def saved_files(out):
    return os.path.join(out, CHECKPOINT), [os.path.join(out, name) for name in VOCABULARIES.values()]


def out_option(args):
    return "" if args.out == os.path.join("demos_output", NAME) else f" --out {args.out}"


def load_translator(args):
    """The saved model, its config and its two tokenizers; or a message and exit status 1."""
    path, vocab_paths = saved_files(args.out)
    if not os.path.exists(path) or not all(os.path.exists(p) for p in vocab_paths):
        print(f"No trained translator in {os.path.abspath(args.out)} (expected {CHECKPOINT} and "
              f"{' and '.join(VOCABULARIES.values())}).\nTrain one first:\n\n"
              f"    python demos/translate.py{out_option(args)}")
        raise SystemExit(1)
    config = load_config(path)
    model = build_model(config)
    load_checkpoint(path, model)
    model.eval()
    source_tokenizer, target_tokenizer = (load_vocabulary(p) for p in vocab_paths)
    return model, config, source_tokenizer, target_tokenizer


def vocab_command(args):
    """--vocab: the words and the sentence shapes the translator was trained on."""
    path, _ = saved_files(args.out)
    if not os.path.exists(path):
        print(f"(No trained translator in {os.path.abspath(args.out)} yet; the default training data is this "
              "grammar.)\n")
        print(describe_grammar())
        return
    _, config, source_tokenizer, target_tokenizer = load_translator(args)
    english = source_tokenizer.itos[4:]
    if config.get("data", "grammar") == "grammar":
        print(f"The translator in {os.path.abspath(args.out)} was trained on the grammar of "
              "numpy_transformer.data.translation:\n")
        print(describe_grammar())
        print(f"\n{len(english)} English words in its vocabulary: {' '.join(sorted(english))}")
    else:
        print(f"The translator in {os.path.abspath(args.out)} was trained on {config.get('data')}; "
              f"its {len(english)} English words:\n{' '.join(sorted(english))}")
    print(f"{len(target_tokenizer.itos) - 4} French words: {' '.join(sorted(target_tokenizer.itos[4:]))}")


def translate_command(args):
    """--translate SENTENCE with the saved model: greedy and beam search, and plain notes on what it knows."""
    sentence = args.translate.strip()
    if not sentence:
        fail('--translate: got an empty sentence; expected English words, e.g. --translate "the small dog sleeps"')
    model, config, source_tokenizer, target_tokenizer = load_translator(args)
    words = source_tokenizer.split(sentence.lower() if source_tokenizer.lowercase else sentence)
    if not words:
        fail(f"--translate: got {args.translate!r}, which holds no words; expected English words")
    if len(words) > config["max_len"]:
        fail(f"--translate: got a sentence of {len(words)} words; this translator reads at most "
             f"{config['max_len']} (the length of its position table, max_len)")
    unknown = [w for w in words if w not in source_tokenizer.stoi]
    if unknown:
        print(f"  note: never seen in training, read as <unk>: {', '.join(unknown)}")
    if config.get("data", "grammar") == "grammar":
        try:
            new = noun_adjective_pairs(sentence) & set(map(tuple, held_out_combinations(config["seed"])))
        except ValueError as error:
            reason = str(error).split("; ", 1)[-1].replace(" (see the grammar in numpy_transformer.data.translation)",
                                                            "")
            print(f"  note: this sentence is outside what the model was trained on ({reason}).\n"
                  "        It will answer anyway, but do not trust the answer; --vocab lists the words and "
                  "sentence shapes it knows.")
        else:
            if new:
                print("  note: " + " and ".join(f"'{a} {n}'" for n, a in sorted(new)) +
                      " never occurred in training (held out to test new combinations)")
            print(f"  the grammar's own translation: {translate(sentence)}")
    max_len = config["max_target_len"]
    greedy = translate_batch(model, source_tokenizer, target_tokenizer, [sentence], max_len)[0][0]
    beam = translate_batch(model, source_tokenizer, target_tokenizer, [sentence], max_len, beam=args.beam)[0][0]
    print(f"  English:              {sentence}")
    print(f"  French (greedy):      {greedy}")
    print(f"  French (beam of {args.beam}):   {beam}")


# ------------------------------------------------------------------------------------------------ training
def main():
    args = setup(NAME, DESCRIPTION, add_options)
    if args.vocab:
        vocab_command(args)
        return
    if args.translate is not None:
        translate_command(args)
        return
    started = time.perf_counter()
    sizes = dict(QUICK if args.quick else DEFAULT)
    if args.steps is not None:
        sizes["steps"] = args.steps
    rng = np.random.default_rng(args.seed)

    section("1. the data")
    train_pairs, test_pairs, what = load_data(args, sizes)
    print(f"  {len(train_pairs)} training pairs and {len(test_pairs)} held-out pairs from {what}")
    for english, french in train_pairs[:4]:
        print(f"    {english:32s} -> {french}")
    if not args.pairs:
        held = held_out_combinations(args.seed)
        print(f"  {len(held)} (noun, adjective) combinations never occur in training, and every test sentence "
              f"uses one, e.g. {', '.join(f'{a} {n}' for n, a in held[:4])}")
    lowercase = True  # the grammar is lowercase already; a real corpus is lowercased by read_parallel_corpus
    source_tokenizer = WordTokenizer(lowercase=lowercase).build_vocab([e for e, _ in train_pairs])
    target_tokenizer = WordTokenizer(lowercase=lowercase).build_vocab([f for _, f in train_pairs])
    train_src, _ = source_tokenizer.batch_encode([e for e, _ in train_pairs])           # (N, S)
    train_tgt, _ = target_tokenizer.batch_encode([f for _, f in train_pairs], add_bos=True, add_eos=True)
    test_src, _ = source_tokenizer.batch_encode([e for e, _ in test_pairs])
    test_tgt, _ = target_tokenizer.batch_encode([f for _, f in test_pairs], add_bos=True, add_eos=True)
    print(f"  vocabularies: {source_tokenizer.vocab_size} English and {target_tokenizer.vocab_size} French "
          "tokens (ids 0-3: <pad> <bos> <eos> <unk>)")

    section("2. the model")
    longest = max(train_src.shape[1], test_src.shape[1], train_tgt.shape[1], test_tgt.shape[1])
    config = {
        "source_vocab_size": source_tokenizer.vocab_size, "target_vocab_size": target_tokenizer.vocab_size,
        "d_model": sizes["d_model"], "nhead": 4, "layers": sizes["layers"],
        "dim_feedforward": sizes["dim_feedforward"], "dropout": 0.1, "label_smoothing": 0.1,
        "max_len": int(max(64, longest + 8)), "max_target_len": int(max(train_tgt.shape[1], test_tgt.shape[1]) + 4),
        "seed": args.seed, "data": f"the corpus {os.path.basename(args.pairs)}" if args.pairs else "grammar",
    }
    model = build_model(config)
    print(f"  Seq2SeqTransformer: d_model {config['d_model']}, {config['nhead']} heads, {config['layers']} "
          f"encoder + {config['layers']} decoder layers, feed-forward {config['dim_feedforward']}, dropout "
          f"{config['dropout']}, float32: {model.num_parameters():,} parameters")

    section("3. training with teacher forcing")
    example = target_tokenizer.split(train_pairs[0][1])
    print(f"  each French sentence is read shifted right and predicted shifted left, e.g. {train_pairs[0][1]!r}:")
    print(f"    decoder input:  {' '.join(['<bos>'] + example)}")
    print(f"    targets:        {' '.join(example + ['<eos>'])}")
    print("  all positions in one pass: position t reads the REFERENCE words before it (the causal mask hides the "
          "rest),\n  so one step trains every next-word prediction of the batch at once")
    steps, batch_size, peak_lr = sizes["steps"], sizes["batch"], sizes["lr"]
    warmup = max(1, steps // 10)
    optimizer = AdamW(model.parameters(), lr=peak_lr, weight_decay=0.01)
    schedule = warmup_linear_decay(optimizer, warmup_steps=warmup, total_steps=steps)
    print(f"  {steps} steps of {batch_size} sentence pairs; label smoothing 0.1; AdamW with the learning rate up "
          f"to {peak_lr} over {warmup} steps, then down to 0; gradients clipped at norm 1.0")
    progress = Progress(total=steps, every=max(1, steps // 10))
    losses, val_steps, val_losses = [], [], []
    val_every = max(1, steps // 10)
    val_rows = np.arange(min(len(test_pairs), 200))
    for step in range(1, steps + 1):
        rows = rng.integers(0, len(train_pairs), batch_size)
        src, tgt = trim(train_src[rows]), trim(train_tgt[rows])     # (B, S), (B, T + 1)
        logits = model(src, tgt[:, :-1])                            # (B, T, V): reads <bos> y1 .. y_{T-1}
        loss, dlogits = model.loss(logits, tgt[:, 1:])              # predicts y1 .. y_T <eos>
        model.zero_grad()
        model.backward(dlogits)
        clip_grad_norm_(model.parameters(), max_norm=1.0)
        optimizer.step()
        schedule.step()
        losses.append(float(loss))
        if step % val_every == 0 or step == steps:
            model.eval()
            vsrc, vtgt = trim(test_src[val_rows]), trim(test_tgt[val_rows])
            val_loss, _ = model.loss(model(vsrc, vtgt[:, :-1]), vtgt[:, 1:])
            model.train()
            val_steps.append(step)
            val_losses.append(float(val_loss))
        progress.update(step, float(np.mean(losses[-20:])), lr=schedule.get_last_lr()[0],
                        **({"held_out_loss": val_losses[-1]} if val_steps and val_steps[-1] == step else {}))
    train_seconds = time.perf_counter() - progress.start
    print(f"  trained in {train_seconds:.1f} s")
    window = min(20, len(losses))
    smoothed = np.convolve(losses, np.ones(window) / window, mode="valid")
    fig = loss_curve(np.arange(window, len(losses) + 1), smoothed, val_steps=val_steps, val=val_losses,
                     train_label=f"training batches (mean of {window} steps), dropout on",
                     val_label=f"{len(val_rows)} held-out test sentences, dropout off",
                     title="Translator training: cross-entropy per French token\n"
                           "(held out runs lower: measured with dropout off)",
                     ylabel="cross-entropy per French token")
    save(fig, args.out, "translate_loss.png")

    section("4. translating the held-out sentences")
    model.eval()
    english = [e for e, _ in test_pairs]
    references = [" ".join(target_tokenizer.split(f.lower() if lowercase else f)) for _, f in test_pairs]
    max_len = config["max_target_len"]
    t0 = time.perf_counter()
    greedy = translate_in_chunks(model, source_tokenizer, target_tokenizer, english, max_len)
    greedy_seconds = time.perf_counter() - t0
    t0 = time.perf_counter()
    beam = translate_in_chunks(model, source_tokenizer, target_tokenizer, english, max_len, beam=args.beam)
    beam_seconds = time.perf_counter() - t0
    print(f"  greedy decoding: {greedy_seconds:.1f} s; beam search (width {args.beam}): {beam_seconds:.1f} s "
          f"for {len(english)} sentences")
    for i in range(min(6, len(english))):
        mark = "ok " if greedy[i] == references[i] else "MISS"
        print(f"  [{mark}] {english[i]}\n         reference: {references[i]}\n         greedy:    {greedy[i]}"
              f"\n         beam:      {beam[i]}")
    scores = {}
    for name, hypotheses in (("greedy", greedy), ("beam", beam)):
        scores[name] = (exact_match(hypotheses, references),
                        aligned_token_accuracy(hypotheses, references, target_tokenizer),
                        corpus_bleu(references, hypotheses, smooth=True))
    print(f"\n  {'':8s} exact match   token accuracy   BLEU (corpus, smoothed)")
    for name, (em, acc, bleu) in scores.items():
        print(f"  {name:8s} {em:11.3f}   {acc:14.3f}   {100 * bleu:6.1f}")
    differ = [i for i in range(len(english)) if greedy[i] != beam[i]]
    print(f"  greedy and beam search differ on {len(differ)} of {len(english)} sentences: beam search finds the "
          "translation the model itself\n  finds most probable as a whole, which is not always the reference")
    for i in differ[:3]:
        print(f"    {english[i]}\n      reference: {references[i]}\n      greedy:    {greedy[i]}\n"
              f"      beam:      {beam[i]}")
    print(f"\n  held-out exact match: {scores['greedy'][0]:.3f}")
    print(f"  held-out token accuracy: {scores['greedy'][1]:.3f}")
    print(f"  held-out BLEU: {100 * scores['greedy'][2]:.1f}")
    print(f"  held-out exact match (beam): {scores['beam'][0]:.3f}")
    print(f"  held-out BLEU (beam): {100 * scores['beam'][2]:.1f}")
    print(f"  held-out sentences where beam and greedy differ: {len(differ)}")

    sentence = ALIGNMENT_SENTENCE if not args.pairs else english[0]
    section("5. decoding one sentence, step by step")
    print(f"  {sentence!r}: the decoder starts from <bos> and appends its own most probable word each step")
    decode_step_by_step(model, source_tokenizer, target_tokenizer, sentence, max_len)

    section("6. where the decoder looks: cross-attention")
    produced, ids = translate_batch(model, source_tokenizer, target_tokenizer, [sentence], max_len)
    # the decoder reads <bos> and the words it produced; row t of the weights is the step that produced
    # word t + 1 (the last row produced <eos>)
    tgt_in = ids[:, : 1 + len(produced[0].split())]                 # (1, T): <bos> w1 .. wn
    out_tokens = produced[0].split() + ["<eos>"]                    # T labels: w1 .. wn <eos>
    src, _ = source_tokenizer.batch_encode([sentence])              # (1, S)
    src_tokens = [source_tokenizer.itos[i] for i in src[0]]
    unseen = not args.pairs and ("car", "red") in held_out_combinations(args.seed)
    print(f"  {sentence!r} -> {produced[0]!r}" + ("  ('red car' never occurs in training)" if unseen else ""))
    last = config["layers"] - 1
    for layer in range(config["layers"]):
        weights = model.cross_attention_weights(src, tgt_in, layer=layer)[0]  # (H, T, S)
        layer_name = f"decoder layer {layer}" + (" (the last)" if layer == last and layer else "")
        fig = attention_heatmap(weights.mean(axis=0), out_tokens, src_tokens,
                                title=f"Cross-attention, {layer_name},\nmean of {config['nhead']} heads")
        fig.axes[0].set_ylabel("French word being produced")
        fig.axes[0].set_xlabel("English word attended to")
        save(fig, args.out, f"translate_cross_attention_layer{layer}.png")
        if layer == last:
            fig = attention_heads_grid(weights, out_tokens, key_tokens=src_tokens, layer=layer,
                                       title=f"Cross-attention of every head, {layer_name}: \"{sentence}\" -> "
                                             f"\"{produced[0]}\"\nrows: the French word being produced; columns: "
                                             "the English words it looks at")
            save(fig, args.out, "translate_cross_attention_heads.png")
            strongest = weights.mean(axis=0).argmax(axis=1)
            print(f"  {layer_name}, counted from 0: the English word each French word attends to most:\n    "
                  + ", ".join(f"{o} <- {src_tokens[j]}" for o, j in zip(out_tokens, strongest, strict=True)))
    if config["layers"] > 1:
        print(f"  (the lower decoder layers attend too, but to vectors the encoder has already mixed, so their "
              f"weights are not\n  a word alignment; their pictures are saved beside layer {last}'s)")

    section("7. saving the model")
    path = output_path(args.out, CHECKPOINT)
    save_checkpoint(path, model, config=config)
    for key, filename in VOCABULARIES.items():
        save_vocabulary(source_tokenizer if key == "source" else target_tokenizer, os.path.join(args.out, filename))
    print(f"  {path} ({os.path.getsize(path) / 1e6:.1f} MB) and the vocabularies "
          f"{', '.join(VOCABULARIES.values())}")
    print(f"  try:  python demos/translate.py{out_option(args)} --translate \"the small dog sleeps\"")
    print(f"        python demos/translate.py{out_option(args)} --vocab")
    print(f"\n  total time {time.perf_counter() - started:.1f} s")
    done(args.out)


if __name__ == "__main__":
    main()
