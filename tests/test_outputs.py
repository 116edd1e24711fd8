"""Outputs: frames shaped per consumer on the decode thread, converted only when taken.

Against the test source and files made with PyAV; the RTSP side is in test_rtsp.py.
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import time
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from av.video.reformatter import VideoReformatter
from hypothesis import given
from hypothesis import strategies as st

import camerapump as cp
from camerapump._convert import Converter, sws_threads
from camerapump._output import plan
from conftest import _task_ids, make_video

pytestmark = pytest.mark.timeout(40)

RED, GREEN, BLUE, WHITE = (0, 0, 255), (0, 255, 0), (255, 0, 0), (255, 255, 255)  # BGR


def quadrants(path: Path, *, width: int = 320, height: int = 240, frames: int = 90) -> Path:
    """A video whose quadrants are red, green (top) and blue, white (bottom), in BGR order."""
    img = np.zeros((height, width, 3), np.uint8)
    h2, w2 = height // 2, width // 2
    img[:h2, :w2], img[:h2, w2:], img[h2:, :w2], img[h2:, w2:] = RED, GREEN, BLUE, WHITE
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=30)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv444p"
        stream.time_base = Fraction(1, 30)
        stream.options = {"g": "15", "preset": "ultrafast", "qp": "0"}
        for i in range(frames):
            frame = av.VideoFrame.from_ndarray(img, format="bgr24")
            frame.pts = i
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path


def near(pixel: np.ndarray, colour: tuple[int, int, int], tolerance: int = 40) -> bool:
    return bool(np.all(np.abs(pixel.astype(int) - np.array(colour)) <= tolerance))


@pytest.fixture(scope="module")
def quad_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return quadrants(tmp_path_factory.mktemp("outputs") / "quad.mp4")


async def one_frame(source: cp.Source, output: cp.Output) -> cp.Frame:
    async with cp.open_pump(source, output=output) as pump:
        return await anext(aiter(pump))


async def test_stretch_gives_exactly_the_size_with_each_quadrant_in_place(quad_file: Path) -> None:
    """fit=stretch to 160x160: the size asked for, quadrant colours where they belong."""
    frame = await one_frame(cp.Source.file(quad_file), cp.Output(160, 160))
    assert frame.data.shape == (160, 160, 3)
    d = frame.data
    assert near(d[40, 40], RED) and near(d[40, 120], GREEN)
    assert near(d[120, 40], BLUE) and near(d[120, 120], WHITE)
    assert frame.geometry.scale_x == 0.5 and frame.geometry.scale_y == pytest.approx(160 / 240)


async def test_contain_letterboxes_with_black_bars(quad_file: Path) -> None:
    """fit=contain 4:3 into 200x200: the picture 200x150 in the middle, black bars around it."""
    frame = await one_frame(cp.Source.file(quad_file), cp.Output(200, 200, fit="contain"))
    d = frame.data
    assert d.shape == (200, 200, 3)
    assert np.all(d[:24] == 0) and np.all(d[176:] == 0)  # the bars are exactly black
    assert near(d[25 + 37, 50], RED) and near(d[25 + 37, 150], GREEN)
    assert near(d[25 + 112, 50], BLUE) and near(d[25 + 112, 150], WHITE)
    g = frame.geometry
    assert (g.offset_x, g.offset_y) == (0.0, 25.0)
    assert g.to_source(100, 100) == pytest.approx((160, 120))


async def test_cover_crops_the_centre(quad_file: Path) -> None:
    """fit=cover 4:3 into 120x120: full height, the sides cropped, the centre kept."""
    frame = await one_frame(cp.Source.file(quad_file), cp.Output(120, 120, fit="cover"))
    d = frame.data
    assert d.shape == (120, 120, 3)
    assert near(d[30, 30], RED) and near(d[30, 90], GREEN)
    assert near(d[90, 30], BLUE) and near(d[90, 90], WHITE)
    g = frame.geometry
    assert g.offset_x < 0 and g.offset_y == 0
    # The left edge of the output is inside the source, 1/8 of its width in.
    assert g.to_source(0, 0)[0] == pytest.approx(320 / 8, abs=1)


async def test_one_side_follows_the_aspect_ratio(quad_file: Path) -> None:
    """Only a width: the height follows the source's aspect ratio (320x240 -> 100x75)."""
    frame = await one_frame(cp.Source.file(quad_file), cp.Output(width=100))
    assert (frame.width, frame.height) == (100, 75)
    frame = await one_frame(cp.Source.file(quad_file), cp.Output(height=60, pixel_format="gray"))
    assert frame.data.shape == (60, 80)


