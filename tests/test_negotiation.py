"""Format negotiation: best_format as a pure function over the fixture cameras' mode tables."""

from __future__ import annotations

import pytest
from data.v4l2_fake import FIXTURES, FakeCamera, load
from hypothesis import given
from hypothesis import strategies as st

from camerapump import _v4l2
from camerapump._config import PIXEL_FORMATS, StreamConfig
from camerapump._devices import Capabilities, FormatDescriptor, best_format
from camerapump._errors import CameraError, FormatNotSupported

pytestmark = pytest.mark.timeout(30)

DISCRETE = [f for f in FIXTURES if f != "stepwise_sensor"]


def table(camera: FakeCamera) -> Capabilities:
    """The capabilities of a discrete fixture, built straight from its listing (no ioctls)."""
    formats = []
    for fmt in camera.formats:
        for size in fmt.sizes:
            rates = tuple(sorted(size.rates, reverse=True))
            formats.append(
                FormatDescriptor(
                    size.width,
                    size.height,
                    min(rates),
                    max(rates),
                    rates,
                    _v4l2.ffmpeg_name(fmt.fourcc) or fmt.fourcc,
                    fmt.fourcc,
                )
            )
    return Capabilities(tuple(formats))


TABLES = {name: table(load(name)) for name in DISCRETE}
C920 = TABLES["logitech_c920"]
HD3000 = TABLES["lifecam_hd3000"]


def stepwise() -> Capabilities:
    """A stepwise/continuous camera: YUYV 1-90 fps at any rate, MJPG 1-30."""
    return Capabilities(
        (
            FormatDescriptor(1280, 720, 1.0, 90.0, (), "yuyv422", "YUYV"),
            FormatDescriptor(1920, 1080, 1.0, 90.0, (), "yuyv422", "YUYV"),
            FormatDescriptor(1920, 1080, 1.0, 30.0, (), "mjpeg", "MJPG"),
        )
    )


# --- "exact" -----------------------------------------------------------------------------


@st.composite
def listed_request(draw: st.DrawFn) -> tuple[str, FormatDescriptor, float]:
    name = draw(st.sampled_from(DISCRETE))
    mode = draw(st.sampled_from(TABLES[name].formats))
    fps = draw(st.sampled_from(mode.fps_choices))
    return name, mode, fps


@given(listed_request(), st.sampled_from(PIXEL_FORMATS))
def test_exact_returns_the_request_when_listed(
    request_: tuple[str, FormatDescriptor, float], pixel_format: str
) -> None:
    """A listed size, format and rate is returned as is, whatever the output pixel_format."""
    name, mode, fps = request_
    config = StreamConfig(mode.width, mode.height, fps, pixel_format, mode.input_format)  # type: ignore[arg-type]
    chosen = best_format(TABLES[name], config)
    assert chosen == mode
    assert chosen.nearest_fps(fps) == fps


@given(
    st.sampled_from(DISCRETE),
    st.integers(16, 4000),
    st.integers(16, 3000),
    st.sampled_from([None, 1.0, 2.0, 5.0, 12.0, 30.0, 60.0, 120.0]),
    st.sampled_from([None, "mjpeg", "yuyv422", "h264", "nv12"]),
)
def test_exact_fits_or_raises_listing_closest_modes(
    name: str, width: int, height: int, fps: float | None, input_format: str | None
) -> None:
    """ "exact" returns a fitting mode, or raises FormatNotSupported naming up to 5 listed modes."""
    caps = TABLES[name]
    config = StreamConfig(width, height, fps, input_format=input_format)
    fits = [
        m
        for m in caps.formats
        if m.size == (width, height)
        and (input_format is None or m.input_format == input_format)
        and (fps is None or m.supports_fps(fps))
    ]
    if fits:
        assert best_format(caps, config) in fits
        return
    with pytest.raises(FormatNotSupported) as info:
        best_format(caps, config)
    listed = str(info.value).split("the closest supported modes: ", 1)[1].split("; ")
    assert 1 <= len(listed) <= 5
    assert set(listed) <= {str(m) for m in caps.formats}


def test_exact_error_names_the_five_closest_modes() -> None:
    """Asking a C920 for 1080p at 60 fps lists the 1080p modes first, five in all."""
    with pytest.raises(FormatNotSupported) as info:
        best_format(C920, StreamConfig(1920, 1080, 60))
    message = str(info.value)
    assert message.startswith("no mode 1920x1080 @ 60 fps; the closest supported modes: ")
    listed = message.split(": ", 1)[1].split("; ")
    assert len(listed) == 5
    assert all(entry.startswith("1920x1080") for entry in listed[:3])
    assert isinstance(info.value, ValueError)
    assert isinstance(info.value, CameraError)


