"""End to end in a real browser: Debian's Chromium, headless, driven by Playwright.

- A head view saved to disk opens from a file: its tokens show exactly as typed (no markup, no script runs), the
  lines it draws are the ones its weights call for, hovering a token keeps only that token's lines, heads toggle,
  layers and kinds of attention switch, the model view enlarges a square; and it makes no request at all.
- A 6-layer, 12-head view of 128 tokens renders (its size and time to draw are printed).
- The app: a sentence typed in each tab gives, on the page, the translation and the label that the handlers give
  for it; the head views draw and react to hovering; bad input gets a note and the next request still works; and
  every request the page made went to 127.0.0.1.

Screenshots go to a temporary folder, or to ``NT_SCREENSHOT_DIR`` (``docs/images`` for the README's, taken with
``NT_APP_CACHE`` pointing at fully trained models).
"""
import base64
import json
import os
import re
import time
from pathlib import Path
from urllib.parse import urlparse

import numpy as np
import pytest

from numpy_transformer import viz

NASTY = ["[CLS]", "</script><script>window.pwned = 1</script>", "<b>bold</b>", "\"double\" 'single'", "a & b &amp;",
         "<!--", "", "[SEP]"]


def softmax(x):
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def levels_of(page: str) -> dict:
    """Each attention set's stored weights, uint8 (L, H, T, S), decoded from the page's data block."""
    data = json.loads(re.search(r'id="nt-data">(.*?)</script>', page, flags=re.S).group(1))
    return {s["name"]: np.frombuffer(base64.b64decode(s["weights"]), dtype=np.uint8).reshape(
        s["layers"], s["heads"], len(s["queries"]), len(s["keys"])) for s in data["sets"]}


