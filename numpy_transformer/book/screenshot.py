"""A picture of a page of the book, taken by a headless Chromium (Debian's ``chromium`` package).

The README's picture of the book is taken this way, and the tests use it to see that Chromium typesets the
MathML of a page: the same page is shot twice, once with its math hidden, and the two pictures must differ
where the formulas are.
"""
from __future__ import annotations

import os
import pathlib
import shutil
import subprocess
import tempfile

#: no network, no first-run dialogs, no GPU, a fresh profile each time
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync", "--hide-scrollbars"]


def find_chromium() -> str | None:
    """``$NT_CHROMIUM``, else ``chromium`` or ``chromium-browser`` on the PATH, else None."""
    for candidate in (os.environ.get("NT_CHROMIUM"), shutil.which("chromium"), shutil.which("chromium-browser")):
        if candidate and pathlib.Path(candidate).exists():
            return candidate
    return None


def screenshot(page, png, width: int = 1500, height: int = 1250, chromium: str | None = None,
               timeout: float = 120.0) -> pathlib.Path:
    """Render the HTML file ``page`` at ``width`` x ``height`` CSS pixels and save it as the PNG ``png``."""
    chromium = chromium or find_chromium()
    if chromium is None:
        raise FileNotFoundError("chromium: not found; expected Debian's chromium package (apt-get install chromium) "
                                "or a Chromium binary named by $NT_CHROMIUM")
    page, png = pathlib.Path(page).resolve(), pathlib.Path(png).resolve()
    png.parent.mkdir(parents=True, exist_ok=True)
    if png.exists():
        png.unlink()
    with tempfile.TemporaryDirectory(prefix="nt-chromium-") as profile:
        command = [chromium, *FLAGS, f"--user-data-dir={profile}", f"--window-size={width},{height}",
                   f"--screenshot={png}", page.as_uri()]
        finished = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    if finished.returncode != 0 or not png.exists():
        raise RuntimeError(f"chromium: exit status {finished.returncode}, no picture written to {png}; "
                           f"its last output: {finished.stderr.strip()[-500:]}")
    return png
