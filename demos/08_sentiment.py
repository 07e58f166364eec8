"""08 -- Sentiment: a Transformer encoder reads a review sentence and says positive or negative.

``numpy_transformer.models.TransformerClassifier`` is BERT's shape, small and trained from scratch: word
embeddings plus learned positions, a stack of encoder layers, and one Linear on the vector of the first
position. That first position holds ``<bos>``, used here as BERT uses ``[CLS]``: a token with no meaning of its
own, whose vector every layer fills by attending to the words of the sentence.

The data: the project's 480 short movie-review sentences (``numpy_transformer.data.sentiment``), written for
it and labelled 1 (positive) or 0 (negative), half of each. About half of them need more than counting good
and bad words: contrasts ("The plot is predictable, but the cast is superb." is positive: the clause after
"but" decides) and negation ("The ending is not dull at all."). A fifth is held out for the test.

The trained model is saved with its vocabulary (``sentiment.npz``, ``vocab.json`` in ``--out``), so that

    python demos/08_sentiment.py --predict "A slow start, but the ending is wonderful."

judges new sentences without training again. ``load_saved(folder)`` is the one reader of those files (the
web app, ``demos/app.py``, loads the model it serves with it).

Options: ``--freeze N`` freezes the embeddings and the first N encoder layers (they keep their random initial
values, so only the layers above learn: how much can the top do alone?). ``--imdb DIR`` trains on the IMDb
Large Movie Review Dataset instead, from its unpacked folder (``DIR/train/pos/*.txt`` ...; reviews are cut to
their first 128 words here). ``--predict TEXT [TEXT ...]`` uses the saved model.
"""
import os

if __name__ == "__main__":  # run as a script (not imported, e.g. by demos/app.py for load_saved)
    for _variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(_variable, "1")  # small matrices: one BLAS thread is fastest

import json  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402
from _common import Progress, done, fail, integer, output_path, save, section, setup  # noqa: E402

from numpy_transformer.data.metrics import accuracy, precision_recall_f1  # noqa: E402
from numpy_transformer.data.sentiment import load_sentiment_sentences, read_imdb_folder, train_test_split  # noqa: E402
from numpy_transformer.io.atomic import atomic_write  # noqa: E402
from numpy_transformer.io.checkpoint import load_checkpoint, load_config, save_checkpoint  # noqa: E402
from numpy_transformer.models import TransformerClassifier  # noqa: E402
from numpy_transformer.optim import AdamW, clip_grad_norm_, warmup_linear_decay  # noqa: E402
from numpy_transformer.text import WordTokenizer  # noqa: E402
from numpy_transformer.viz import attention_heatmap, loss_curve  # noqa: E402

EXAMPLE = "The movie was fantastic but the ending was disappointing."
CHECKPOINT, VOCABULARY = "sentiment.npz", "vocab.json"
LABELS = ("negative", "positive")


def add_options(parser):
    """This demo's own options, beside the shared --quick, --out and --seed."""
    parser.add_argument("--freeze", type=integer(0), default=None, metavar="N",
                        help="freeze the embeddings and the first N encoder layers")
    parser.add_argument("--imdb", metavar="DIR", help="train on the IMDb folder DIR (aclImdb layout)")
    parser.add_argument("--max-per-class", type=integer(1), default=2000,
                        help="with --imdb: reviews of each class read per split (default 2000)")
    parser.add_argument("--predict", nargs="+", metavar="TEXT",
                        help="judge TEXT with the model saved in --out (train first), and exit")


def build_model(config):
    return TransformerClassifier(config["vocab_size"], 2, d_model=config["d_model"], nhead=config["nhead"],
                                 num_layers=config["layers"], dim_feedforward=config["dim_feedforward"],
                                 dropout=config["dropout"], max_len=config["max_len"], pooling="cls",
                                 pad_id=config["pad_id"], rng=config["seed"])


def positive_probability(model, ids):
    """P(positive) of each row of ``ids`` (B, T): the softmax of the two class scores (in eval mode)."""
    was_training = model.training
    model.eval()
    logits = model(ids)                                             # (B, 2)
    model.train(was_training)
    exp = np.exp(logits - logits.max(axis=1, keepdims=True))
    return exp[:, 1] / exp.sum(axis=1)                              # (B,)


def saved_files(folder):
    """The two files a trained classifier is saved as: the checkpoint (weights and config) and the vocabulary."""
    return os.path.join(folder, CHECKPOINT), os.path.join(folder, VOCABULARY)


def save_model(folder, model, tokenizer, config):
    """Write the checkpoint (with the config that rebuilds the model) and the vocabulary, each atomically."""
    path = output_path(folder, CHECKPOINT)
    save_checkpoint(path, model, config=config)
    vocabulary = json.dumps({"lowercase": tokenizer.lowercase, "tokens": tokenizer.itos}, ensure_ascii=False, indent=0)
    atomic_write(saved_files(folder)[1], lambda handle: handle.write(vocabulary.encode("utf-8")))
    return path