@pytest.fixture
def screenshots(tmp_path):
    folder = Path(os.environ.get("NT_SCREENSHOT_DIR") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def recorded(context) -> list:
    """Every request any page or frame of ``context`` makes from now on."""
    requests = []
    context.on("request", lambda request: requests.append(request.url))
    return requests


def lines(frame) -> int:
    return int(frame.locator("canvas.nt-canvas").get_attribute("data-lines"))


def pixels(frame) -> str:
    return frame.locator("canvas.nt-canvas").evaluate("canvas => canvas.toDataURL()")


# ---------------------------------------------------------------------------------------------- saved pages

def test_a_saved_head_view_works_from_disk(chromium, tmp_path, screenshots):
    rng = np.random.default_rng(0)
    n = len(NASTY)
    view = viz.encoder_decoder_view(softmax(3 * rng.normal(size=(2, 3, 4, n))), NASTY, ["le", "chat", "<b>", "."],
                                    encoder_attention=softmax(3 * rng.normal(size=(2, 3, n, n))),
                                    title="A saved view </title><script>window.pwned = 2</script>")
    path = view.save(tmp_path / "head_view.html")
    stored = levels_of(view.html)
    context = chromium.new_context(viewport={"width": 1100, "height": 800})
    requests = recorded(context)
    page = context.new_page()
    errors = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(Path(path).as_uri())
    page.locator("#nt-view[data-ready=true]").wait_for()

    # cross-attention first: the target tokens on the left, the (nasty) source tokens on the right, as typed
    assert page.locator(".nt-queries .nt-token").all_text_contents() == ["le", "chat", "<b>", "."]
    shown = [t if t else "\u2205" for t in NASTY]                  # an empty token is drawn as the empty set
    assert page.locator(".nt-keys .nt-token").all_text_contents() == shown
    assert page.evaluate("typeof window.pwned") == "undefined" and not errors
    assert page.locator("h1").text_content() == view.title

    cross = stored["cross-attention"]
    assert lines(page) == int((cross[0] >= 3).sum()) > 0          # every weight of at least 3/255 is a line
    before = pixels(page)
    page.hover(".nt-queries .nt-token >> nth=2")                  # only the lines of target token 2
    assert page.locator("canvas.nt-canvas").get_attribute("data-focus") == "query:2"
    assert lines(page) == int((cross[0, :, 2, :] >= 1).sum())
    assert pixels(page) != before
    status = page.locator(".nt-status").text_content()
    assert status.startswith("\u201c<b>\u201d looks most at (head 0: ")
    page.hover(".nt-keys .nt-token >> nth=1")                     # only the lines into source token 1
    assert lines(page) == int((cross[0, :, :, 1] >= 1).sum())
    page.mouse.move(1000, 700)
    assert lines(page) == int((cross[0] >= 3).sum())

    page.click(".nt-head >> nth=0")                                # head 0 off
    assert lines(page) == int((cross[0, 1:] >= 3).sum())
    page.click(".nt-head >> nth=0")
    page.select_option(".nt-layer-select", "1")
    assert lines(page) == int((cross[1] >= 3).sum())
    page.select_option(".nt-set-select", "1")                     # the encoder's self-attention
    assert page.locator(".nt-queries .nt-token").all_text_contents() == shown
    page.hover(".nt-queries .nt-token >> nth=1")
    page.screenshot(path=str(screenshots / "saved_head_view.png"))

    page.click("text=Model view")
    assert page.locator(".nt-thumb").count() == 2 * 3
    page.click(".nt-thumb[data-layer='1'][data-head='2']")
    big = page.locator("canvas.nt-big")
    assert (big.get_attribute("data-layer"), big.get_attribute("data-head")) == ("1", "2")
    box = big.bounding_box()
    page.mouse.move(box["x"] + box["width"] - 10, box["y"] + box["height"] - 10)  # the last cell
    assert re.match(r"layer 1, head 2: \u201c\[SEP\]\u201d \u2192 \u201c\[SEP\]\u201d \d\.\d\d$",
                    page.locator(".nt-status").text_content())
    context.close()
    assert requests == [Path(path).as_uri()]                      # the file itself, and nothing else


def test_a_6_layer_12_head_view_of_128_tokens_renders(chromium, tmp_path):
    rng = np.random.default_rng(1)
    weights = softmax(4 * rng.normal(size=(6, 12, 128, 128)))
    view = viz.HeadView(list(weights), [f"word{i}" for i in range(128)], title="128 tokens")
    path = view.save(tmp_path / "large.html")
    stored = levels_of(view.html)["self-attention"]
    page = chromium.new_page(viewport={"width": 1100, "height": 800})
    started = time.perf_counter()
    page.goto(Path(path).as_uri())
    page.locator("#nt-view[data-ready=true]").wait_for(timeout=60_000)
    first = time.perf_counter() - started
    drawn = lines(page)
    assert drawn == int((stored[0] >= 3).sum()) > 10_000
    started = time.perf_counter()
    page.hover(".nt-queries .nt-token >> nth=5")
    hover = time.perf_counter() - started
    assert lines(page) == int((stored[0, :, 5] >= 1).sum())
    started = time.perf_counter()
    page.click("text=Model view")
    assert page.locator(".nt-thumb").count() == 72
    grid = time.perf_counter() - started
    print(f"\n6 layers x 12 heads x 128 tokens: {Path(path).stat().st_size:,} bytes; in Chromium {first:.2f} s to open "
          f"and draw {drawn:,} lines, {hover:.2f} s for a hover, {grid:.2f} s for the 72 squares of the model view")
    page.close()


# ---------------------------------------------------------------------------------------------- the app

def wait_for_view(page, selector):
    """The head/model view inside a Gradio HTML output, once drawn."""
    page.locator(f"{selector} iframe").wait_for(timeout=180_000)
    frame = page.frame_locator(f"{selector} iframe")
    frame.locator("#nt-view[data-ready=true]").wait_for(timeout=60_000)
    return frame


def submit(page, tab, text):
    page.get_by_role("tab", name=tab).click()
    name = {"Translate": "translate", "Sentiment": "sentiment", "Attention explorer": "explore"}[tab]
    page.fill(f"#{name}-input textarea", text)
    page.click(f"#{name}-button")


def wait_for_notes(page, name, needle):
    page.locator(f"#{name}-notes").filter(has_text=needle).wait_for(timeout=180_000)


def test_the_app_in_a_browser(chromium, app_server, app_module, app_models, screenshots):
    url, ready, server_lines = app_server
    context = chromium.new_context(viewport={"width": 1280, "height": 1000})
    requests = recorded(context)
    page = context.new_page()
    page.goto(url)
    page.locator("#translate-input textarea").wait_for(timeout=60_000)

    # Translate: the page shows the handler's translations, and the cross-attention head view reacts to hovering
    sentence = "the red car is fast"
    greedy, beam, _, _ = app_module.translate(app_models, sentence)
    submit(page, "Translate", sentence)
    view = wait_for_view(page, "#translate-view")
    assert page.input_value("#translate-greedy textarea") == greedy
    assert page.input_value("#translate-beam textarea") == beam
    assert view.locator(".nt-keys .nt-token").all_text_contents() == sentence.split()
    assert lines(view) > 0
    before_hover = pixels(view)
    last = view.locator(".nt-layer-select option").count() - 1
    view.locator(".nt-layer-select").select_option(str(last))       # the last decoder layer's cross-attention
    assert view.locator("canvas.nt-canvas").get_attribute("data-layer") == str(last)
    produced = greedy.split()
    target = produced.index("rouge") if "rouge" in produced else 0   # the adjective that moves, when there
    view.locator(".nt-queries .nt-token").nth(target).hover()
    assert view.locator("canvas.nt-canvas").get_attribute("data-focus") == f"query:{target}"
    assert lines(view) > 0 and pixels(view) != before_hover
    page.screenshot(path=str(screenshots / "app_translate.png"), full_page=True)

    # Sentiment: the label on the page is the handler's, the heatmap and the head view are drawn
    review = "The plot is predictable, but the cast is superb."
    probabilities = app_module.sentiment(app_models, review)[0]
    submit(page, "Sentiment", review)
    view = wait_for_view(page, "#sentiment-view")
    label = page.locator("#sentiment-label [data-testid=label-output-value]").text_content().strip()
    assert label == max(probabilities, key=probabilities.get)
    assert page.locator("#sentiment-heatmap img").count() == 1
    before = pixels(view)
    words = view.locator(".nt-queries .nt-token").all_text_contents()
    view.locator(".nt-queries .nt-token").nth(words.index("superb") if "superb" in words else 1).hover()
    assert pixels(view) != before and lines(view) > 0
    page.locator("#sentiment-view iframe").screenshot(path=str(screenshots / "head_view.png"))

    # Attention explorer: every layer x head of MiniLM, a square enlarged, and the hidden-state norms
    if app_models.explorer is not None:
        submit(page, "Attention explorer", "The bank of the river was steep.")
        view = wait_for_view(page, "#explore-view")
        config = app_models.explorer.config
        assert view.locator(".nt-thumb").count() == config.num_hidden_layers * config.num_attention_heads
        view.locator(".nt-thumb[data-layer='2'][data-head='3']").click()
        assert view.locator("canvas.nt-big").get_attribute("data-head") == "3"
        assert page.locator("#explore-norms img").count() == 1

    # bad input: a short note each time, and the server keeps answering
    submit(page, "Translate", "")
    wait_for_notes(page, "translate", "Type a sentence first")
    submit(page, "Translate", ("the small dog sleeps " * 600)[:10_000])
    wait_for_notes(page, "translate", "only the first 1,000 were read")
    submit(page, "Translate", "猫が好きです 🙂🙂")
    wait_for_notes(page, "translate", "Never seen in training")
    submit(page, "Sentiment", "   ")
    wait_for_notes(page, "sentiment", "Type a sentence first")
    submit(page, "Translate", sentence)
    page.locator("#translate-notes").filter(has_text="Never seen").wait_for(state="detached", timeout=180_000)
    page.wait_for_function("expected => document.querySelector('#translate-greedy textarea').value === expected",
                           arg=greedy, timeout=180_000)
    assert "Traceback" not in page.content()
    context.close()

    # every request of the page and its frames stayed on this machine
    outside = [u for u in requests if urlparse(u).scheme not in ("data", "blob", "about")
               and urlparse(u).hostname != "127.0.0.1"]
    shown = sorted({re.sub(r"session_hash=\w+", "session_hash=...", u.replace(url, "/")) for u in requests})
    print(f"\n{ready}\n{len(requests)} requests, {len(shown)} distinct, none outside 127.0.0.1:")
    print("  " + "\n  ".join(shown))
    assert requests and not outside, outside
    assert not any("Traceback" in line for line in server_lines)
