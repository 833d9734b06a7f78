"""The explorer: a self-contained static page that evaluates the model's closed forms in the browser.

``costmodel explore --out DIR`` (or :func:`write_explorer`) writes ``index.html`` with its JavaScript
and CSS: the SymPy expressions :func:`costmodel.predict` compiles, printed as JavaScript
(:mod:`costmodel.explorer.jscode`), and the catalog as the numbers they read
(:mod:`costmodel.explorer.data`). The page needs no server and no network; ``window.costmodel.evaluate``
returns what ``costmodel predict --json`` does for the same settings.
"""

from .page import DEFAULT_DIR, write_explorer

__all__ = ["DEFAULT_DIR", "write_explorer"]
