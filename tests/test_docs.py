"""The documentation cannot rot: every Python block in README.md and docs/ runs here.

Each ```python block is a complete program.  It runs in a fresh interpreter
(``sys.executable -W error``) in a temporary directory, with the checkout on
``PYTHONPATH``, against what the page names:

* the RTSP placeholder ``rtsp://user:password@192.0.2.10/stream1`` (or
  ``rtsp://192.0.2.10/stream1`` with ``username=``/``password=``) becomes the
  ``/secure`` mount of a real gst-rtsp-server on loopback, with those credentials;
* ``clip.mp4`` is a small H.264 file made with PyAV in that directory;
* the test source needs nothing.

A block preceded by the line ``<!-- snippet: skip (reason) -->`` is not run (it
needs a camera or a display); its page says why, and it must still compile.  A
block with ``if __name__ == "__main__":`` is a server: its module is imported
and its ``app`` served for real (uvicorn under asyncio, then hypercorn under
trio) and every GET route without parameters is requested; the response must be
200 and what its content type says (a JPEG decodes, an MJPEG stream yields
pictures, JSON parses).
"""

from __future__ import annotations

import io
import os
import re
import shutil
import subprocess
import sys
import textwrap
import tokenize
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

import camerapump as cp
from conftest import make_video
from netfaults import RtspServer

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
PAGES = [ROOT / "README.md", *sorted(DOCS.rglob("*.md"))]

PLACEHOLDER = "rtsp://user:password@192.0.2.10/stream1"
PLACEHOLDER_BARE = "rtsp://192.0.2.10/stream1"
PLACEHOLDER_HOST = "192.0.2.10"
# The credentials the placeholder carries; the fixture's server takes them.
USER, PASSWORD = "user", "password"
CLIP = "clip.mp4"

SNIPPET_TIMEOUT = 30.0
FENCE = re.compile(r"^(?P<indent>\s*)```(?P<lang>[\w+-]*)\s*$")
SKIP = re.compile(r"^\s*<!-- snippet: skip \((?P<reason>[^)]*\S[^)]*)\) -->\s*$")
SERVER = re.compile(r"^if __name__ == \"__main__\":", re.MULTILINE)

pytestmark = pytest.mark.timeout(120)


@dataclass(frozen=True)
class Snippet:
    """One fenced Python block of a page."""

    page: Path
    line: int  # of the opening fence, 1-based
    code: str
    skip: str | None  # the reason it is not run

    @property
    def name(self) -> str:
        return f"{self.page.relative_to(ROOT)}:{self.line}"

    @property
    def needs_rtsp(self) -> bool:
        return PLACEHOLDER_HOST in self.code

    @property
    def is_server(self) -> bool:
        return SERVER.search(self.code) is not None


def collect(page: Path) -> list[Snippet]:
    """The ```python blocks of ``page``, with the skip marker before each, if any."""
    snippets: list[Snippet] = []
    lines = page.read_text(encoding="utf-8").splitlines()
    i = 0
    while i < len(lines):
        opening = FENCE.match(lines[i])
        if opening is None:
            i += 1
            continue
        start, end = i, i + 1
        while end < len(lines) and not re.match(r"^\s*```\s*$", lines[end]):
            end += 1
        if opening["lang"] in ("python", "py"):
            before = [line for line in lines[:start] if line.strip()]
            marker = SKIP.match(before[-1]) if before else None
            code = textwrap.dedent("\n".join(lines[start + 1 : end])) + "\n"
            snippets.append(Snippet(page, start + 1, code, marker["reason"] if marker else None))
        i = end + 1
    return snippets


SNIPPETS = [snippet for page in PAGES for snippet in collect(page)]
RUNNABLE = [s for s in SNIPPETS if s.skip is None]


def nav_pages() -> list[str]:
    """The pages that mkdocs.yml's nav lists (paths relative to docs/)."""
    text = (ROOT / "mkdocs.yml").read_text(encoding="utf-8")
    nav = re.search(r"^nav:\n(?P<body>(?:[ \t]+.*\n|\n)+)", text, re.MULTILINE)
    assert nav is not None, "mkdocs.yml has no nav"
    return re.findall(r":\s*([\w./-]+\.md)\s*$", nav["body"], re.MULTILINE)


# -- the site's structure ----------------------------------------------------------------