@pytest.mark.parametrize("fmt", ["bgr24", "rgb24", "gray", "bgra", "rgba"])
async def test_each_pixel_format_has_the_right_colours(quad_file: Path, fmt: str) -> None:
    """The output's pixel format overrides the config's, with colours in the right channels."""
    frame = await one_frame(
        cp.Source.file(quad_file),
        cp.Output(64, 48, pixel_format=fmt),  # type: ignore[arg-type]
    )
    assert frame.pixel_format == fmt
    pixel = frame.data[12, 16]  # the red quadrant
    if fmt == "gray":
        assert 60 <= int(pixel) <= 100  # BT.601 luma of pure red is about 76
    elif fmt.startswith("bgr"):
        assert near(pixel[:3], RED)
    else:
        assert near(pixel[:3], RED[::-1])
    if fmt in ("bgra", "rgba"):
        assert pixel[3] == 255


@given(
    sw=st.integers(1, 4000),
    sh=st.integers(1, 4000),
    w=st.none() | st.integers(1, 4000),
    h=st.none() | st.integers(1, 4000),
    fit=st.sampled_from(["stretch", "contain", "cover"]),
    x=st.floats(0, 1),
    y=st.floats(0, 1),
)
def test_geometry_maps_points_there_and_back(
    sw: int, sh: int, w: int | None, h: int | None, fit: str, x: float, y: float
) -> None:
    """For any size and fit, to_source(from_source(p)) == p, and the plan has the size asked."""
    output = cp.Output(w, h, fit=fit)  # type: ignore[arg-type]
    shape = plan(output, sw, sh)
    g = shape.geometry
    if w is not None and h is not None:
        assert (shape.width, shape.height) == (w, h)
    px, py = x * sw, y * sh
    back = g.to_source(*g.from_source(px, py))
    assert back == pytest.approx((px, py), rel=1e-9, abs=1e-6)
    if fit == "contain" and w and h:
        assert shape.scaled_width <= w and shape.scaled_height <= h
    if fit == "cover" and w and h:
        assert shape.scaled_width >= w and shape.scaled_height >= h


def test_a_box_on_a_letterbox_bar_is_clipped_to_the_picture() -> None:
    """box_to_source clips a box that reaches into the bars to the source picture."""
    g = plan(cp.Output(640, 640, fit="contain"), 1280, 720).geometry
    assert g.offset_y == 140
    box = g.box_to_source(0, 0, 640, 640)
    assert box == pytest.approx((0, 0, 1280, 720))
    x0, y0, x1, y1 = g.box_to_source(320, 320, 480, 400)
    assert (x0, y0) == pytest.approx((640, 360))
    assert (x1, y1) == pytest.approx((960, 520))


async def test_max_fps_five_on_thirty_fps_gives_five_a_second() -> None:
    """max_fps=5 on the 30 fps test pattern: 5 ± 1 frames a second over 5 s, spaced >= 0.2 s."""
    output = cp.Output(160, 120, max_fps=5)
    async with cp.open_pump(cp.Source.test(), cp.StreamConfig(320, 240), output=output) as pump:
        frames: list[cp.Frame] = []
        started = time.monotonic()
        async for frame in pump:
            frames.append(frame)
            if time.monotonic() - started >= 5.0:
                break
    rate = (len(frames) - 1) / (frames[-1].captured_at - frames[0].captured_at)
    assert 4.0 <= rate <= 6.0, rate
    gaps = [b.pts - a.pts for a, b in itertools.pairwise(frames)]  # type: ignore[operator]
    assert min(gaps) >= 0.2 - 1e-3, gaps