def load_saved(folder):
    """(model in eval mode, tokenizer, config) of the classifier saved in ``folder``; None when it holds none."""
    path, vocab_path = saved_files(folder)
    if not (os.path.exists(path) and os.path.exists(vocab_path)):
        return None
    config = load_config(path)
    model = build_model(config)
    load_checkpoint(path, model)
    with open(vocab_path, encoding="utf-8") as handle:
        saved = json.load(handle)
    tokenizer = WordTokenizer(tokens=saved["tokens"][4:], lowercase=saved.get("lowercase", True))
    return model.eval(), tokenizer, config


def predict_command(args):
    """--predict TEXT ...: the saved model's verdict on each text, with the words it has never seen."""
    texts = [t.strip() for t in args.predict]
    if not all(texts):
        fail('--predict: got an empty text; expected a sentence, e.g. --predict "A wonderful, moving film."')
    loaded = load_saved(args.out)
    if loaded is None:
        out = "" if args.out == os.path.join("demos_output", "08_sentiment") else f" --out {args.out}"
        print(f"No trained classifier in {os.path.abspath(args.out)} (expected {CHECKPOINT} and {VOCABULARY}).\n"
              f"Train one first:\n\n    python demos/08_sentiment.py{out}")
        raise SystemExit(1)
    model, tokenizer, config = loaded
    for text in texts:
        words = tokenizer.split(text.lower())
        ids, _ = tokenizer.batch_encode([text], max_len=config["max_len"], add_bos=True)  # (1, T) <bos> first
        probability = float(positive_probability(model, ids)[0])
        unknown = [w for w in words if w not in tokenizer.stoi]
        print(f"  {LABELS[int(probability >= 0.5)]:8s} (P(positive) = {probability:.2f})  {text}")
        if len(words) + 1 > config["max_len"]:
            print(f"    note: only the first {config['max_len'] - 1} words were read (the model's max_len)")
        if unknown:
            print(f"    note: never seen in training, read as <unk>: {', '.join(unknown)}")


