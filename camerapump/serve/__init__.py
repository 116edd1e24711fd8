"""camerapump.serve: every camera live in a browser, with snapshot, MJPEG and status endpoints.

``camerapump.serve.app(pumps)`` is an ASGI application (Starlette) to mount in
your own Starlette or FastAPI app; ``camerapump serve SOURCE ...`` (or
``python -m camerapump.serve SOURCE ...``) serves it with uvicorn.  Both need
the ``serve`` extra: ``python3 -m pip install 'camerapump[serve]'``.
"""

from __future__ import annotations

try:
    import starlette  # noqa: F401 - only to say clearly what is missing
    import uvicorn  # noqa: F401
except ImportError as exc:
    raise ImportError(
        "camerapump.serve needs the 'serve' extra (Starlette and uvicorn), and "
        f"{exc.name or 'a part of it'} is not installed: "
        "python3 -m pip install 'camerapump[serve]'",
        name=exc.name,
    ) from None

from ._app import app  # only once the extra is known to be there

__all__ = ["app"]

app.__module__ = __name__