def test_every_page_is_in_the_nav_and_every_nav_entry_exists() -> None:
    """mkdocs.yml's nav and the Markdown files under docs/ are the same set."""
    listed = nav_pages()
    on_disk = sorted(str(p.relative_to(DOCS)) for p in DOCS.rglob("*.md"))
    assert len(listed) == len(set(listed)), f"pages listed twice: {listed}"
    assert sorted(set(listed) - set(on_disk)) == [], "nav entries without a file"
    assert sorted(set(on_disk) - set(listed)) == [], "pages missing from the nav"


def test_the_readme_links_to_every_page() -> None:
    """README.md's Docs list links to each page of the nav, and each link resolves."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    linked = re.findall(r"\]\((docs/[^)#\s]+)", readme)
    for target in linked:
        assert (ROOT / target).is_file(), f"README links to a missing {target}"
    missing = [page for page in nav_pages() if f"docs/{page}" not in linked]
    assert missing == [], f"README does not link to {missing}"


def test_the_api_reference_covers_every_public_name() -> None:
    """docs/api.md renders each name of camerapump.__all__ (and nothing it lacks)."""
    rendered = re.findall(r"^::: camerapump\.(\w+)\s*$", (DOCS / "api.md").read_text(), re.M)
    assert sorted(set(cp.__all__) - set(rendered)) == []
    assert sorted(set(rendered) - set(cp.__all__)) == []


def test_skipped_blocks_say_why_and_still_compile() -> None:
    """A block that is not run has a reason in its marker, and is valid Python."""
    skipped = [s for s in SNIPPETS if s.skip is not None]
    for snippet in skipped:
        assert len(snippet.skip or "") >= 10, f"{snippet.name}: say why it is skipped"
        compile(snippet.code, snippet.name, "exec")
    # A marker that is not right before a Python block would skip nothing.
    markers = sum(1 for page in PAGES for line in page.read_text().splitlines() if SKIP.match(line))
    assert markers == len(skipped), "a snippet: skip marker that precedes no python block"


def test_the_collector_finds_blocks_and_markers(tmp_path: Path) -> None:
    """The collector sees indented and plain blocks, the skip marker, and no other language."""
    page = tmp_path / "page.md"
    page.write_text(
        "# t\n\n```python\nprint(1)\n```\n\n<!-- snippet: skip (needs a real camera) -->\n\n"
        "```python\nprint(2)\n```\n\n```bash\necho 3\n```\n\n- item:\n\n  ```python\n"
        "  print(4)\n  ```\n"
    )
    found = collect(page)
    assert [(s.code, s.skip) for s in found] == [
        ("print(1)\n", None),
        ("print(2)\n", "needs a real camera"),
        ("print(4)\n", None),
    ]
    assert [s.line for s in found] == [3, 9, 19]


# -- running the blocks ------------------------------------------------------------------


@pytest.fixture(scope="module")
def docs_rtsp() -> Iterator[RtspServer]:
    """The placeholder camera: gst-rtsp-server with the placeholder's credentials."""
    with RtspServer(gop=10, user=USER, password=PASSWORD) as server:
        yield server


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The ``clip.mp4`` that pages name: 3 s of 640x480 H.264 at 30 fps."""
    return make_video(tmp_path_factory.mktemp("clip") / CLIP, frames=90, width=640, height=480)


def prepare(snippet: Snippet, server: RtspServer | None) -> str:
    """The block's code with the placeholders replaced by what the tests run."""
    code = snippet.code
    if snippet.needs_rtsp:
        assert server is not None
        code = code.replace(PLACEHOLDER, server.url("/secure", auth=True))
        code = code.replace(PLACEHOLDER_BARE, server.url("/secure"))
        assert PLACEHOLDER_HOST not in without_comments(code), (
            f"{snippet.name}: use {PLACEHOLDER} (or {PLACEHOLDER_BARE}) for RTSP, "
            "which the tests replace; another address would not be reached"
        )
    return code


def without_comments(code: str) -> str:
    """``code`` less its comments (a comment may quote the placeholder as it was)."""
    tokens = tokenize.generate_tokens(io.StringIO(code).readline)
    return " ".join(tok.string for tok in tokens if tok.type != tokenize.COMMENT)


