"""Developer sessions: ``nox -s tests``, ``lint``, ``typecheck``, ``docs``, ``bench``."""

from __future__ import annotations

import os
import shutil
import subprocess

import nox

nox.options.sessions = ["tests", "lint", "typecheck"]
nox.options.reuse_existing_virtualenvs = True

# The RTSP test server is GStreamer's gst-rtsp-server, run by the system python3
# (plugins-bad: x265enc and voaacenc for /h265 and /h264-aac). The other test
# servers (tests/servers.py) are FFmpeg 5.1 and nginx with its RTMP module.
# On Debian 12, with the GStreamer packages already there, `apt-get install
# ffmpeg nginx libnginx-mod-rtmp` took about 9 s (plus 1 s of apt-get update).
SYSTEM_PACKAGES = [
    "gir1.2-gst-rtsp-server-1.0",
    "python3-gi",
    "gstreamer1.0-plugins-base",
    "gstreamer1.0-plugins-good",
    "gstreamer1.0-plugins-ugly",
    "gstreamer1.0-plugins-bad",
    "ffmpeg",
    "nginx",
    "libnginx-mod-rtmp",
    "chromium",  # tests/test_serve.py: a real browser on the live viewer's page
]
GST_ELEMENTS = [
    "x264enc", "jpegenc", "x265enc", "voaacenc", "alawenc", "rtph265pay", "rtpmp4gpay",
    "rtppcmapay", "audiotestsrc", "videoscale",
]  # fmt: skip
GST_PROBE = (
    "import gi; gi.require_version('Gst', '1.0'); gi.require_version('GstRtspServer', '1.0'); "
    "from gi.repository import Gst, GstRtspServer; Gst.init(None); "
    f"missing = [e for e in {GST_ELEMENTS!r} if not Gst.ElementFactory.find(e)]; "
    "assert not missing, missing"
)
SYSTEM_PYTHON = "/usr/bin/python3"
NGINX_RTMP_MODULE = "/usr/lib/nginx/modules/ngx_rtmp_module.so"  # from libnginx-mod-rtmp
FFMPEG_ENCODERS = ("libx264", "aac", "mjpeg")


def _gst_ready() -> bool:
    if not os.path.exists(SYSTEM_PYTHON):
        return False
    probe = subprocess.run([SYSTEM_PYTHON, "-c", GST_PROBE], capture_output=True, check=False)
    return probe.returncode == 0


def _servers_missing() -> list[str]:
    """What the FFmpeg/nginx test servers lack (empty when they are ready)."""
    tools = ("ffmpeg", "nginx", "setpriv", "chromium")
    missing = [tool for tool in tools if shutil.which(tool) is None]
    if not os.path.exists(NGINX_RTMP_MODULE):
        missing.append(NGINX_RTMP_MODULE)
    if shutil.which("ffmpeg") is not None:
        encoders = subprocess.run(
            ["ffmpeg", "-hide_banner", "-encoders"], capture_output=True, text=True, check=False
        ).stdout
        missing += [f"ffmpeg encoder {e}" for e in FFMPEG_ENCODERS if f" {e} " not in encoders]
    return missing


def _ready() -> bool:
    return _gst_ready() and not _servers_missing()


def _ensure_rtsp_server(session: nox.Session) -> None:
    """Install the test servers' Debian packages when we can; fail clearly when we can't."""
    if _ready():
        return
    can_install = (
        shutil.which("apt-get") is not None and hasattr(os, "geteuid") and os.geteuid() == 0
    )
    if can_install:
        session.log("installing the test servers: " + " ".join(SYSTEM_PACKAGES))
        env = {"DEBIAN_FRONTEND": "noninteractive"}
        session.run("apt-get", "update", "-qq", external=True, env=env)
        session.run("apt-get", "install", "-y", "-qq", *SYSTEM_PACKAGES, external=True, env=env)
    if not _gst_ready():
        session.error(
            "the RTSP tests need GStreamer's RTSP server for the system python3 "
            f"(elements: {', '.join(GST_ELEMENTS)}): apt-get install {' '.join(SYSTEM_PACKAGES)}"
        )
    if missing := _servers_missing():
        session.error(
            f"the server tests (tests/servers.py) need {', '.join(missing)}: "
            f"apt-get install {' '.join(SYSTEM_PACKAGES)}"
        )


@nox.session
def tests(session: nox.Session) -> None:
    """Run the test suite, the real RTSP, FFmpeg and nginx-rtmp servers included."""
    _ensure_rtsp_server(session)
    session.install("-e", ".[test]")
    session.run("pytest", *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    """ruff check and ruff format --check (Python, and the Python in the Markdown docs)."""
    session.install("ruff==0.17.6")  # pinned: a new ruff may format differently
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session
def typecheck(session: nox.Session) -> None:
    """mypy --strict on the package."""
    session.install("mypy==2.4.1", "trio>=0.25", "-e", ".[serve]")  # camerapump.serve's types
    session.run("mypy", "--strict", "camerapump")


@nox.session
def docs(session: nox.Session) -> None:
    """Build the documentation site with mkdocs --strict (any warning fails) into build/site."""
    session.install("-e", ".[docs]")  # the pinned MkDocs, Material and mkdocstrings
    # NO_MKDOCS_2_WARNING: Material's end-of-life banner is printed on every build.
    session.run("mkdocs", "build", "--strict", *session.posargs, env={"NO_MKDOCS_2_WARNING": "1"})


@nox.session
def bench(session: nox.Session) -> None:
    """Benchmarks against PyAV, OpenCV, aiortc and ffmpeg in one run; writes the report.

    Writes benchmarks/results.json, docs/benchmarks.md and its plots
    (docs/benchmarks/*.png). ``nox -s bench -- --quick`` for a short run,
    ``-- --only streams,shaped`` for some scenarios.
    """
    _ensure_rtsp_server(session)  # gst-rtsp-server and the ffmpeg CLI (the floor)
    session.install("-e", ".[bench]")  # OpenCV, aiortc, trio, matplotlib
    session.run("python", "benchmarks/run.py", *session.posargs)