async def test_keyframes_only_yields_keyframes_at_the_gop_rate(tmp_path: Path) -> None:
    """keyframes_only on a 30 fps file with a keyframe every 15 frames: 2 keyframes a second.

    Every consumer asks for keyframes only, so the decoder skips the rest: the
    pump decodes about as many pictures as it delivers.
    """
    clip = make_video(tmp_path / "gop.mp4", frames=300)  # g=15
    output = cp.Output(keyframes_only=True)
    async with cp.open_pump(cp.Source.file(clip), output=output) as pump:
        frames: list[cp.Frame] = []
        async for frame in pump:
            frames.append(frame)
            if len(frames) == 6:
                break
        stats = pump.statistics()
    assert all(f.keyframe for f in frames)
    spacing = [b.pts - a.pts for a, b in itertools.pairwise(frames)]  # type: ignore[operator]
    assert spacing == pytest.approx([0.5] * 5, abs=0.02)
    assert stats.frames_decoded <= len(frames) + 3  # non-keyframes were skipped, not decoded


async def test_a_slow_consumer_costs_one_conversion_per_frame_it_takes() -> None:
    """A consumer taking one frame a second from 30 fps: converted == delivered, nothing dropped."""
    async with cp.open_pump(cp.Source.test(), cp.StreamConfig(320, 240)) as pump:
        taken = 0
        async for _ in pump:
            taken += 1
            if taken == 4:
                break
            await asyncio.sleep(1.0)
        stats = pump.statistics()
    assert stats.frames_decoded >= 80
    assert stats.frames_delivered == taken == 4
    assert stats.frames_converted == taken
    assert stats.frames_dropped == 0


async def test_two_subscribers_get_their_own_shapes_from_one_decode() -> None:
    """Subscribers with different outputs each get their own size and format, decoded once."""
    async with cp.open_pump(cp.Source.test(), cp.StreamConfig(320, 240)) as pump:
        small = pump.subscribe(output=cp.Output(64, 64, fit="contain", pixel_format="rgb24"))
        grey = pump.subscribe(output=cp.Output(width=160, pixel_format="gray"))

        async def take(sub: cp.Subscription, n: int) -> list[cp.Frame]:
            out = []
            async for frame in sub:
                out.append(frame)
                if len(out) == n:
                    return out
            return out

        a, b = await asyncio.gather(take(small, 5), take(grey, 5))
        decoded = pump.statistics().frames_decoded
    assert {f.data.shape for f in a} == {(64, 64, 3)}
    assert {f.data.shape for f in b} == {(120, 160)}
    assert decoded < 30  # one decode served both: about 5 frames' worth, not 10


async def test_subscribers_of_one_output_share_each_conversion() -> None:
    """Three subscribers of the same output: one conversion per frame, not three."""
    async with cp.open_pump(cp.Source.test(), cp.StreamConfig(320, 240)) as pump:
        subs = [pump.subscribe(output=cp.Output(80, 60)) for _ in range(3)]

        async def take(sub: cp.Subscription) -> list[cp.Frame]:
            out = []
            async for frame in sub:
                out.append(frame)
                if len(out) == 10:
                    return out
            return out

        results = await asyncio.gather(*(take(s) for s in subs))
        stats = pump.statistics()
    assert all(len(r) == 10 for r in results)
    assert stats.frames_delivered == 30
    assert stats.frames_converted <= 12  # ~10 shared conversions (a spare at most)
    by_sequence = {f.sequence: f for f in results[0]}
    shared = [f for f in results[1] if f.sequence in by_sequence]
    assert shared, "the subscribers never got the same frame"
    assert all(f.data is by_sequence[f.sequence].data for f in shared)