DRIVER = r'''
"""Serve the snippet's app for real and request every GET route without parameters."""
import io
import json
import runpy
import socket
import sys

import anyio
import av

namespace = runpy.run_path(sys.argv[1], run_name="snippet")
app = namespace["app"]
paths = [
    route.path
    for route in getattr(app, "routes", [])
    if "GET" in (getattr(route, "methods", None) or ())
    and "{" not in route.path
    and getattr(route, "include_in_schema", True)
]
assert paths, "the app has no GET route without parameters to request"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def get(port, path):
    """A plain HTTP/1.1 GET: status, headers and as much of the body as the check needs."""
    async with await anyio.connect_tcp("127.0.0.1", port) as conn:
        request = f"GET {path} HTTP/1.1\r\nHost: docs\r\nConnection: close\r\n\r\n"
        await conn.send(request.encode())
        data = b""
        while b"\r\n\r\n" not in data:
            data += await conn.receive()
        head, body = data.split(b"\r\n\r\n", 1)
        status_line, *lines = head.decode("latin-1").split("\r\n")
        headers = {k.strip().lower(): v.strip() for k, v in (line.split(":", 1) for line in lines)}
        length = int(headers.get("content-length", -1))
        multipart = headers.get("content-type", "").startswith("multipart/")
        while len(body) < length or (length < 0 and not multipart):
            try:
                body += await conn.receive()
            except anyio.EndOfStream:
                break
        while multipart and body.count(b"\xff\xd8") < 3:
            body += await conn.receive()  # then hang up, as a viewer that leaves
    if headers.get("transfer-encoding") == "chunked" and not multipart:
        body = dechunk(body)
    return int(status_line.split()[1]), headers, body


def dechunk(data):
    out = b""
    while data:
        size, _, data = data.partition(b"\r\n")
        n = int(size.split(b";")[0], 16)
        if n == 0:
            break
        out, data = out + data[:n], data[n + 2 :]
    return out


async def check(port, path):
    with anyio.fail_after(20):
        status, headers, body = await get(port, path)
    assert status == 200, (path, status, body[:300])
    kind = headers.get("content-type", "")
    assert body, f"{path}: empty body"
    if kind.startswith("image/"):
        with av.open(io.BytesIO(body)) as image:
            picture = next(image.decode(video=0))
        print(f"GET {path}: {kind}, {picture.width}x{picture.height}")
    elif kind.startswith("multipart/"):
        print(f"GET {path}: {kind}, 3 pictures")
    elif "json" in kind:
        print(f"GET {path}: {json.loads(body)!r:.200}")
    else:
        print(f"GET {path}: {kind}, {len(body)} bytes")


async def listening(port):
    with anyio.fail_after(15):
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                    return
            except OSError:
                await anyio.sleep(0.05)


async def main(backend):
    port, stop = free_port(), anyio.Event()
    async with anyio.create_task_group() as tg:
        if backend == "asyncio":
            import uvicorn

            server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port,
                                                   log_level="warning", lifespan="on"))

            async def serve():
                await server.serve()

            async def shutdown():
                await stop.wait()
                server.should_exit = True

            tg.start_soon(serve)
            tg.start_soon(shutdown)
        else:
            from hypercorn.config import Config
            from hypercorn.trio import serve

            config = Config()
            config.bind = [f"127.0.0.1:{port}"]
            config.accesslog = None
            tg.start_soon(lambda: serve(app, config, shutdown_trigger=stop.wait))
        await listening(port)
        for path in paths:
            await check(port, path)
        stop.set()
    print(f"served under {backend}")


anyio.run(main, "asyncio", backend="asyncio")
anyio.run(main, "trio", backend="trio")
'''


