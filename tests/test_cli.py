"""The command line, run as a subprocess the way a user (or a script) runs it."""

from __future__ import annotations

import dataclasses
import json
import os
import pty
import queue
import re
import select
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

import av
import pytest

import camerapump as cp
from camerapump._cli import LINE_WIDTH, build_parser, live_line
from conftest import make_video
from netfaults import RtspServer, SilentResponder, TcpProxy

pytestmark = pytest.mark.timeout(60)

CLI = [sys.executable, "-m", "camerapump"]


def run(
    *args: str, timeout: float = 40, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CLI, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        env=None if env is None else {**os.environ, **env},
    )


class Live:
    """A CLI process whose stdout and stderr lines are read while it runs."""

    def __init__(self, *args: str) -> None:
        self.proc = subprocess.Popen(
            [*CLI, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        self.stdout: queue.Queue[str] = queue.Queue()
        self.stderr: queue.Queue[str] = queue.Queue()
        self.out_lines: list[str] = []
        self.err_lines: list[str] = []
        self._readers = [
            threading.Thread(target=self._read, args=(stream, lines), daemon=True)
            for stream, lines in ((self.proc.stdout, self.stdout), (self.proc.stderr, self.stderr))
        ]
        for reader in self._readers:
            reader.start()

    @staticmethod
    def _read(stream: IO[str] | None, lines: queue.Queue[str]) -> None:
        assert stream is not None
        for line in stream:
            lines.put(line.rstrip("\n"))

    def _wait(
        self, lines: queue.Queue[str], seen: list[str], match: Callable[[str], bool], timeout: float
    ) -> str:
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no such line within {timeout} s; saw {seen[-5:]}")
            try:
                line = lines.get(timeout=left)
            except queue.Empty:
                continue
            seen.append(line)
            if match(line):
                return line

    def stdout_line(self, match: Callable[[str], bool], timeout: float = 15) -> str:
        return self._wait(self.stdout, self.out_lines, match, timeout)

    def stderr_line(self, match: Callable[[str], bool], timeout: float = 15) -> str:
        return self._wait(self.stderr, self.err_lines, match, timeout)

    def finish(self, timeout: float = 30) -> tuple[int, list[str], list[str]]:
        """Wait for the exit; return (status, every stdout line, every stderr line)."""
        status = self.proc.wait(timeout)
        time.sleep(0.1)  # let the reader threads drain the pipes
        for lines, seen in ((self.stdout, self.out_lines), (self.stderr, self.err_lines)):
            while not lines.empty():
                seen.append(lines.get_nowait())
        return status, self.out_lines, self.err_lines

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(5)
        for reader in self._readers:
            reader.join(5)
        for stream in (self.proc.stdout, self.proc.stderr):
            if stream is not None:
                stream.close()


@pytest.fixture
def live() -> Iterator[Callable[..., Live]]:
    started: list[Live] = []

    def start(*args: str) -> Live:
        process = Live(*args)
        started.append(process)
        return process

    yield start
    for process in started:
        process.close()


def json_lines(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def duration(path: Path) -> float:
    with av.open(str(path)) as container:
        return (container.duration or 0) / 1e6


def is_json(line: str) -> bool:
    return line.startswith("{")


# -- watch ----------------------------------------------------------------------------------


def test_watch_json_prints_event_objects_and_stops_after_n_frames() -> None:
    """`watch --json --frames 45`: status events, statistics and a summary, each a JSON object."""
    result = run("watch", "test:", "--json", "--frames", "45")
    assert result.returncode == 0, result.stderr
    records = json_lines(result.stdout)
    assert all("event" in r for r in records)
    assert [r["event"] for r in records[:2]] == ["connecting", "connected"]
    assert records[1]["format"] == {
        "width": 640,
        "height": 480,
        "fps": 30.0,
        "fps_measured": False,
        "pixel_format": "bgr24",
        "codec": "wrapped_avframe",
    }
    statistics = [r for r in records if r["event"] == "statistics"]
    assert statistics
    assert {"fps", "last_frame_age", "frames_dropped", "reconnects", "state", "format"} <= set(
        statistics[0]
    )
    summary = records[-1]
    assert summary["event"] == "summary"
    assert summary["frames"] == 45
    assert summary["frames_delivered"] >= 45


def test_watch_without_a_source_uses_the_test_pattern_when_no_camera() -> None:
    """With no camera attached, plain `watch` streams the test pattern and prints a summary."""
    result = run("watch", "--frames", "5")
    assert result.returncode == 0, result.stderr
    assert "test:testsrc2" in result.stderr
    assert re.search(r"test:testsrc2: 5 frames in .* s", result.stdout.splitlines()[-1])


def test_watch_live_lines_fit_80_columns_and_show_the_last_event_short() -> None:
    """Without a terminal: one live line a second, within 80 columns, then the summary line."""
    result = run("watch", "test:", "--seconds", "2.5")
    assert result.returncode == 0, result.stderr
    *lines, summary = result.stdout.splitlines()
    assert len(lines) >= 2
    for line in lines:
        assert len(line) <= LINE_WIDTH, line
        assert line.endswith("connected 640x480@30 wrapped_avframe->bgr24"), line
        assert "Connected(" not in line
    assert re.fullmatch(
        r"test:testsrc2: \d+ frames in 2\.\d s \(\d+\.\d fps\), 0 dropped, 0 reconnects, "
        r"connected",
        summary,
    ), summary


def test_watch_on_a_terminal_rewrites_one_line_within_80_columns() -> None:
    """On a terminal the live line is rewritten in place (\\r) and never wider than 79."""
    master, slave = pty.openpty()
    proc = subprocess.Popen(
        [*CLI, "watch", "test:", "--seconds", "2.5"], stdout=slave, stderr=subprocess.DEVNULL
    )
    os.close(slave)
    output = b""
    try:
        while True:
            ready, _, _ = select.select([master], [], [], 10)
            if not ready:
                break
            try:
                chunk = os.read(master, 4096)
            except OSError:  # EIO: the child closed the terminal
                break
            if not chunk:
                break
            output += chunk
        assert proc.wait(10) == 0
    finally:
        os.close(master)
        if proc.poll() is None:
            proc.kill()
    text = output.decode()
    updates = [u.replace("\x1b[K", "").strip("\r\n") for u in text.split("\r") if u.strip()]
    *rewritten, summary = updates
    assert len(rewritten) >= 2
    assert all(len(u) <= LINE_WIDTH and re.match(r"\d+ fps  age ", u) for u in rewritten), updates
    assert "frames in 2.5 s" in summary


def test_the_live_line_stays_within_80_columns_with_big_figures() -> None:
    """Big figures and long events: the line never passes 79 columns; short events show whole."""
    stats = cp.PumpStatistics(
        state=cp.PumpState.RECONNECTING,
        active=True,
        frames_decoded=10**9,
        frames_converted=10**9,
        frames_delivered=10**9,
        frames_dropped=12345,
        reconnects=3,
        reconnect_attempts=9,
        decode_errors=0,
        last_frame_age=123.4,
        fps=0.0,
        format=None,
    )
    event = cp.Reconnecting(1, 0.9, "end_of_stream")
    line = live_line(stats, event)
    assert line == "0 fps  age 123 s  12345 dropped  reconnecting #1 in 0.9 s (end_of_stream)"
    calm = dataclasses.replace(stats, fps=30.0, frames_dropped=0, last_frame_age=0.0334)
    connected = cp.Connected(cp.StreamFormat(640, 480, 30.0, "bgr24", "h264"))
    assert live_line(calm, connected) == (
        "30 fps  age 33 ms  0 dropped  3 reconnects  connected 640x480@30 h264->bgr24"
    )
    long = live_line(stats, cp.Reconnecting(12, 30.0, "open_failed:AuthenticationFailed"))
    assert len(long) == LINE_WIDTH
    assert long.endswith("...")
    assert long.startswith("0 fps  age 123 s  12345 dropped  reconnecting #12 in 30.0 s")


def test_watch_seconds_bounds_the_run(video_file: Path) -> None:
    """`--seconds` stops the watch; a file source works too."""
    result = run("watch", str(video_file), "--seconds", "1", "--json")
    assert result.returncode == 0, result.stderr
    summary = json_lines(result.stdout)[-1]
    assert summary["event"] == "summary"
    assert summary["seconds"] < 2


def test_watch_loop_plays_a_file_again(tmp_path: Path) -> None:
    """`--loop` on a 1 s file keeps frames coming for 2.5 s; without it the watch ends at 1 s."""
    clip = make_video(tmp_path / "one.mp4", frames=30)
    looped = json_lines(run("watch", str(clip), "--loop", "--seconds", "2.5", "--json").stdout)
    once = json_lines(run("watch", str(clip), "--seconds", "2.5", "--json").stdout)
    assert looped[-1]["frames"] > 50
    assert once[-1]["frames"] <= 30
    assert once[-1]["state"] == "ended"


def test_watch_output_size_and_max_fps_shape_what_watch_takes() -> None:
    """`--output-size 320x180 --max-fps 5`: frames taken at about 5 a second, of that size."""
    result = run(
        "watch", "test:", "--output-size", "320x180", "--max-fps", "5", "--seconds", "3", "--json"
    )
    assert result.returncode == 0, result.stderr
    summary = json_lines(result.stdout)[-1]
    assert summary["consumers"][0]["output"].startswith("320x180 <=5 fps")
    assert 8 <= summary["frames"] <= 17
    assert summary["fps"] >= 25  # the stream itself still decodes at 30


@pytest.mark.rtsp
def test_watch_shows_a_frozen_stream_as_frozen_then_reconnecting(
    own_rtsp_server: RtspServer, live: Callable[..., Live]
) -> None:
    """A frozen link: age grows and fps drops to 0 at once; the watchdog then turns it reconnecting.

    Ctrl-C then ends the watch with a summary line and status 130.
    """
    with TcpProxy(("127.0.0.1", own_rtsp_server.port)) as proxy:
        url = f"rtsp://127.0.0.1:{proxy.port}/h264"
        watch = live("watch", url, "--json", "--stall-timeout", "3", "--backoff", "20")

        def flowing(line: str) -> bool:
            record = json.loads(line)
            return record["event"] == "statistics" and record["fps"] > 20

        watch.stdout_line(flowing)
        proxy.freeze()
        frozen_at = time.monotonic()
        figures = []
        while True:
            record = json.loads(watch.stdout_line(is_json, timeout=10))
            if record["event"] == "reconnecting":
                assert record["reason"] == "stall_timeout_exceeded"
                stalled_after = time.monotonic() - frozen_at
            if record["event"] == "statistics":
                figures.append(record)
                if record["state"] == "reconnecting":
                    break
        assert 2.5 < stalled_after < 6
        ages = [f["last_frame_age"] for f in figures]
        assert ages == sorted(ages)
        assert ages[-1] > 2.5
        assert figures[-2]["fps"] == 0  # a second into the freeze, nothing decoded
        watch.proc.send_signal(signal.SIGINT)
        status, out, _ = watch.finish()
    assert status == 130
    summary = json.loads(out[-1])
    assert summary["event"] == "summary"
    assert summary["state"] == "reconnecting"


# -- errors and exit statuses --------------------------------------------------------------


def test_bad_source_exits_2_with_one_line() -> None:
    """An unknown SOURCE is a usage error: exit 2, one line, no traceback."""
    result = run("watch", "no-such-thing")
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1
    assert "is not a source" in result.stderr
    assert "Traceback" not in result.stderr


def test_bad_option_exits_2() -> None:
    """A malformed option is a usage error."""
    result = run("watch", "test:", "--size", "big")
    assert result.returncode == 2
    assert "WIDTHxHEIGHT" in result.stderr


@pytest.mark.parametrize("form", ["{}", "file:{}"])
def test_a_missing_file_says_no_such_file(tmp_path: Path, form: str) -> None:
    """A file that is not there, as PATH or as file:PATH: "no such file: PATH", exit 1."""
    missing = tmp_path / "gone.mp4"
    result = run("watch", form.format(missing))
    assert result.returncode == 1
    assert f"camerapump: no such file: {missing} (DeviceNotFound)" in result.stderr.splitlines()


def test_the_file_label_camerapump_prints_is_accepted_back(video_file: Path) -> None:
    """The `file:PATH` label in camerapump's own output works as SOURCE."""
    first = run("probe", str(video_file))
    assert first.returncode == 0, first.stderr
    label = first.stdout.split(": ")[0]
    assert label == f"file:{video_file}"
    again = run("probe", label)
    assert again.returncode == 0, again.stderr
    assert again.stdout == first.stdout


def test_a_refused_connection_is_one_line_and_its_detail() -> None:
    """Nothing listening: "connection refused: URL", the redacted detail under it, exit 1."""
    result = run("probe", "rtsp://127.0.0.1:1/h264")
    assert result.returncode == 1
    lines = result.stderr.splitlines()
    assert lines[-2] == "camerapump: connection refused: rtsp://127.0.0.1:1/h264 (ConnectionFailed)"
    assert lines[-1].startswith("camerapump:   ConnectionRefusedError: [Errno 111]")


def test_a_failing_stream_in_json_mode_ends_with_one_error_object() -> None:
    """`--json`: the last stdout line is {"event": "error", "error": ..., "message", "detail"}."""
    result = run("watch", "rtsp://127.0.0.1:1/h264", "--json")
    assert result.returncode == 1
    last = json_lines(result.stdout)[-1]
    assert last["event"] == "error"
    assert last["error"] == "ConnectionFailed"
    assert last["message"].startswith("connection refused: rtsp://127.0.0.1:1/h264")
    assert "Connection refused" in last["detail"]


def test_a_silent_server_fails_at_the_open_timeout() -> None:
    """`--open-timeout 1` against a server that never answers: exit 1 in about a second."""
    with SilentResponder() as server:
        started = time.monotonic()
        result = run("probe", f"rtsp://127.0.0.1:{server.port}/cam", "--open-timeout", "1")
    assert result.returncode == 1
    assert time.monotonic() - started < 6
    assert "no answer within the open timeout (1 s)" in result.stderr


@pytest.mark.rtsp
def test_wrong_password_exits_1_and_never_prints_it(rtsp_server: RtspServer) -> None:
    """Wrong credentials: exit 1, "rejected the credentials", and the password nowhere."""
    url = rtsp_server.url("/secure").replace("rtsp://", "rtsp://alice:NotTheP4ss@")
    result = run("watch", url, "--frames", "1", "--json")
    assert result.returncode == 1
    assert "the server rejected the credentials: rtsp://***@127.0.0.1" in result.stderr
    assert json_lines(result.stdout)[-1]["error"] == "AuthenticationFailed"
    assert "NotTheP4ss" not in result.stderr + result.stdout
    assert "Traceback" not in result.stderr


@pytest.mark.rtsp
def test_no_credentials_says_the_server_asks_for_them(rtsp_server: RtspServer) -> None:
    """No credentials for a protected stream: "the server asks for credentials", detail under it."""
    result = run("probe", rtsp_server.url("/secure"))
    assert result.returncode == 1
    lines = result.stderr.splitlines()
    assert "the server asks for credentials" in lines[-2]
    assert "401 Unauthorized" in lines[-1]


@pytest.mark.rtsp
def test_username_and_password_env_open_a_protected_stream_and_stay_secret(
    rtsp_server: RtspServer,
) -> None:
    """`--username` and `--password-env VAR`: the stream opens; the password is never printed.

    Not even with `--debug`, where FFmpeg logs its RTSP requests.
    """
    url = rtsp_server.url("/secure")
    env = {"CAM_PASSWORD": rtsp_server.password}
    for extra in ([], ["--debug"]):
        result = run(
            "probe", url, "--username", rtsp_server.user, "--password-env", "CAM_PASSWORD",
            "--json", *extra, env=env,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        probe = json_lines(result.stdout)[-1]
        assert probe["format"]["width"] == 640
        assert probe["source"] == f"rtsp://***@127.0.0.1:{rtsp_server.port}/secure"
        assert rtsp_server.password not in result.stdout + result.stderr


def test_password_env_must_name_a_set_variable() -> None:
    """`--password-env VAR` with VAR unset is a usage error naming VAR."""
    env = {k: v for k, v in os.environ.items() if k != "NO_SUCH_PASSWORD_VAR"}
    result = subprocess.run(
        [
            *CLI,
            "probe",
            "rtsp://127.0.0.1:1/x",
            "--username",
            "u",
            "--password-env",
            "NO_SUCH_PASSWORD_VAR",
        ],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
        env=env,
    )
    assert result.returncode == 2
    assert "NO_SUCH_PASSWORD_VAR is not set" in result.stderr


def test_flags_that_do_not_fit_the_source_are_usage_errors() -> None:
    """`--loop` on a stream, `--udp` on a file, credentials on a pattern: exit 2 each."""
    for args in (
        ["rtsp://127.0.0.1:1/x", "--loop"],
        ["test:", "--udp"],
        ["test:", "--username", "u"],
        ["test:", "--open-timeout", "2"],
    ):
        result = run("probe", *args)
        assert result.returncode == 2, args
        assert re.search(r"(is|are) for (stream URLs|RTSP|files)", result.stderr), result.stderr


def test_help_of_every_command_has_its_own_examples() -> None:
    """--help on the program and on each command: usage, exit 0, examples of that command."""
    result = run("--help")
    assert result.returncode == 0
    assert "examples:" in result.stdout
    for name in ("watch", "snapshot", "record", "probe", "devices"):
        result = run(name, "--help")
        assert result.returncode == 0
        examples = result.stdout.split("examples:")[1]
        commands = [line.split()[1] for line in examples.splitlines() if "camerapump " in line]
        assert commands
        assert set(commands) == {name}


def test_version_and_debug_before_or_after_the_command() -> None:
    """`--version` prints the versions; `--debug` works before and after the subcommand."""
    result = run("--version")
    assert result.returncode == 0
    assert result.stdout.startswith(f"camerapump {cp.__version__} (PyAV {av.__version__}")
    for args in (
        ["--debug", "watch", "test:", "--frames", "2"],
        ["watch", "test:", "--frames", "2", "--debug"],
    ):
        result = run(*args)
        assert result.returncode == 0, result.stderr
        assert "camerapump: DEBUG:" in result.stderr
    assert build_parser().parse_args(["--debug", "watch"]).debug is True


def test_devices_lists_no_cameras_here() -> None:
    """`devices` and `devices --json` work on a machine without cameras."""
    result = run("devices", "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == []
    result = run("devices")
    assert result.returncode == 0
    assert "no cameras found" in result.stdout


def test_probe_json(video_file: Path) -> None:
    """`probe FILE --json` prints the stream's format as fields."""
    result = run("probe", str(video_file), "--json")
    assert result.returncode == 0, result.stderr
    info = json.loads(result.stdout)
    assert info["event"] == "probe"
    assert info["kind"] == "file"
    fmt = info["format"]
    assert (fmt["width"], fmt["height"], fmt["fps"], fmt["codec"]) == (320, 240, 30.0, "h264")


# -- snapshot -------------------------------------------------------------------------------


@pytest.mark.rtsp
@pytest.mark.parametrize("ending", [".png", ".jpg"])
def test_snapshot_writes_a_decodable_image_of_the_stream_size(
    rtsp_server: RtspServer, tmp_path: Path, ending: str
) -> None:
    """`snapshot SOURCE -o out.png|jpg` writes an image of the stream's size."""
    out = tmp_path / f"shot{ending}"
    result = run("snapshot", rtsp_server.url(), "-o", str(out))
    assert result.returncode == 0, result.stderr
    with av.open(str(out)) as container:
        frame = next(container.decode(video=0))
    assert (frame.width, frame.height) == (640, 480)


def test_snapshot_count_interval_and_output_size(tmp_path: Path) -> None:
    """--count 3 writes three numbered images; --output-size shapes them; --json lists them."""
    result = run(
        "snapshot", "test:", "-o", str(tmp_path / "s.png"), "--count", "3", "--interval", "0.1",
        "--output-size", "160x90", "--json",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s-0001.png", "s-0002.png", "s-0003.png"]
    images = [r for r in json_lines(result.stdout) if r["event"] == "image"]
    assert [Path(r["path"]).name for r in images] == ["s-0001.png", "s-0002.png", "s-0003.png"]
    with av.open(str(tmp_path / "s-0002.png")) as container:
        frame = next(container.decode(video=0))
    assert (frame.width, frame.height) == (160, 90)


@pytest.mark.rtsp
def test_snapshot_series_survives_an_outage(
    own_rtsp_server: RtspServer, tmp_path: Path, live: Callable[..., Live]
) -> None:
    """Server killed for 3 s between images: the series waits it out and writes all N, exit 0."""
    snapshot = live(
        "snapshot", own_rtsp_server.url(), "-o", str(tmp_path / "s.jpg"), "--count", "4",
        "--interval", "1", "--backoff", "0.5",
    )  # fmt: skip
    snapshot.stdout_line(lambda line: "s-0001.jpg" in line)
    own_rtsp_server.kill()
    time.sleep(3)
    own_rtsp_server.restart()
    status, out, err = snapshot.finish(timeout=30)
    assert status == 0, err
    assert [Path(line.split()[0]).name for line in out] == [f"s-000{i}.jpg" for i in range(1, 5)]
    assert any("stream lost (end_of_stream)" in line for line in err)
    assert any(line.endswith(": back") for line in err)


def test_an_interrupted_snapshot_that_wrote_nothing_exits_130(
    tmp_path: Path, live: Callable[..., Live]
) -> None:
    """Ctrl-C while the first capture waits (a server that never answers): exit 130, no image."""
    with SilentResponder() as server:
        snapshot = live(
            "snapshot", f"rtsp://127.0.0.1:{server.port}/cam", "-o", str(tmp_path / "x.jpg")
        )
        snapshot.stderr_line(lambda line: "opening" in line)
        time.sleep(0.5)
        started = time.monotonic()
        snapshot.proc.send_signal(signal.SIGINT)
        status, _, _ = snapshot.finish(timeout=15)
    assert status == 130
    assert time.monotonic() - started < 5
    assert list(tmp_path.iterdir()) == []


# -- record ---------------------------------------------------------------------------------


@pytest.mark.rtsp
def test_record_seconds_is_footage_of_that_length(rtsp_server: RtspServer, tmp_path: Path) -> None:
    """`record --seconds 3`: one playable H.264 file of 3 ± 0.5 s, remuxed, listed on stdout."""
    out = tmp_path / "rec.mp4"
    result = run("record", rtsp_server.url(), "-o", str(out), "--seconds", "3")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [str(out)]
    assert 2.5 <= duration(out) <= 3.5
    with av.open(str(out)) as container:
        stream = container.streams.video[0]
        assert stream.codec_context.name == "h264"
        first = next(p for p in container.demux(stream) if p.size)
        assert first.is_keyframe
        # The source's bitrate family: remuxed, not re-encoded.
        assert container.bit_rate and 100_000 < container.bit_rate < 20_000_000


def test_recording_a_5_second_file_keeps_all_5_seconds(tmp_path: Path) -> None:
    """A 5 s file recorded to its end: 5 ± 0.5 s (the start is not lost), exit 0."""
    clip = make_video(tmp_path / "five.mp4", frames=150)
    out = tmp_path / "copy.mp4"
    result = run("record", str(clip), "-o", str(out), "--json")
    assert result.returncode == 0, result.stderr
    recorded = json_lines(result.stdout)[-1]
    assert recorded["event"] == "recorded"
    assert recorded["files"] == [str(out)]
    assert 4.5 <= recorded["footage_seconds"] <= 5.5
    assert 4.5 <= duration(out) <= 5.5


@pytest.mark.rtsp
def test_record_seconds_counts_footage_across_an_outage(
    own_rtsp_server: RtspServer, tmp_path: Path, live: Callable[..., Live]
) -> None:
    """Server killed for 3 s: recording goes on in a new file; footage is 6 ± 0.5 s, exit 0."""
    out = tmp_path / "cam.mp4"
    record = live(
        "record", own_rtsp_server.url(), "-o", str(out), "--seconds", "6", "--backoff", "0.5"
    )
    record.stderr_line(lambda line: "recording rtsp://" in line)
    time.sleep(1.5)
    own_rtsp_server.kill()
    time.sleep(3)
    own_rtsp_server.restart()
    status, files, err = record.finish(timeout=40)
    assert status == 0, err
    assert len(files) >= 2
    assert files[0] == str(out)
    assert 5.5 <= sum(duration(Path(f)) for f in files) <= 6.5
    assert any("stream lost (end_of_stream) after" in line for line in err)
    assert any("back; recording continues in a new file" in line for line in err)
    assert not [line for line in err if "WARNING" in line]  # said once, in the CLI's words


@pytest.mark.rtsp
def test_record_that_gives_up_lists_its_files_and_exits_1(
    own_rtsp_server: RtspServer, tmp_path: Path, live: Callable[..., Live]
) -> None:
    """Server gone for good, `--max-attempts 2`: the file so far is listed, "gave up", exit 1."""
    out = tmp_path / "cam.mkv"
    record = live(
        "record", own_rtsp_server.url(), "-o", str(out), "--seconds", "30", "--backoff", "0.2",
        "--max-attempts", "2", "--json",
    )  # fmt: skip
    record.stdout_line(lambda line: '"connected"' in line)
    time.sleep(1.5)
    own_rtsp_server.kill()
    status, out_lines, err = record.finish(timeout=20)
    assert status == 1
    records = [json.loads(line) for line in out_lines]
    recorded = next(r for r in records if r["event"] == "recorded")
    assert recorded["files"] == [str(out)]
    assert 0.8 < duration(out) < 2.5
    delays = [r["delay"] for r in records if r["event"] == "reconnecting"]
    assert len(delays) == 2
    assert delays[0] <= 0.25  # --backoff 0.2, with up to 20 % jitter
    assert records[-1]["event"] == "error"
    assert records[-1]["gave_up"].startswith("max_attempts_reached:")
    assert any(line.startswith("camerapump: gave up after 2 reconnect attempts: ") for line in err)


def test_record_refuses_to_overwrite_without_overwrite(tmp_path: Path) -> None:
    """An existing file: exit 2 and a clear line, the file untouched; --overwrite replaces it."""
    out = tmp_path / "x.mp4"
    out.write_bytes(b"precious")
    result = run("record", "test:", "-o", str(out), "--seconds", "1")
    assert result.returncode == 2
    assert f"{out} exists; add --overwrite to replace it" in result.stderr
    assert out.read_bytes() == b"precious"
    result = run("record", "test:", "-o", str(out), "--seconds", "1", "--overwrite")
    assert result.returncode == 0, result.stderr
    assert 0.5 <= duration(out) <= 1.5


def test_record_stops_when_the_file_cannot_be_written(tmp_path: Path) -> None:
    """`record` into a missing directory fails promptly with exit 1 and the reason."""
    started = time.monotonic()
    result = run("record", "test:", "-o", str(tmp_path / "no" / "x.mp4"), timeout=30)
    assert result.returncode == 1
    assert f"recording to {tmp_path / 'no' / 'x.mp4'} failed (RecordingFailed)" in result.stderr
    assert "No such file or directory" in result.stderr
    assert time.monotonic() - started < 15


@pytest.mark.parametrize(("signum", "status"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_an_interrupted_record_finishes_its_file_lists_it_and_exits_128_plus_signal(
    tmp_path: Path, live: Callable[..., Live], signum: int, status: int
) -> None:
    """Ctrl-C or SIGTERM: the MP4 is finished and playable, listed on stdout; exit 130 / 143."""
    out = tmp_path / "stopped.mp4"
    record = live("record", "test:", "-o", str(out))
    record.stderr_line(lambda line: "recording test:" in line)
    time.sleep(2)
    record.proc.send_signal(signum)
    code, files, _ = record.finish(timeout=15)
    assert code == status
    assert files == [str(out)]
    with av.open(str(out)) as container:
        frames = sum(1 for _ in container.decode(video=0))
    assert frames > 20


def test_record_no_audio_leaves_the_audio_track_out(
    rtsp_server: RtspServer, tmp_path: Path
) -> None:
    """`record --no-audio` of an H.264 + AAC stream writes video only; without it, both."""
    url = rtsp_server.url("/h264-aac")
    with_audio, without = tmp_path / "a.mkv", tmp_path / "v.mkv"
    assert run("record", url, "-o", str(with_audio), "--seconds", "1.5").returncode == 0
    assert run("record", url, "-o", str(without), "--seconds", "1.5", "--no-audio").returncode == 0
    with av.open(str(with_audio)) as both, av.open(str(without)) as video:
        assert (len(both.streams.video), len(both.streams.audio)) == (1, 1)
        assert (len(video.streams.video), len(video.streams.audio)) == (1, 0)


def test_transport_is_for_rtsp_and_must_agree_with_udp(video_file: Path) -> None:
    """--transport on a file, or --udp against --transport tcp, is a usage error (exit 2)."""
    on_file = run("probe", str(video_file), "--transport", "tcp")
    assert on_file.returncode == 2 and "are for RTSP" in on_file.stderr
    clash = run("probe", "rtsp://127.0.0.1:1/x", "--udp", "--transport", "tcp")
    assert clash.returncode == 2 and "disagree" in clash.stderr