def main():
    args = setup("08_sentiment", "a Transformer classifier learns the sentiment of review sentences", add_options)
    if args.predict is not None:
        predict_command(args)
        return
    rng = np.random.default_rng(args.seed)
    started = time.perf_counter()

    section("1. the data")
    if args.imdb:
        limit = 50 if args.quick else args.max_per_class
        train_texts, train_labels = read_imdb_folder(args.imdb, "train", max_per_class=limit)
        test_texts, test_labels = read_imdb_folder(args.imdb, "test", max_per_class=limit)
        max_words = 128
        print(f"  IMDb reviews from {args.imdb}: {len(train_texts)} for training, {len(test_texts)} for the test "
              f"(at most {limit} per class and split; each cut to its first {max_words} words)")
    else:
        texts, labels = load_sentiment_sentences()
        (train_texts, train_labels), (test_texts, test_labels) = train_test_split(texts, labels, test_fraction=0.2,
                                                                                  seed=args.seed)
        max_words = 64
        print(f"  the project's {len(texts)} movie-review sentences (numpy_transformer.data.sentiment), "
              f"{int(labels.sum())} positive and {int(len(labels) - labels.sum())} negative: "
              f"{len(train_texts)} for training, {len(test_texts)} held out")
    for text, label in list(zip(train_texts, train_labels, strict=True))[:4]:
        print(f"    {'positive' if label else 'negative'}: {text[:90]}")
    tokenizer = WordTokenizer(lowercase=True).build_vocab(train_texts, max_size=10000)
    train_ids, _ = tokenizer.batch_encode(train_texts, max_len=max_words + 1, add_bos=True)  # (N, T) <bos> first
    test_ids, _ = tokenizer.batch_encode(test_texts, max_len=max_words + 1, add_bos=True)
    print(f"  {tokenizer.vocab_size} tokens in the vocabulary (built from the training part); every sentence "
          "starts with <bos>, whose final vector is classified")

    section("2. the model")
    layers = 1 if args.quick else 2
    config = {"vocab_size": tokenizer.vocab_size, "d_model": 32 if args.quick else 64, "nhead": 4, "layers": layers,
              "dim_feedforward": 64 if args.quick else 128, "dropout": 0.1, "max_len": max_words + 1,
              "pad_id": tokenizer.pad_id, "seed": args.seed}
    model = build_model(config)
    print(f"  TransformerClassifier: {layers} encoder layers, 4 heads; {model.num_parameters():,} parameters")
    if args.freeze is not None and args.freeze > layers:
        fail(f"--freeze: got {args.freeze}; this model has {layers} encoder layers, so expected at most {layers}")
    if args.freeze is not None:
        model.freeze_bottom(args.freeze)
        trainable = sum(p.data.size for p in model.parameters() if p.requires_grad)
        frozen = "the embeddings" + (f" and the first {args.freeze} encoder layer{'s' if args.freeze > 1 else ''}"
                                     if args.freeze else "")
        print(f"  --freeze {args.freeze}: {frozen} keep their random initial values; {trainable:,} parameters "
              "still learn")

    section("3. training")
    epochs = 3 if args.quick else (4 if args.imdb else 60)
    batch_size = 32
    steps_per_epoch = int(np.ceil(len(train_texts) / batch_size))
    steps = epochs * steps_per_epoch
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = AdamW(trainable, lr=2e-3, weight_decay=0.01)
    schedule = warmup_linear_decay(optimizer, warmup_steps=max(1, steps // 10), total_steps=steps)
    print(f"  {epochs} epochs of {steps_per_epoch} batches of {batch_size}: AdamW (lr 2e-3, weight decay 0.01), "
          "warmup then linear decay, gradient clipping at 1.0")


    def trim(ids):
        return ids[:, :max(1, int((ids != tokenizer.pad_id).sum(axis=1).max()))]


    def predict(ids):
        model.eval()
        out = np.concatenate([model(trim(ids[i:i + 256])).argmax(axis=1) for i in range(0, len(ids), 256)])
        model.train()
        return out


    progress = Progress(total=steps, every=max(1, steps // 10))
    losses, val_steps, val_accuracy = [], [], []
    step = 0
    for epoch in range(epochs):
        for batch in np.array_split(rng.permutation(len(train_texts)), steps_per_epoch):
            step += 1
            logits = model(trim(train_ids[batch]))                      # (B, 2)
            loss, dlogits = model.loss(logits, train_labels[batch])
            model.zero_grad()
            model.backward(dlogits)
            clip_grad_norm_(trainable, 1.0)
            optimizer.step()
            schedule.step()
            losses.append(float(loss))
            extra = {}
            if step % steps_per_epoch == 0 and (epoch + 1) % max(1, epochs // 6) == 0:
                val_steps.append(step)
                val_accuracy.append(accuracy(predict(test_ids), test_labels))
                extra = {"test_accuracy": val_accuracy[-1]}
            progress.update(step, float(np.mean(losses[-steps_per_epoch:])), epoch=epoch + 1, **extra)
    print(f"  trained in {time.perf_counter() - progress.start:.1f} s")

    section("4. the held-out sentences")
    predictions = predict(test_ids)
    test_accuracy = accuracy(predictions, test_labels)
    precision, recall, f1 = precision_recall_f1(predictions, test_labels, positive=1)
    print(f"  train accuracy: {accuracy(predict(train_ids), train_labels):.3f}")
    print(f"  test accuracy: {test_accuracy:.3f}")
    print(f"  test precision {precision:.3f}, recall {recall:.3f} (positive class)")
    print(f"  test F1: {f1:.3f}")
    if not args.imdb:
        for text, label, guess in list(zip(test_texts, test_labels, predictions, strict=True))[:6]:
            print(f"    [{'ok ' if label == guess else 'MISS'}] {'positive' if guess else 'negative'}: {text}")
    fig = loss_curve(np.arange(1, len(losses) + 1), losses, smooth=min(steps_per_epoch, len(losses)),
                     title="Sentiment classifier: training loss and held-out accuracy", ylabel="cross-entropy",
                     accuracy_steps=val_steps, accuracy=val_accuracy, accuracy_label="held-out test accuracy",
                     reference=[(np.log(2), "guessing: ln 2")])
    save(fig, args.out, "08_loss.png")

    section("5. attention on a sentence with a turn")
    ids, _ = tokenizer.batch_encode([EXAMPLE], add_bos=True)            # (1, T)
    ids = ids[:, :max_words + 1]
    words = ["<bos>"] + tokenizer.split(EXAMPLE.lower())[:max_words]
    # label each position with the word itself, marking the words the vocabulary does not know
    tokens = [w if i != tokenizer.unk_id else f"{w} (<unk>)" for w, i in zip(words, ids[0], strict=True)]
    probability = positive_probability(model, ids)[0]
    print(f"  {EXAMPLE!r}: positive with probability {probability:.2f}")
    unknown = [w for w, i in zip(words, ids[0], strict=True) if i == tokenizer.unk_id]
    if unknown:
        print(f"  never seen in training, so read as <unk>: {', '.join(unknown)} (the model judges from the rest)")
    weights = model.attention_weights(ids, layer=0, head=0)[0]          # (T, T)
    fig = attention_heatmap(weights, tokens, title=f"Self-attention, layer 0, head 0 (of 4; numbered from 0)\n"
                                                   f"\"{EXAMPLE}\"")
    save(fig, args.out, "08_attention.png")
    top = np.argsort(-weights[0])[:3]
    print("  layer 0, head 0: <bos> attends most to " + ", ".join(f"'{tokens[j]}' ({weights[0, j]:.2f})" for j in top))

    section("6. saving the model")
    path = save_model(args.out, model, tokenizer, config)
    out_option = "" if args.out == os.path.join("demos_output", "08_sentiment") else f" --out {args.out}"
    print(f"  {path} and {VOCABULARY}; try:")
    print(f"    python demos/08_sentiment.py{out_option} --predict \"A slow start, but the ending is wonderful.\"")
    print(f"\n  total time {time.perf_counter() - started:.1f} s")
    done(args.out)


if __name__ == "__main__":
    main()
