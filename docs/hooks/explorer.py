"""MkDocs hook: write the explorer page (``costmodel explore``) into the built site, at ``explorer-app/``.

The docs page ``explorer.md`` shows it in a frame; the page is generated from the same SymPy expressions as
the package's compiled functions each time the site is built, so it never lags the model.
"""

from __future__ import annotations

from pathlib import Path

from costmodel.explorer import write_explorer

#: the folder of the site the explorer is written to
FOLDER = "explorer-app"


def on_post_build(config) -> None:
    """MkDocs event: write the explorer's files under the site directory."""
    write_explorer(Path(config["site_dir"]) / FOLDER)
