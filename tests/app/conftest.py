"""Fixtures of the web app's tests: the app module, its models trained once per session, Chromium, a server.

The models are trained once, in the app's quick mode (the demos' own training code, tiny settings), into a
temporary cache folder that every test of the session shares. ``NT_APP_CACHE=DIR`` uses a cache folder that
already holds fully trained models instead (``python demos/app.py --prepare`` makes one): that is how the
screenshots of the README are taken (``NT_SCREENSHOT_DIR=docs/images``).
"""
import importlib.util
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from numpy_transformer.book.screenshot import find_chromium
from reference import references_required, require

ROOT = Path(__file__).resolve().parents[2]
APP = ROOT / "demos" / "app.py"
QUICK = ["--quick", "--translator-steps", "150"]  # a translator that at least says something, in seconds
#: Chromium on a closed network: headless, no sandbox (root in CI), no GPU, nothing fetched in the background
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--disable-default-apps", "--disable-extensions", "--mute-audio"]


def environment() -> dict:
    return dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""), MPLBACKEND="Agg",
                GRADIO_ANALYTICS_ENABLED="False", HF_HUB_OFFLINE="1", PYTHONUNBUFFERED="1")


@pytest.fixture(scope="session")
def app_module():
    """demos/app.py imported as a module (its handlers are called directly, without a server)."""
    spec = importlib.util.spec_from_file_location("numpy_transformer_demo_app", APP)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module                               # its dataclass looks itself up there
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def app_cache(tmp_path_factory):
    """A cache folder holding the app's trained models: trained here once (quick), or NT_APP_CACHE's."""
    given = os.environ.get("NT_APP_CACHE")
    if given:
        return Path(given).resolve()
    cache = tmp_path_factory.mktemp("app_cache")
    started = time.perf_counter()
    result = subprocess.run([sys.executable, str(APP), "--cache", str(cache), "--prepare", *QUICK], cwd=ROOT,
                            env=environment(), capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "models ready" in result.stdout
    assert "step 150/150" in result.stdout                       # the translator's training printed its progress
    print(f"\napp models trained (quick) in {time.perf_counter() - started:.1f} s")
    return cache


@pytest.fixture(scope="session")
def app_models(app_module, app_cache):
    return app_module.load_models(str(app_cache))


@pytest.fixture(scope="session")
def chromium():
    """Debian's Chromium driven by Playwright (never a browser Playwright downloads): a skip without it, a
    failure under NT_REQUIRE_REFERENCES=1 (CI installs it)."""
    sync_api = require("playwright.sync_api")
    path = find_chromium()                                       # the book's finder: $NT_CHROMIUM or the PATH
    if path is None:
        message = "Chromium is not installed (apt-get install chromium chromium-driver); the browser tests need it"
        if references_required():
            pytest.fail("NT_REQUIRE_REFERENCES is set but " + message)
        pytest.skip(message)
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=path, args=CHROMIUM_FLAGS)  # a fresh profile
        yield browser
        browser.close()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="session")
def app_server(app_cache):
    """``python demos/app.py`` serving the cached models on a free loopback port; yields (url, start-up line)."""
    require("gradio")
    port = free_port()
    process = subprocess.Popen([sys.executable, str(APP), "--cache", str(app_cache), "--port", str(port)], cwd=ROOT,
                               env=environment(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines = []
    reader = threading.Thread(target=lambda: lines.extend(iter(process.stdout.readline, "")), daemon=True)
    reader.start()
    deadline = time.monotonic() + 300
    try:
        while not any("app ready" in line for line in lines):
            assert process.poll() is None, "the app stopped:\n" + "".join(lines)
            assert time.monotonic() < deadline, "the app did not start in 300 s:\n" + "".join(lines)
            time.sleep(0.2)
        ready = next(line for line in lines if "app ready" in line).strip()
        print(f"\n{ready}")
        yield f"http://127.0.0.1:{port}/", ready, lines
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