async def test_delivered_arrays_are_read_only_and_copy_is_writable() -> None:
    """Consumers share arrays, so they are read-only; frame.copy() gives one to draw on."""
    async with cp.open_pump(cp.Source.test(), cp.StreamConfig(160, 120)) as pump:
        frame = await anext(aiter(pump))
    assert not frame.data.flags.writeable
    with pytest.raises(ValueError, match="read-only"):
        frame.data[0, 0] = 0
    original = int(frame.data[0, 0, 0])
    drawn = frame.copy()
    drawn.data[0, 0] = (original + 1) % 256
    assert drawn.data.flags.writeable
    assert int(frame.data[0, 0, 0]) == original


async def test_capture_with_its_own_output(quad_file: Path) -> None:
    """capture_frame(output=...) shapes the one frame as asked, apart from the stream's output."""
    async with cp.open_pump(cp.Source.file(quad_file, loop=True), output=cp.Output(32, 32)) as pump:
        shot = await pump.capture_frame(output=cp.Output(200, 200, fit="contain"), timeout=5)
        frame = await anext(aiter(pump))
    assert shot is not None and shot.data.shape == (200, 200, 3)
    assert frame.data.shape == (32, 32, 3)


async def test_blocking_camera_takes_an_output_too(quad_file: Path) -> None:
    """open_camera(output=...) shapes frames like the pump."""

    def read() -> cp.Frame:
        with cp.open_camera(
            cp.Source.file(quad_file), output=cp.Output(48, 48, fit="cover")
        ) as cam:
            return cam.next_frame(timeout=5)

    frame = await asyncio.to_thread(read)
    assert frame.data.shape == (48, 48, 3)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"width": 0}, "1 to 16384"),
        ({"height": 16385}, "1 to 16384"),
        ({"width": 1.5}, "whole number"),
        ({"fit": "fill"}, "stretch, contain, cover"),
        ({"max_fps": 0}, "max_fps"),
        ({"max_fps": -1}, "max_fps"),
        ({"pixel_format": "yuv420p"}, "bgr24"),
        ({"keyframes_only": "yes"}, "True or False"),
    ],
)
def test_bad_output_values_say_what_is_allowed(kwargs: dict[str, object], match: str) -> None:
    """Output rejects impossible values with a ValueError naming what is allowed."""
    with pytest.raises(ValueError, match=match):
        cp.Output(**kwargs)  # type: ignore[arg-type]


def test_an_explicit_size_on_a_stream_says_how_to_resize(video_file: Path) -> None:
    """StreamConfig(size) that a file does not have: the error points at Output."""
    with pytest.raises(cp.FormatNotSupported, match=r"output=cp.Output\(width=640, height=480\)"):
        with cp.open_camera(cp.Source.file(video_file), cp.StreamConfig(640, 480)):
            pass


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="counts threads in /proc")
def test_paced_conversions_start_no_swscale_threads() -> None:
    # PyAV's default starts a swscale worker per core for every context, which cost a
    # third more CPU per picture for no gain in wall time (camerapump._convert).
    # The process's thread ids: a thread left by an earlier test may end meanwhile, so
    # the test looks for threads that appear, not at the count.
    threads = _task_ids
    picture = av.VideoFrame.from_ndarray(np.zeros((720, 1280, 3), np.uint8), format="bgr24")
    picture = picture.reformat(format="yuv420p", threads=1)
    before = threads()
    outputs = [cp.Output(width=640, height=640, fit="contain"), cp.Output(), cp.Output(width=2000)]
    converters = [Converter(dataclasses.replace(o, pixel_format="rgb24")) for o in outputs]
    for converter in converters:
        assert converter.convert(picture)[0].size > 0
    assert threads() - before == set()
    # A file decoded as fast as it goes keeps swscale's workers (0: one per core).
    assert (sws_threads(paced=True), sws_threads(paced=False)) == (1, 0)
    # The count does see swscale's workers: a context with two threads adds one.
    reference = VideoReformatter()
    reference.reformat(picture, width=640, height=360, format="rgb24", threads=2)
    assert len(threads() - before) == 1
