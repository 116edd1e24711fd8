"""Draw docs/timeline.svg: a real RTSP server restart, with status events and frames over time.

Run from the repository root (it needs GStreamer's gst-rtsp-server for
/usr/bin/python3, as the tests do, and matplotlib)::

    python docs/timeline.py            # a new run: timeline.json and timeline.svg
    python docs/timeline.py --redraw   # the picture again from timeline.json

Two pumps watch one gst-rtsp-server on loopback (tests/netfaults.py), each with
the default ReconnectPolicy: one streams (``async for``), one is paused
(``set_active(False)``) and takes a ``capture_frame(timeout=10)`` every half
second, as a snapshot service does.  After a few seconds the server is killed
(SIGKILL: no teardown), and 4 s later started again on the same port.  Every
status event, every frame and every capture is timed on one clock; the raw
times go to docs/timeline.json, and the picture is drawn from them.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

import anyio  # noqa: E402
import matplotlib as mpl  # noqa: E402

import camerapump as cp  # noqa: E402
from netfaults import RtspServer  # noqa: E402

mpl.use("Agg")
import matplotlib.lines  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402

KILL_AT = 3.0  # seconds after the first frame
DOWN_FOR = 4.0  # seconds the server stays dead
AFTER = 3.0  # seconds to keep watching once both pumps are back
LIMIT = 40.0  # give up on a run that does not recover


@dataclass
class Run:
    """What one run saw, in seconds from its start."""

    frames: list[float] = field(default_factory=list)  # the streaming pump's frames
    captures: list[float] = field(default_factory=list)  # the paused pump's captures
    failed_captures: list[float] = field(default_factory=list)
    events: list[tuple[str, float, dict[str, Any]]] = field(default_factory=list)  # pump, t, event
    killed: float = 0.0
    ready: float = 0.0  # the restarted server said READY

    def back(self) -> bool:
        """Both pumps have frames again after the restart."""
        return any(t > self.ready for t in self.frames) and any(
            t > self.ready for t in self.captures
        )


async def main() -> Run:
    run = Run()
    start, wall = time.monotonic(), time.time()

    def now() -> float:
        return time.monotonic() - start

    with RtspServer(gop=10) as server:
        # Two mounts, one encoder each: gst-rtsp-server 1.22 can abort when two
        # clients SETUP one shared mount at the same moment.
        streaming = cp.Source.rtsp(server.url("/h264"))
        paused = cp.Source.rtsp(server.url("/secure", auth=True))
        async with cp.open_pump(streaming) as a, cp.open_pump(paused) as b:
            b.set_active(False)

            async def events(name: str, pump: cp.Pump) -> None:
                while True:
                    event = await pump.status.get()
                    data = event.as_dict()
                    del data["at"]  # when it was sent: the time below
                    run.events.append((name, event.at - wall, data))

            async def frames() -> None:
                async for _ in a:
                    run.frames.append(now())

            async def captures() -> None:
                while True:
                    asked = now()
                    frame = await b.capture_frame(timeout=10)
                    (run.captures if frame is not None else run.failed_captures).append(now())
                    await anyio.sleep(max(0.0, 0.5 - (now() - asked)))

            async def outage() -> None:
                while not run.frames:  # noqa: ASYNC110 - polling our own list
                    await anyio.sleep(0.01)
                await anyio.sleep(KILL_AT)
                run.killed = now()
                server.kill()
                await anyio.sleep(DOWN_FOR)
                await anyio.to_thread.run_sync(server.restart)  # waits for READY
                run.ready = now()

            async with anyio.create_task_group() as tg:
                for name, pump in (("streaming", a), ("paused", b)):
                    tg.start_soon(events, name, pump)
                tg.start_soon(frames)
                tg.start_soon(captures)
                tg.start_soon(outage)
                with anyio.move_on_after(LIMIT):
                    while not (run.ready and run.back()):  # noqa: ASYNC110
                        await anyio.sleep(0.05)
                    await anyio.sleep(AFTER)
                tg.cancel_scope.cancel()
    return run


def draw(run: Run, path: Path) -> None:
    """The timeline: the server's state, then each pump's events and frames, on one time axis."""
    mpl.rcParams.update({"svg.hashsalt": "camerapump", "svg.fonttype": "none", "font.size": 9})
    end = max([*run.frames, *run.captures, run.ready]) + 0.4
    fig, ax = plt.subplots(figsize=(10, 4.4))
    # The server.
    ax.broken_barh([(0, run.killed), (run.ready, end)], (3.1, 0.3), color="#9ae6b4")
    ax.broken_barh([(run.killed, run.ready - run.killed)], (3.1, 0.3), color="#feb2b2")
    ax.text(run.killed / 2, 3.25, "server up", ha="center", va="center")
    ax.text((run.killed + run.ready) / 2, 3.25, "killed (SIGKILL)", ha="center", va="center")
    ax.text((run.ready + end) / 2, 3.25, "restarted", ha="center", va="center")
    for t in (run.killed, run.ready):
        ax.axvline(t, color="#c53030", linewidth=0.7, linestyle="--", zorder=0)
    # Frames (the streaming pump) and captures (the paused pump, one every 0.5 s).
    ax.eventplot(
        [run.frames, run.captures, run.failed_captures],
        lineoffsets=[2.0, 1.0, 1.0],
        linelengths=[0.35, 0.35, 0.35],
        linewidths=[0.5, 1.8, 1.8],
        colors=["#2b6cb0", "#2f855a", "#c53030"],
    )
    # Events: a marker when it was sent; a reconnect's backoff as a bar; a short label.
    for name, t, event in run.events:
        y = (2.0 if name == "streaming" else 1.0) + 0.38
        kind = event["event"]
        if kind == "reconnecting":
            ax.plot([t, t + event["delay"]], [y, y], color="#ed8936", linewidth=5, alpha=0.35)
            ax.plot([t], [y], marker="o", color="#dd6b20", markersize=4)
            reason = str(event["reason"]).split(":")[0]
            label = f"#{event['attempt']} {reason}, {event['delay']:.1f} s"
            # Attempts follow each other closely: alternate two rows of labels.
            ax.text(t, y + 0.08 + 0.2 * (event["attempt"] % 2), label, fontsize=7, va="bottom")
        elif kind == "connected":
            ax.plot([t], [y], marker="^", color="#2f855a", markersize=6)
            ax.text(t, y + 0.08, "connected", fontsize=7, va="bottom")
        else:
            ax.plot([t], [y], marker="o", color="#718096", markersize=3)
    ax.set_yticks(
        [1.15, 2.15, 3.25], ["paused pump:\ncaptures", "streaming pump:\nframes", "RTSP server"]
    )
    ax.tick_params(axis="y", length=0)
    ax.set_ylim(0.7, 3.55)
    ax.set_xlim(0, end)
    ax.set_xlabel("seconds since the pumps were opened")
    for side in ("top", "right", "left"):
        ax.spines[side].set_visible(False)
    handles = [
        mpl.lines.Line2D([], [], color="#2b6cb0", marker="|", linestyle="", markersize=9),
        mpl.lines.Line2D([], [], color="#2f855a", marker="|", linestyle="", markersize=9),
        mpl.lines.Line2D([], [], color="#718096", marker="o", linestyle="", markersize=3),
        mpl.lines.Line2D([], [], color="#2f855a", marker="^", linestyle=""),
        mpl.lines.Line2D([], [], color="#ed8936", linewidth=5, alpha=0.35, marker="o"),
    ]
    labels = [
        "frame",
        "capture",
        "Connecting",
        "Connected",
        "Reconnecting #attempt reason, then its backoff",
    ]
    fig.legend(handles, labels, loc="lower center", ncols=5, frameon=False, fontsize=8)
    fig.tight_layout(rect=(0, 0.06, 1, 1))
    fig.savefig(path, metadata={"Date": None})
    plt.close(fig)


def save(run: Run, path: Path) -> None:
    """The raw times, from which the picture is drawn (``--redraw`` draws it again)."""
    data = {
        "killed": round(run.killed, 3),
        "ready": round(run.ready, 3),
        "events": [[n, round(t, 3), e] for n, t, e in run.events],
        "frames": [round(t, 3) for t in run.frames],
        "captures": [round(t, 3) for t in run.captures],
        "failed_captures": [round(t, 3) for t in run.failed_captures],
    }
    path.write_text(json.dumps(data, indent=1) + "\n")


def load(path: Path) -> Run:
    data = json.loads(path.read_text())
    return Run(
        frames=data["frames"],
        captures=data["captures"],
        failed_captures=data["failed_captures"],
        events=[(n, t, e) for n, t, e in data["events"]],
        killed=data["killed"],
        ready=data["ready"],
    )


if __name__ == "__main__":
    here = Path(__file__).resolve().parent
    if "--redraw" in sys.argv:
        result = load(here / "timeline.json")
    else:
        result = asyncio.run(main())
        if not (result.ready and result.back()):
            sys.exit("the pumps did not recover within the limit; no picture drawn")
        save(result, here / "timeline.json")
    target = (
        Path(sys.argv[-1]) if sys.argv[-1].endswith((".svg", ".png")) else here / "timeline.svg"
    )
    draw(result, target)
    sys.stdout.write(f"wrote {target}\n")