def run(argv: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    return subprocess.run(
        [sys.executable, "-W", "error", *argv],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=SNIPPET_TIMEOUT,
        check=False,
    )


def execute(snippet: Snippet, code: str, workdir: Path, clip: Path) -> Outcome:
    """Run one block in ``workdir`` (on a worker thread); what it printed, or a timeout."""
    if CLIP in code:
        shutil.copy(clip, workdir / CLIP)
    (workdir / "snippet.py").write_text(code, encoding="utf-8")
    argv = ["snippet.py"]
    if snippet.is_server:
        (workdir / "driver.py").write_text(DRIVER, encoding="utf-8")
        argv = ["driver.py", "snippet.py"]
    try:
        done = run(argv, workdir)
    except subprocess.TimeoutExpired as exc:
        out = exc.stdout.decode() if isinstance(exc.stdout, bytes) else exc.stdout or ""
        return Outcome(None, out, f"did not end within {SNIPPET_TIMEOUT} s")
    return Outcome(done.returncode, done.stdout, done.stderr)


@dataclass(frozen=True)
class Outcome:
    """How a block's run ended: its exit status (None: timed out) and its output."""

    returncode: int | None
    stdout: str
    stderr: str


@pytest.fixture(scope="module")
def outcomes(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, clip: Path
) -> Iterator[dict[str, Future[Outcome]]]:
    """Every selected block, started at once: most of their time is waiting on real time.

    The blocks that use the RTSP camera run one after another (gst-rtsp-server
    1.22 can abort when two clients SET UP one mount at the same moment); the
    others run beside them, two at a time.
    """
    selected = {
        item.callspec.params["snippet"].name
        for item in request.session.items
        if getattr(item, "originalname", None) == "test_snippet_runs"
    }
    chosen = [s for s in RUNNABLE if s.name in selected]
    server = None
    if any(s.needs_rtsp for s in chosen):
        server = request.getfixturevalue("docs_rtsp")
    futures: dict[str, Future[Outcome]] = {}
    with (
        ThreadPoolExecutor(1, thread_name_prefix="docs-rtsp") as rtsp,
        ThreadPoolExecutor(2, thread_name_prefix="docs-other") as other,
    ):
        for snippet in chosen:
            pool = rtsp if snippet.needs_rtsp else other
            try:
                code = prepare(snippet, server)
            except AssertionError as exc:  # this block's own failure, not every block's
                futures[snippet.name] = failed = Future()
                failed.set_result(Outcome(None, "", str(exc)))
                continue
            workdir = tmp_path_factory.mktemp("snippet")
            futures[snippet.name] = pool.submit(execute, snippet, code, workdir, clip)
        yield futures
        for future in futures.values():
            future.cancel()


@pytest.mark.parametrize("snippet", RUNNABLE, ids=[s.name for s in RUNNABLE])
def test_snippet_runs(snippet: Snippet, outcomes: dict[str, Future[Outcome]]) -> None:
    """The block runs to its end, exit status 0, against the test fixtures."""
    outcome = outcomes[snippet.name].result(timeout=SNIPPET_TIMEOUT * (len(outcomes) + 1))
    assert outcome.returncode == 0, (
        f"{snippet.name} failed ({outcome.returncode}):\n{outcome.stdout}\n{outcome.stderr}"
    )


def test_a_failing_block_fails_its_test(tmp_path: Path) -> None:
    """The runner reports a block that exits non-zero, or warns, as a failure."""
    (tmp_path / "bad.py").write_text("import camerapump\nraise SystemExit(3)\n")
    assert run(["bad.py"], tmp_path).returncode == 3
    (tmp_path / "warns.py").write_text("import warnings\nwarnings.warn('x')\n")
    assert run(["warns.py"], tmp_path).returncode != 0  # warnings are errors here too


def test_an_rtsp_block_must_use_the_placeholder() -> None:
    """A block naming another address of the placeholder host fails instead of hanging."""

    class Server:
        def url(self, path: str, *, auth: bool = False) -> str:
            return f"rtsp://127.0.0.1:8554{path}"

    good = Snippet(ROOT / "x.md", 1, f"URL = {PLACEHOLDER!r}  # {PLACEHOLDER_HOST}\n", None)
    server: Any = Server()
    assert prepare(good, server) == "URL = 'rtsp://127.0.0.1:8554/secure'  # 192.0.2.10\n"
    bad = Snippet(ROOT / "x.md", 1, "URL = 'rtsp://192.0.2.10/other'\n", None)
    with pytest.raises(AssertionError, match="another address would not be reached"):
        prepare(bad, server)


def test_the_server_driver_fails_on_a_bad_endpoint(tmp_path: Path) -> None:
    """A served app whose endpoint answers 500 fails its block."""
    (tmp_path / "snippet.py").write_text(
        "from starlette.applications import Starlette\n"
        "from starlette.responses import Response\n"
        "from starlette.routing import Route\n\n\n"
        "async def broken(request):\n"
        "    return Response('no', status_code=500)\n\n\n"
        "app = Starlette(routes=[Route('/broken', broken)])\n"
    )
    (tmp_path / "driver.py").write_text(DRIVER)
    done = run(["driver.py", "snippet.py"], tmp_path)
    assert done.returncode != 0
    assert "500" in done.stderr
