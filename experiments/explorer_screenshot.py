"""The README's screenshot of the explorer, taken from the real page in headless Chromium.

    python experiments/explorer_screenshot.py [--out docs/figures/explorer.png]

Writes the page (``costmodel explore``) to a temporary folder, opens it from disk with the system's
Chromium through Playwright, sets Llama 3 70B on 8 H100s at batch 64 and context 8192, and saves a
screenshot. Prints the page's cost per million tokens beside ``costmodel predict``'s for the same
settings.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import costmodel as cm
from costmodel.explorer import write_explorer
from costmodel.explorer.page import chromium_path

ROOT = Path(__file__).resolve().parents[1]
SETTINGS = {"model": "llama-3-70b", "hardware": "h100-sxm", "tp": "8", "batch": 64, "context": 8192}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(ROOT / "docs" / "figures" / "explorer.png"))
    args = ap.parse_args()
    from playwright.sync_api import sync_playwright

    exe = chromium_path()
    if exe is None:
        raise SystemExit("needs Chromium: apt-get install chromium (Debian), or set COSTMODEL_CHROMIUM")
    with tempfile.TemporaryDirectory() as tmp, sync_playwright() as p:
        index = write_explorer(tmp)
        browser = p.chromium.launch(executable_path=exe, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1400, "height": 1020}, device_scale_factor=1)
        page.goto(index.as_uri())
        page.select_option("#model", SETTINGS["model"])
        page.select_option("#hardware", SETTINGS["hardware"])
        page.select_option("#tp", SETTINGS["tp"])
        for key in ("batch", "context"):
            page.fill(f"#{key}-value", str(SETTINGS[key]))
            page.dispatch_event(f"#{key}-value", "change")
        shown = page.inner_text("#out-cost")
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=args.out, full_page=False)
        browser.close()
    p = cm.predict(SETTINGS["model"], SETTINGS["hardware"], cm.Workload(batch=SETTINGS["batch"], context=SETTINGS["context"]),
                   parallel=cm.Parallel(tp=int(SETTINGS["tp"])))
    print(f"screenshot: {args.out}")
    print(f"page cost per Mtok: {shown}; costmodel predict: ${p.usd_per_mtok:.4g}")


if __name__ == "__main__":
    main()
