"""Train a Transformer to translate English into French, on a laptop CPU, in about two minutes.

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

Training uses teacher forcing (the decoder reads the reference prefix and predicts the next word), label
smoothing, AdamW with a linear warmup then linear decay of the learning rate, and gradient clipping. Then it
translates the held-out sentences greedily and by beam search, scores them (exact match, token accuracy,
corpus BLEU), draws the loss curve and the cross-attention of a sentence whose adjective moves, and saves the
model and its vocabularies, so that

    python demos/translate.py --translate "the small dog sleeps"

translates any sentence with the saved model. ``--pairs FILE`` trains on a real tab-separated corpus instead
(the Tatoeba / manythings.org Anki format ``English<TAB>French[<TAB>attribution]``, e.g. fra.txt).
"""
import os

# The matrices here are small (a few hundred rows of 64 numbers): one BLAS thread does them fastest, and
# spares the thread hand-offs that cost more than they save. Set before NumPy loads; the environment wins.
for _variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_variable, "1")

import json  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

from _common import Progress, done, save, section, setup  # noqa: E402

from numpy_transformer.data.metrics import corpus_bleu, exact_match, token_accuracy  # noqa: E402
from numpy_transformer.data.translation import (  # noqa: E402
    held_out_combinations,
    make_translation_splits,
    read_parallel_corpus,
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


def add_options(parser):
    """This demo's own options, beside the shared --quick, --out and --seed."""
    parser.add_argument("--translate", metavar="SENTENCE",
                        help="translate SENTENCE with the model saved in --out (train first)")
    parser.add_argument("--pairs", metavar="FILE",
                        help="train on a tab-separated English<TAB>French corpus instead of the grammar")
    parser.add_argument("--max-pairs", type=int, default=20000,
                        help="read at most this many pairs of --pairs FILE (default 20000)")
    parser.add_argument("--steps", type=int, default=None, help="training steps (default 2000; --quick 40)")
    parser.add_argument("--beam", type=int, default=4, help="beam width of the beam search (default 4)")


# ------------------------------------------------------------------------------------------------ data
def load_data(args):
    """(train_pairs, test_pairs, what): the grammar's split, or a real corpus split 90 / 10 at random."""
    if args.pairs:
        pairs = read_parallel_corpus(args.pairs, max_pairs=args.max_pairs)
        if len(pairs) < 10:
            sys.exit(f"--pairs: {args.pairs} holds {len(pairs)} pairs; expected at least 10")
        order = np.random.default_rng(args.seed).permutation(len(pairs))
        n_test = max(2, len(pairs) // 10)
        test = [pairs[i] for i in order[:n_test]]
        train = [pairs[i] for i in order[n_test:]]
        return train, test, f"the corpus {args.pairs}"
    n_train, n_test = (300, 40) if args.quick else (4000, 400)
    train, test = make_translation_splits(n_train, n_test, seed=args.seed)
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


# ------------------------------------------------------------------------------------------------ --translate
def translate_command(args):
    path = os.path.join(args.out, CHECKPOINT)
    vocab_paths = [os.path.join(args.out, name) for name in VOCABULARIES.values()]
    if not os.path.exists(path) or not all(os.path.exists(p) for p in vocab_paths):
        print(f"No trained translator in {os.path.abspath(args.out)} (expected {CHECKPOINT} and "
              f"{' and '.join(VOCABULARIES.values())}).\nTrain one first (about two minutes):\n\n"
              f"    python demos/translate.py" + ("" if args.out == os.path.join("demos_output", NAME)
                                                  else f" --out {args.out}"))
        sys.exit(1)
    config = load_config(path)
    model = build_model(config)
    load_checkpoint(path, model)
    model.eval()
    source_tokenizer, target_tokenizer = (load_vocabulary(p) for p in vocab_paths)
    text = args.translate.lower() if source_tokenizer.lowercase else args.translate
    unknown = [w for w in source_tokenizer.split(text) if w not in source_tokenizer.stoi]
    if unknown:
        print(f"  note: never seen in training, read as <unk>: {', '.join(unknown)}")
    max_len = config["max_target_len"]
    greedy = translate_batch(model, source_tokenizer, target_tokenizer, [args.translate], max_len)[0][0]
    beam = translate_batch(model, source_tokenizer, target_tokenizer, [args.translate], max_len,
                           beam=args.beam)[0][0]
    print(f"  English:              {args.translate}")
    print(f"  French (greedy):      {greedy}")
    print(f"  French (beam of {args.beam}):   {beam}")


# ------------------------------------------------------------------------------------------------ training
def main():
    args = setup(NAME, DESCRIPTION, add_options)
    if args.translate is not None:
        translate_command(args)
        return
    started = time.perf_counter()
    rng = np.random.default_rng(args.seed)

    section("1. the data")
    train_pairs, test_pairs, what = load_data(args)
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
    print(f"  e.g. {train_pairs[0][1]!r} -> decoder input {train_tgt[0, :-1][train_tgt[0, :-1] > 0].tolist()}, "
          f"target {train_tgt[0, 1:][train_tgt[0, 1:] > 0].tolist()}")

    section("2. the model")
    config = {
        "source_vocab_size": source_tokenizer.vocab_size, "target_vocab_size": target_tokenizer.vocab_size,
        "d_model": 32 if args.quick else 64, "nhead": 4, "layers": 1 if args.quick else 2,
        "dim_feedforward": 64 if args.quick else 128, "dropout": 0.1, "label_smoothing": 0.1,
        "max_len": 256, "max_target_len": int(max(train_tgt.shape[1], test_tgt.shape[1]) + 4),
        "seed": args.seed,
    }
    model = build_model(config)
    print(f"  Seq2SeqTransformer: d_model {config['d_model']}, {config['nhead']} heads, {config['layers']} "
          f"encoder + {config['layers']} decoder layers, feed-forward {config['dim_feedforward']}, dropout "
          f"{config['dropout']}, float32: {model.num_parameters():,} parameters")

    section("3. training (teacher forcing, label smoothing 0.1, AdamW, warmup, clipping at 1.0)")
    steps = args.steps or (40 if args.quick else 2000)
    batch_size = 64
    warmup = max(1, steps // 10)
    peak_lr = 1e-3 if args.quick else 2e-3
    optimizer = AdamW(model.parameters(), lr=peak_lr, weight_decay=0.01)
    schedule = warmup_linear_decay(optimizer, warmup_steps=warmup, total_steps=steps)
    print(f"  {steps} steps of {batch_size} sentence pairs; learning rate up to {peak_lr} over {warmup} steps, "
          "then down to 0")
    progress = Progress(total=steps, every=max(1, steps // 15))
    losses, val_steps, val_losses = [], [], []
    val_every = max(1, steps // 15)
    val_rows = np.arange(min(len(test_pairs), 400))
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
                     title=f"Translator training loss (mean of {window} steps; label smoothing 0.1)",
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
    for i in range(min(8, len(english))):
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
    print(f"\n  held-out exact match: {scores['greedy'][0]:.3f}")
    print(f"  held-out token accuracy: {scores['greedy'][1]:.3f}")
    print(f"  held-out BLEU: {100 * scores['greedy'][2]:.1f}")
    print(f"  held-out exact match (beam): {scores['beam'][0]:.3f}")

    section("5. where the decoder looks: cross-attention")
    sentence = ALIGNMENT_SENTENCE if not args.pairs else english[0]
    produced, ids = translate_batch(model, source_tokenizer, target_tokenizer, [sentence], max_len)
    # the decoder reads <bos> and the words it produced; row t of the weights is the step that produced
    # word t + 1 (the last row produced <eos>)
    tgt_in = ids[:, : 1 + len(produced[0].split())]                 # (1, T): <bos> w1 .. wn
    out_tokens = produced[0].split() + ["<eos>"]                    # T labels: w1 .. wn <eos>
    src, _ = source_tokenizer.batch_encode([sentence])              # (1, S)
    src_tokens = [source_tokenizer.itos[i] for i in src[0]]
    unseen = not args.pairs and ("car", "red") in held_out_combinations(args.seed)
    print(f"  {sentence!r} -> {produced[0]!r}" + ("  ('red car' never occurs in training)" if unseen else ""))
    for layer in range(config["layers"]):
        last = layer == config["layers"] - 1
        weights = model.cross_attention_weights(src, tgt_in, layer=layer)[0]  # (H, T, S)
        layer_name = f"decoder layer {layer + 1} of {config['layers']}"
        fig = attention_heatmap(weights.mean(axis=0), out_tokens, src_tokens,
                                title=f"Cross-attention, {layer_name} (mean of {config['nhead']} heads)\n"
                                      f"\"{sentence}\" -> \"{produced[0]}\"")
        fig.axes[0].set_ylabel("French word being produced")
        fig.axes[0].set_xlabel("English word attended to")
        save(fig, args.out, f"translate_cross_attention_layer{layer + 1}.png")
        if last:
            fig = attention_heads_grid(weights, out_tokens, key_tokens=src_tokens,
                                       title=f"Cross-attention of every head, {layer_name}: \"{sentence}\" "
                                             "(rows: French word being produced; columns: English words)")
            save(fig, args.out, "translate_cross_attention_heads.png")
        strongest = weights.mean(axis=0).argmax(axis=1)
        print(f"  {layer_name}: " + ", ".join(f"{o} <- {src_tokens[j]}" for o, j in zip(out_tokens, strongest)))

    section("6. saving the model")
    path = os.path.join(args.out, CHECKPOINT)
    save_checkpoint(path, model, config=config)
    for key, filename in VOCABULARIES.items():
        save_vocabulary(source_tokenizer if key == "source" else target_tokenizer, os.path.join(args.out, filename))
    print(f"  {path} ({os.path.getsize(path) / 1e6:.1f} MB) and the vocabularies "
          f"{', '.join(VOCABULARIES.values())}")
    out_option = "" if args.out == os.path.join("demos_output", NAME) else f" --out {args.out}"
    print(f"  try:  python demos/translate.py{out_option} --translate \"the small dog sleeps\"")
    print(f"\n  total time {time.perf_counter() - started:.1f} s")
    done(args.out)


if __name__ == "__main__":
    main()
