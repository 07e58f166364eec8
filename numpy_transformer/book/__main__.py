"""``python -m numpy_transformer.book OUT``: write the typeset book of the source into the folder OUT."""
from __future__ import annotations

import argparse
import sys


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m numpy_transformer.book",
        description="Write the source of numpy_transformer as a static HTML book: notes beside code, math "
                    "typeset, nothing fetched from a network. Open OUT/index.html.",
    )
    parser.add_argument("out", help="the folder to write the site into (created if missing)")
    parser.add_argument("--screenshot", metavar="PNG",
                        help="also save a picture of the attention page, taken by a headless Chromium")
    args = parser.parse_args(argv)
    try:
        from . import build
        report = build(args.out)
    except ImportError as error:
        print(f"the book needs the book extra: pip install -e .[book] ({error})", file=sys.stderr)
        return 2
    print(f"Wrote {len(report.pages)} pages into {report.out_dir} in {report.seconds:.1f} s; "
          f"open {report.out_dir / 'index.html'}")
    if args.screenshot:
        from .screenshot import screenshot
        print(f"Saved {screenshot(report.out_dir / 'functional.attention.html', args.screenshot)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
