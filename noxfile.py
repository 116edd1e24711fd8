"""Developer sessions: ``nox -s tests``, ``lint``, ``typecheck``, ``bench``."""

from __future__ import annotations

import os
import shutil
import subprocess

import nox

nox.options.sessions = ["tests", "lint", "typecheck"]
nox.options.reuse_existing_virtualenvs = True

# The RTSP test server is GStreamer's gst-rtsp-server, run by the system python3.
SYSTEM_PACKAGES = [
    "gir1.2-gst-rtsp-server-1.0",
    "python3-gi",
    "gstreamer1.0-plugins-base",
    "gstreamer1.0-plugins-good",
    "gstreamer1.0-plugins-ugly",
]
GST_PROBE = (
    "import gi; gi.require_version('Gst', '1.0'); gi.require_version('GstRtspServer', '1.0'); "
    "from gi.repository import Gst, GstRtspServer; Gst.init(None); "
    "assert Gst.ElementFactory.find('x264enc') and Gst.ElementFactory.find('jpegenc')"
)
SYSTEM_PYTHON = "/usr/bin/python3"


def _gst_ready() -> bool:
    if not os.path.exists(SYSTEM_PYTHON):
        return False
    probe = subprocess.run([SYSTEM_PYTHON, "-c", GST_PROBE], capture_output=True, check=False)
    return probe.returncode == 0


def _ensure_rtsp_server(session: nox.Session) -> None:
    """Install the RTSP test server's Debian packages when we can; fail clearly when we can't."""
    if _gst_ready():
        return
    can_install = (
        shutil.which("apt-get") is not None and hasattr(os, "geteuid") and os.geteuid() == 0
    )
    if can_install:
        session.log("installing the RTSP test server: " + " ".join(SYSTEM_PACKAGES))
        env = {"DEBIAN_FRONTEND": "noninteractive"}
        session.run("apt-get", "update", "-qq", external=True, env=env)
        session.run("apt-get", "install", "-y", "-qq", *SYSTEM_PACKAGES, external=True, env=env)
    if not _gst_ready():
        session.error(
            "the RTSP tests need GStreamer's RTSP server for the system python3: "
            f"apt-get install {' '.join(SYSTEM_PACKAGES)}"
        )


@nox.session
def tests(session: nox.Session) -> None:
    """Run the test suite, the real RTSP server included."""
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
    session.install("mypy==2.4.1", "trio>=0.25", "-e", ".")
    session.run("mypy", "--strict", "camerapump")


@nox.session
def bench(session: nox.Session) -> None:
    """Benchmarks against raw PyAV (and OpenCV) in the same run; prints a table."""
    _ensure_rtsp_server(session)
    session.install("-e", ".[bench]")
    session.run("python", "benchmarks/run.py", *session.posargs)