def test_exact_with_unlisted_format_raises() -> None:
    """A format the camera lacks (NV12 on a C920) is not substituted in "exact" mode."""
    with pytest.raises(FormatNotSupported, match="nv12"):
        best_format(C920, StreamConfig(1280, 720, 30, input_format="nv12"))


def test_fps_within_two_percent_matches() -> None:
    """29.97 fps matches a 30 fps mode (the tolerance the pump applies too)."""
    chosen = best_format(C920, StreamConfig(1280, 720, 29.97, input_format="mjpeg"))
    assert chosen.nearest_fps(29.97) == 30.0


def test_input_format_may_be_a_fourcc() -> None:
    """input_format accepts the V4L2 fourcc (MJPG) as well as FFmpeg's name (mjpeg)."""
    assert best_format(C920, StreamConfig(1280, 720, input_format="MJPG")).input_format == "mjpeg"


def test_none_fields_match_anything() -> None:
    """An empty request picks the highest rate, then the largest frame, MJPEG before H.264."""
    chosen = best_format(C920, StreamConfig())
    assert (chosen.size, chosen.input_format, chosen.fps_max) == ((1920, 1080), "mjpeg", 30.0)


def test_size_only_prefers_the_mode_with_the_highest_rate() -> None:
    """1080p without a format picks a 30 fps compressed mode over 5 fps YUYV."""
    chosen = best_format(C920, StreamConfig(1920, 1080))
    assert chosen.input_format == "mjpeg"


def test_raw_wins_a_tie_with_mjpeg() -> None:
    """At equal size and rate, raw YUYV (no decoding) beats MJPEG."""
    assert best_format(C920, StreamConfig(640, 480, 30)).input_format == "yuyv422"


def test_format_only_picks_the_largest_size_at_the_top_rate() -> None:
    """Only yuyv422 asked: the largest YUYV size that reaches the top YUYV rate (30 fps)."""
    chosen = best_format(C920, StreamConfig(input_format="yuyv422"))
    assert (chosen.size, chosen.fps_max) == ((800, 448), 30.0)


def test_pixel_format_plays_no_part() -> None:
    """The output pixel_format does not change which device mode is chosen."""
    results = {
        best_format(C920, StreamConfig(1280, 720, 30, pf))  # type: ignore[arg-type]
        for pf in PIXEL_FORMATS
    }
    assert len(results) == 1


def test_continuous_rate_range_accepts_any_rate_inside() -> None:
    """A stepwise/continuous interval range takes any rate inside it, clamped outside."""
    caps = stepwise()
    chosen = best_format(caps, StreamConfig(1280, 720, 60, input_format="yuyv422"))
    assert chosen.nearest_fps(60) == 60
    with pytest.raises(FormatNotSupported):
        best_format(caps, StreamConfig(1280, 720, 120))
    nearest = best_format(caps, StreamConfig(1280, 720, 120), mode="nearest")
    assert nearest.nearest_fps(120) == 90.0


def test_unknown_rates_match_any_fps() -> None:
    """A mode whose driver lists no intervals matches any requested rate."""
    caps = Capabilities((FormatDescriptor(640, 480, None, None, (), "yuyv422"),))
    chosen = best_format(caps, StreamConfig(640, 480, 25))
    assert chosen.nearest_fps(25) is None


# --- "nearest" ---------------------------------------------------------------------------


@given(
    st.sampled_from(DISCRETE),
    st.integers(16, 5000),
    st.integers(16, 5000),
    st.one_of(st.none(), st.floats(0.5, 1000)),
    st.sampled_from([None, "mjpeg", "yuyv422", "h264", "nv12", "MJPG"]),
)
def test_nearest_always_returns_a_listed_mode(
    name: str, width: int, height: int, fps: float | None, input_format: str | None
) -> None:
    """ "nearest" never fails on a non-empty table and always returns one of its modes."""
    chosen = best_format(
        TABLES[name], StreamConfig(width, height, fps, input_format=input_format), mode="nearest"
    )
    assert chosen in TABLES[name].formats


@given(listed_request())
def test_nearest_equals_exact_when_the_request_is_listed(
    request_: tuple[str, FormatDescriptor, float],
) -> None:
    """When "exact" succeeds, "nearest" picks the same mode."""
    name, mode, fps = request_
    config = StreamConfig(mode.width, mode.height, fps, input_format=mode.input_format)
    assert best_format(TABLES[name], config, mode="nearest") == best_format(TABLES[name], config)


def test_nearest_keeps_size_before_format() -> None:
    """1080p YUYV at 30 fps: same size in another format (MJPEG at 30) beats YUYV at 5."""
    chosen = best_format(C920, StreamConfig(1920, 1080, 30, input_format="yuyv422"), mode="nearest")
    assert (chosen.size, chosen.input_format) == ((1920, 1080), "mjpeg")


def test_nearest_keeps_format_at_same_size_when_rate_fits() -> None:
    """Same size and format with the rate in range wins over everything else."""
    chosen = best_format(C920, StreamConfig(1280, 720, 10, input_format="yuyv422"), mode="nearest")
    assert (chosen.size, chosen.input_format) == ((1280, 720), "yuyv422")


def test_nearest_takes_the_smallest_size_distance() -> None:
    """An unlisted size goes to the smallest |dw|+|dh| (1900x1000 -> 1920x1080)."""
    chosen = best_format(C920, StreamConfig(1900, 1000, 30), mode="nearest")
    assert chosen.size == (1920, 1080)


def test_nearest_distance_ties_go_to_the_highest_rate() -> None:
    """LifeCam: 1000x600 is nearest 960x544, where MJPEG (30 fps) beats YUYV (20 fps)."""
    chosen = best_format(HD3000, StreamConfig(1000, 600), mode="nearest")
    assert (chosen.size, chosen.input_format, chosen.fps_max) == ((960, 544), "mjpeg", 30.0)


@given(st.integers(16, 5000), st.integers(16, 5000))
def test_nearest_size_distance_is_minimal(width: int, height: int) -> None:
    """No listed mode is closer in |dw|+|dh| than the one "nearest" returns."""
    chosen = best_format(C920, StreamConfig(width, height), mode="nearest")
    best = min(abs(m.width - width) + abs(m.height - height) for m in C920.formats)
    assert abs(chosen.width - width) + abs(chosen.height - height) == best


# --- edges -------------------------------------------------------------------------------


def test_empty_capabilities_raise() -> None:
    """A camera that lists no modes cannot satisfy any request, in either mode."""
    for mode in ("exact", "nearest"):
        with pytest.raises(FormatNotSupported, match="lists no modes"):
            best_format(Capabilities(), StreamConfig(), mode=mode)  # type: ignore[arg-type]


def test_unknown_mode_is_rejected() -> None:
    """mode must be "exact" or "nearest"."""
    with pytest.raises(ValueError, match="'exact' or 'nearest'"):
        best_format(C920, StreamConfig(), mode="closest")  # type: ignore[arg-type]


def test_nearest_fps_prefers_the_higher_rate_on_a_tie() -> None:
    """Between 20 and 30 fps, 25 fps goes to 30."""
    mode = FormatDescriptor(640, 480, 20.0, 30.0, (30.0, 20.0), "yuyv422")
    assert mode.nearest_fps(25) == 30.0


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"width": 0}, "width must be a positive"),
        ({"fps_min": 40.0}, "fps_min must not be above fps_max"),
        ({"fps_min": None}, "go together"),
        ({"fps_choices": (60.0,)}, "between fps_min and fps_max"),
        ({"fps_choices": [30.0]}, "must be a tuple"),
        ({"input_format": " "}, "non-empty"),
        ({"fps_max": float("nan")}, "positive number"),
    ],
)
def test_format_descriptor_validates(kwargs: dict[str, object], message: str) -> None:
    """FormatDescriptor rejects impossible values with a ValueError saying what is allowed."""
    fields: dict[str, object] = {
        "width": 640,
        "height": 480,
        "fps_min": 5.0,
        "fps_max": 30.0,
        "fps_choices": (30.0, 5.0),
        "input_format": "mjpeg",
    }
    fields.update(kwargs)
    with pytest.raises(ValueError, match=message):
        FormatDescriptor(**fields)  # type: ignore[arg-type]


def test_capabilities_validate() -> None:
    """Capabilities holds a tuple of FormatDescriptor and nothing else."""
    with pytest.raises(ValueError, match="tuple of FormatDescriptor"):
        Capabilities([1, 2])  # type: ignore[arg-type]
