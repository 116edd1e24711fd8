"""Redaction that hostile URLs cannot fool, URL checks, and FFmpeg's log filtered of secrets."""

from __future__ import annotations

import base64
import logging
import os
import threading
import urllib.parse
from collections.abc import Iterator

import av
import av.logging
import pytest
from hypothesis import assume, example, given, settings
from hypothesis import strategies as st

from camerapump import Source, _logfilter
from camerapump._redact import MASK, redact_text, redact_url, secrets_of
from camerapump._urls import (
    MAX_TEXT_LENGTH,
    NETWORK_SCHEMES,
    check_source_text,
    check_url,
    with_credentials,
)
from netfaults import RtspServer

pytestmark = pytest.mark.timeout(60)

# The committed run stays quick; the fixes below were found with HYPOTHESIS_EXAMPLES=2000
# to 10000 over several seeds (--hypothesis-seed=N).
EXAMPLES = int(os.environ.get("HYPOTHESIS_EXAMPLES", "300"))

# -- hostile URLs ---------------------------------------------------------------------------

SCHEMES = st.sampled_from(["rtsp", "rtsps", "http", "https", "rtmp", "srt", "udp", "RTSP"])
# Printable characters of every kind (letters of any script, marks, digits, punctuation,
# symbols, the space), so "@", ":", "/", "?", "#", "%" and " " all turn up.
PRINTABLE = st.characters(categories=["L", "M", "N", "P", "S", "Zs"])
HOST_NAME = st.text(
    alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._~%-", max_size=20
)
IPV4 = st.tuples(*[st.integers(0, 999)] * 4).map(lambda t: ".".join(map(str, t)))
IPV6 = st.sampled_from(["::1", "fe80::1%eth0", "2001:db8::7", "::ffff:10.0.0.1", ""]).map(
    lambda h: f"[{h}]"
)
HOSTS = st.one_of(HOST_NAME, IPV4, IPV6)
PORTS = st.one_of(
    st.just(""),
    st.just(":"),
    st.integers(0, 10**12).map(lambda p: f":{p}"),
    st.text(alphabet="abcxyz0123456789+-_%.", min_size=1, max_size=8).map(lambda p: f":{p}"),
)
PATH_CHARS = "abcXYZ0189/._~-%:@=&;+,!$*()"
PATHS = st.one_of(
    st.just(""),
    st.text(alphabet=PATH_CHARS, max_size=30).map(lambda p: f"/{p}"),
    st.text(alphabet=PRINTABLE, max_size=30).map(lambda p: f"/{p}"),
)
PARAM_NAMES = st.sampled_from(
    [
        "token",
        "TOKEN",
        "%74oken",
        "password",
        "Pass",
        "pwd",
        "user",
        "auth",
        "apikey",
        "access_token",
        "X-Amz-Signature",
        "sig",
        "key",
        "stream_key",
    ]
)
QUERIES = st.one_of(
    st.just(""),
    st.text(alphabet="abc019=&;%@._-", max_size=20).map(lambda q: f"?{q}"),
    st.text(alphabet=PRINTABLE, max_size=20).map(lambda q: f"?{q}"),
)
FRAGMENTS = st.one_of(st.just(""), st.text(alphabet=PRINTABLE, max_size=10).map(lambda f: f"#{f}"))


@st.composite
def hostile_urls(draw: st.DrawFn) -> tuple[str, str, str, str]:
    """(url, password, token, public part) with a password and a query token of 4+ chars.

    The public part is the URL as it should come out: user info and token masked.
    """
    scheme = draw(SCHEMES)
    user = draw(st.text(alphabet=PRINTABLE, max_size=12))
    password = draw(st.text(alphabet=PRINTABLE, min_size=4, max_size=20))
    host, port, path, query = draw(HOSTS), draw(PORTS), draw(PATHS), draw(QUERIES)
    token = draw(st.text(alphabet="abcdefXYZ0123456789-_.~%", min_size=4, max_size=16))
    name = draw(PARAM_NAMES)
    fragment, token_first = draw(FRAGMENTS), draw(st.booleans())
    hole = "\x00"  # where the token goes: the alphabets above have no control characters
    if token_first:
        query = f"?{name}={hole}&{query[1:]}" if query else f"?{name}={hole}"
    else:
        query = f"{query}&{name}={hole}" if query else f"?{name}={hole}"
    rest = f"{host}{port}{path}{query}{fragment}"
    url = f"{scheme}://{user}:{password}@{rest.replace(hole, token)}"
    return url, password, token, f"{scheme}://{MASK}@{rest.replace(hole, MASK)}"


def forms(secret: str) -> set[str]:
    """A secret as a URL may carry it and as a message may quote it."""
    return {secret, urllib.parse.unquote(secret), urllib.parse.quote(secret, safe="")}


@settings(max_examples=EXAMPLES, deadline=None)
@given(hostile_urls())
@example(("rtsp://us er:%25+910@lp_r30:abc/", "%25+910", "", "rtsp://***@lp_r30:abc/"))
@example(("http://ad%40min:@bZaa%x@[::1]:/", "@bZaa%x", "", "http://***@[::1]:/"))
def test_no_password_or_token_survives_any_hostile_url(case: tuple[str, str, str, str]) -> None:
    """Whatever the user info, host, port, path and query, the password and token never show."""
    url, password, token, public = case
    secrets = {f for f in forms(password) | forms(token) if len(f) >= 2}
    # A secret that is also in the public part (the host, the path, a parameter name, even
    # percent-decoded) cannot be hidden without hiding the URL, and masking can spell one
    # that starts or ends with "*" ("***@h" holds "*@h").
    spelled = [s for s in secrets if s.startswith("*") or s.endswith("*")]
    shown = (public, urllib.parse.unquote(public))
    assume(not spelled and not any(s in text for s in secrets for text in shown))
    texts = [
        redact_url(url),
        redact_text(f"error opening {url}: Server returned 401", secrets_of(url)),
        redact_text(f"'{urllib.parse.unquote(url)}': Connection refused", secrets_of(url)),
        redact_text(
            f"auth failed with {password} ({urllib.parse.unquote(password)})", secrets_of(url)
        ),
    ]
    for text in texts:
        for secret in secrets:
            assert secret not in text, (secret, text)
    assert redact_url(url).startswith(url.split("://", 1)[0] + "://***@")
    # Without an "@" after the host (no ambiguity) and other parameters (one might be
    # secret by chance), nothing else is masked either.
    if "@" not in public.split("***@", 1)[1] and public.count("=") == 1:
        assert redact_url(url) == public


@settings(max_examples=EXAMPLES, deadline=None)
@given(hostile_urls(), st.booleans())
@example(("rtsp://us er:%25+910@lp_r30:abc/", "%25+910", "", "rtsp://***@lp_r30:abc/"), False)
@example(("http://ad%40min:@bZaa%x@[::1]:/", "@bZaa%x", "", "http://***@[::1]:/"), False)
def test_no_password_shows_in_a_source_built_from_any_hostile_url(
    case: tuple[str, str, str, str], parse: bool
) -> None:
    """Source.rtsp / Source.url / Source.parse: repr, label and any refusal hide the password."""
    url, password, token, public = case
    secrets = {f for f in forms(password) | forms(token) if len(f) >= 2}
    spelled = [s for s in secrets if s.startswith("*") or s.endswith("*")]
    shown = (public, urllib.parse.unquote(public))
    assume(not spelled and not any(s in text for s in secrets for text in shown))
    scheme = url.split("://", 1)[0].lower()
    kind_of_url = Source.rtsp if scheme in ("rtsp", "rtsps") else Source.url
    make = Source.parse if parse else kind_of_url
    try:
        source = make(url)
    except ValueError as refused:  # white space, for one: refused, and said without secrets
        texts = [str(refused), repr(refused)]
    else:
        assert source.kind == ("rtsp" if scheme in ("rtsp", "rtsps") else "stream")
        texts = [repr(source), str(source), source.label]
    for text in texts:
        for secret in secrets:
            assert secret not in text, (secret, text)


@pytest.mark.parametrize(
    ("url", "expected", "password"),
    [
        ("rtsp://us er:%25+910@lp_r30:abc/", "rtsp://***@lp_r30:abc/", "%25+910"),
        ("http://ad%40min:@bZaa%x@[::1]:/", "http://***@[::1]:/", "@bZaa%x"),
    ],
)
def test_the_two_reported_leaks_are_masked(url: str, expected: str, password: str) -> None:
    """A space in the user, a non-numeric or empty port, a raw '@' and '%' no longer leak."""
    assert redact_url(url) == expected
    text = redact_text(f"error opening {url}: Invalid data", secrets_of(url))
    for secret in forms(password):
        assert secret not in text


@pytest.mark.parametrize(
    "url",
    [
        "rtsp://u:pass@lp_r30/x",  # "_" is not a host name character, but hosts have it
        "rtsp://u:pass@h:abc/x",  # a port that is no number
        "rtsp://u:pass@[::1]:/x",  # an empty port
        "rtsp://u:pass@/x",  # no host at all
        "rtsp://u:pa ss@h/x",  # a space in the password
        "rtsp://u:pa@ss@h:554/x",  # a raw "@" in the password
        "rtsp://a:b:pass@h/x",  # a raw ":" (in the user or the password)
        "rtsp://u:p?a#s/s@h/x@y",  # "?", "#", "/" in the password and "@" in the path
    ],
)
def test_odd_authorities_are_masked_up_to_the_last_at(url: str) -> None:
    """Whatever the shape of user info, host and port, everything up to the '@' is masked."""
    assert redact_url(url).startswith("rtsp://***@")
    assert "pass" not in redact_url(url)


def test_an_ambiguous_url_is_masked_rather_than_leaked() -> None:
    """'cam:554/s?to=ops@ex.com' could be a user and password: redaction masks it all."""
    assert redact_url("rtsp://cam:554/s?to=ops@ex.com") == "rtsp://***@ex.com"
    assert redact_url("http://cdn/v/clip@2x.mp4") == "http://cdn/v/clip@2x.mp4"


def test_an_empty_user_info_is_kept() -> None:
    """'udp://@239.0.0.1:1234' (a multicast listen) has nothing to hide and stays readable."""
    assert redact_url("udp://@239.0.0.1:1234") == "udp://@239.0.0.1:1234"
    assert secrets_of("udp://@239.0.0.1:1234") == ()


@pytest.mark.parametrize(
    "name",
    [
        "token",
        "TOKEN",
        "%74oken",
        "access_token",
        "refresh-token",
        "password",
        "Pass",
        "pwd",
        "passwd",
        "user",
        "username",
        "auth",
        "key",
        "apikey",
        "api_key",
        "stream_key",
        "sig",
        "signature",
        "X-Amz-Signature",
        "X-Amz-Credential",
        "client_secret",
        "passphrase",
        "sessionid",
        "jwt",
    ],
)
def test_secret_query_parameters_are_masked(name: str) -> None:
    """Credential-carrying parameters are masked whatever their case or percent-encoding."""
    url = f"rtsp://cam/live?channel=1&{name}=Zq9-value&subtype=0"
    assert redact_url(url) == f"rtsp://cam/live?channel=1&{name}={MASK}&subtype=0"
    assert "Zq9-value" in secrets_of(url)
    assert "Zq9-value" not in redact_text(f"GET /live?{name}=Zq9-value HTTP/1.1")


@pytest.mark.parametrize("name", ["channel", "subtype", "config", "profile", "monkeys", "keyint"])
def test_ordinary_query_parameters_stay_readable(name: str) -> None:
    """Parameters that carry no credential are left alone."""
    url = f"rtsp://cam/live?{name}=1"
    assert redact_url(url) == url


def test_a_plain_value_does_not_hide_a_secret_parameter_after_it() -> None:
    """'/&@=?token=x': the token is found although a non-secret value seems to run over it."""
    assert redact_url("rtsp://h/&@=?token=abcd") == f"rtsp://h/&@=?token={MASK}"
    assert redact_url("rtsp://h/?token=ab?cd&x=1") == f"rtsp://h/?token={MASK}&x=1"


def test_secrets_of_gives_raw_decoded_and_encoded_forms() -> None:
    """User and password are returned as in the URL, percent-decoded and percent-encoded."""
    secrets = secrets_of("rtsp://al%20ice:p@ss%2Fw@h/x")
    for expected in ("al%20ice", "al ice", "p@ss%2Fw", "p@ss/w", "p%40ss%2Fw"):
        assert expected in secrets
    assert list(secrets) == sorted(secrets, key=len, reverse=True)


@pytest.mark.parametrize(
    ("header", "kept"),
    [
        ("Authorization: Basic YWxpY2U6c2VjcmV0", "Authorization: Basic ***"),
        (
            'Authorization: Digest username="alice", realm="x", nonce="n", '
            'uri="rtsp://h/x", response="6629fae49393a05397450978507c4ef1"',
            "Authorization: Digest ***",
        ),
        ("authorization:Bearer eyJhbGciOi.J9", "authorization: Bearer ***"),
        ("Proxy-Authorization: Basic YWxpY2U6c2VjcmV0", "Proxy-Authorization: Basic ***"),
        ("Cookie: session=abcdef", "Cookie: ***"),
        ("Authorization: Basic YWxpY2U6c2Vj", "Authorization: Basic ***"),  # cut mid-value
        (
            "a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz",
            "a=crypto: ***",
        ),
    ],
)
def test_credential_headers_are_masked_to_the_end_of_the_line(header: str, kept: str) -> None:
    """Authorization (Basic, Digest, Bearer), Proxy-Authorization, Cookie, SRTP keys are masked."""
    text = f"Sending:\nDESCRIBE rtsp://h/x RTSP/1.0\r\nCSeq: 3\r\n{header}\r\nSession: 42\r\n"
    out = redact_text(text)
    assert kept in out
    assert header.split(":", 1)[1].strip().split()[-1] not in out
    assert "CSeq: 3\r\n" in out and "Session: 42\r\n" in out


def test_a_password_that_looks_like_a_url_is_masked_in_text() -> None:
    """A password containing '://' is still masked (it is not mistaken for a URL secret)."""
    url = "rtsp://u:x://yz@h/"
    out = redact_text("opening rtsp://u:x://yz@h/ with x://yz", secrets_of(url))
    assert "x://yz" not in out


# -- URL checks -----------------------------------------------------------------------------

SECRET_URL = "rtsp://alice:hunter22@cam.local/live"


@pytest.mark.parametrize("value", [None, 5, b"rtsp://h/x", ["rtsp://h/x"]])
def test_check_url_wants_a_str(value: object) -> None:
    """Anything but a str is a TypeError that says a str is expected."""
    with pytest.raises(TypeError, match="must be a str"):
        check_url(value)


@pytest.mark.parametrize(
    ("char", "words"),
    [
        ("\r", "carriage return"),
        ("\n", "line feed"),
        ("\x00", "NUL"),
        ("\t", "tab"),
        ("\x1b", "control character, U\\+001B"),
        ("\x7f", "control character, U\\+007F"),
        ("\x85", "control character, U\\+0085"),
    ],
)
def test_check_url_refuses_control_characters_without_echoing_the_secret(
    char: str, words: str
) -> None:
    """CR, LF, NUL and other C0/C1 controls or DEL are refused; the message names the class."""
    for url in (
        f"rtsp://alice:hunter22@cam.local/live{char}x",
        f"rtsp://alice:hunter22@cam.local{char}/live",
        f"rtsp://alice:hun{char}ter22@cam.local/live",
    ):
        with pytest.raises(ValueError, match=f"control characters.*{words}") as info:
            check_url(url)
        for piece in ("hunter22", "hun", "ter22", "alice"):
            assert piece not in str(info.value)


@pytest.mark.parametrize("char", [" ", "\u00a0", "\u2003", "\u3000"])
def test_check_url_refuses_white_space_inside(char: str) -> None:
    """A space (of any kind) inside a URL is refused; around it, it is stripped."""
    for url in (SECRET_URL.replace("live", f"li{char}ve"), SECRET_URL.replace("hunter", char)):
        with pytest.raises(ValueError, match="white space") as info:
            check_url(url)
        assert "hunter" not in str(info.value) and "22@" not in str(info.value)
    assert check_url(f"  {SECRET_URL}\n") == SECRET_URL


def test_check_url_refuses_absurdly_long_text() -> None:
    """More than MAX_TEXT_LENGTH characters is refused, and the message says the limit."""
    base = "rtsp://alice:hunter22@cam.local/"
    fits = base + "x" * (MAX_TEXT_LENGTH - len(base))
    assert check_url(fits) == fits
    with pytest.raises(ValueError, match=f"limit is {MAX_TEXT_LENGTH}") as info:
        check_url(fits + "x")
    assert "hunter22" not in str(info.value)
    assert len(str(info.value)) < 200


def test_check_url_wants_a_supported_scheme() -> None:
    """A missing or unknown scheme is refused, naming the supported ones; case is ignored."""
    with pytest.raises(ValueError, match="starts with one of rtsp://") as info:
        check_url("alice:hunter22@cam.local/live")
    assert "hunter22" not in str(info.value)
    with pytest.raises(ValueError, match=r"unsupported URL scheme 'ftp'.*srt://"):
        check_url("ftp://cam/x")
    with pytest.raises(ValueError, match=r"rtsp://, rtsps://$"):
        check_url("http://cam/x", schemes=("rtsp", "rtsps"))
    with pytest.raises(ValueError, match="names no host"):
        check_url("rtsp://")
    assert check_url("RTSP://cam/x") == "RTSP://cam/x"
    assert set(NETWORK_SCHEMES) >= {"rtsp", "rtsps", "http", "https", "rtmp", "srt", "udp"}


def test_check_source_text_refuses_text_the_file_system_would_choke_on() -> None:
    """A name too long for a path is a ValueError (Path.is_file() raises OSError on 3.11-3.13)."""
    long_name = "x" * 300
    with pytest.raises(ValueError, match="too long for a file path"):
        check_source_text(long_name)
    with pytest.raises(ValueError, match="too long for a file path"):
        check_source_text("/a" * 2100)
    with pytest.raises(ValueError, match=f"limit is {MAX_TEXT_LENGTH}"):
        check_source_text("x" * (MAX_TEXT_LENGTH + 1))
    with pytest.raises(ValueError, match="encodable"):
        check_source_text("cam\ud800")


def test_check_source_text_allows_spaces_but_not_controls() -> None:
    """Device names and paths keep their spaces; control characters and non-str are refused."""
    assert check_source_text("  usb:HD Pro Webcam C920 ") == "usb:HD Pro Webcam C920"
    assert check_source_text("rtsp://h/" + "x" * 5000).startswith("rtsp://h/x")
    with pytest.raises(ValueError, match="line feed"):
        check_source_text("clip.mp4\nrm -rf")
    with pytest.raises(ValueError, match="NUL"):
        check_source_text("clip\x00.mp4")
    with pytest.raises(TypeError, match="must be a str"):
        check_source_text(None)
    with pytest.raises(ValueError, match="empty"):
        check_source_text("   ")


# -- credentials given apart from the URL ---------------------------------------------------


def test_with_credentials_percent_encodes_and_secrets_of_covers_every_form() -> None:
    """Credentials go in percent-encoded; secrets_of finds them raw and encoded."""
    user, password = "al ice", "p@ss:w/rd#?%x"
    url = with_credentials("rtsp://cam.local:554/live?ch=1", user, password)
    assert url == "rtsp://al%20ice:p%40ss%3Aw%2Frd%23%3F%25x@cam.local:554/live?ch=1"
    assert redact_url(url) == "rtsp://***@cam.local:554/live?ch=1"
    secrets = secrets_of(url)
    for secret in (user, password, *forms(user), *forms(password)):
        assert secret in secrets
    text = redact_text(f"{url} {user} {password} {urllib.parse.quote(password)}", secrets)
    assert password not in text and user not in text and "p%40ss" not in text


def test_with_credentials_refuses_a_second_set_and_odd_values() -> None:
    """User info in the URL and as arguments, a password alone, or control characters fail."""
    assert with_credentials("rtsp://h/x", None, None) == "rtsp://h/x"
    assert with_credentials("rtsp://h/x", "bob", None) == "rtsp://bob@h/x"
    assert with_credentials("udp://@239.0.0.1:1234", "u", "p") == "udp://u:p@239.0.0.1:1234"
    # An "@" in the query is no user info (FFmpeg reads the authority strictly).
    assert with_credentials("rtsp://h:554/s?to=a@b", "u", "p") == "rtsp://u:p@h:554/s?to=a@b"
    with pytest.raises(ValueError, match="already has credentials"):
        with_credentials("rtsp://alice:x@h/x", "bob", "y")
    with pytest.raises(ValueError, match="needs a username"):
        with_credentials("rtsp://h/x", None, "y")
    with pytest.raises(ValueError, match="must not be empty"):
        with_credentials("rtsp://h/x", "", "y")
    with pytest.raises(ValueError, match="control characters") as info:
        with_credentials("rtsp://h/x", "bob", "hunter22\r\nX-Injected: 1")
    assert "hunter22" not in str(info.value)
    with pytest.raises(TypeError, match="must be a str"):
        with_credentials("rtsp://h/x", "bob", 1234)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="with a scheme"):
        with_credentials("cam/x", "bob", "y")


@pytest.mark.rtsp
def test_percent_encoded_hostile_credentials_authenticate_for_real() -> None:
    """FFmpeg decodes what with_credentials encodes: odd credentials open a protected stream."""
    user, password = "al ice", "p@ss:w/rd#?%x"
    with RtspServer(gop=10, user=user, password=password) as server:
        url = with_credentials(server.url("/secure"), user, password)
        with av.open(url, options={"rtsp_transport": "tcp"}, timeout=(5, 1)) as container:
            frame = next(container.decode(video=0))
    assert frame.width == 640


# -- FFmpeg's log -----------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def clean_log_filter() -> Iterator[None]:
    """Each test starts and ends without the filter installed or secrets registered."""
    _logfilter.uninstall()
    yield
    _logfilter.uninstall()
    assert not _logfilter._state.registered, "a test left secrets registered"


@pytest.fixture
def libav_trace(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    """PyAV forwards FFmpeg's log at TRACE to the libav loggers, which caplog captures."""
    previous = av.logging.get_level()
    caplog.set_level(1, logger="libav")
    av.logging.set_level(av.logging.TRACE)
    try:
        yield caplog
    finally:
        av.logging.set_level(previous)


def libav_messages(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name.startswith("libav")]


def test_records_are_formatted_then_redacted() -> None:
    """redact_record formats msg % args, stores the redacted text in msg and clears args."""
    record = logging.LogRecord(
        "libav.rtsp",
        logging.INFO,
        __file__,
        1,
        "open %s as %r",
        ("rtsp://a:hunter22@h/", "x"),
        None,
    )
    _logfilter.redact_record(record)
    assert record.msg == "open rtsp://***@h/ as 'x'"
    assert record.args == ()
    assert record.getMessage() == "open rtsp://***@h/ as 'x'"


def test_a_record_that_cannot_be_formatted_is_withheld_not_raised() -> None:
    """Bad arguments never raise from the filter nor reach stderr: the message is withheld."""
    record = logging.LogRecord("libav.rtsp", logging.INFO, __file__, 1, "%d", ("hunter22",), None)
    assert _logfilter.RedactingFilter().filter(record) is True
    assert record.getMessage() == _logfilter.WITHHELD


def test_headers_and_urls_in_libav_records_are_masked_once_installed(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """With nothing registered, Authorization headers and URL credentials are still masked."""
    caplog.set_level(1, logger="libav")
    _logfilter.install()
    logging.getLogger("libav.rtsp").debug("Authorization: Basic YWxpY2U6c2VjcmV0\r\n")
    logging.getLogger("libav.tcp").info("connect rtsp://bob:hunter22@h/x?token=t0k3n")
    logging.getLogger("libav").warning("%s", "Cookie: sid=0xdeadbeef")
    text = "\n".join(libav_messages(caplog))
    for secret in ("YWxpY2U6c2VjcmV0", "hunter22", "t0k3n", "0xdeadbeef"):
        assert secret not in text
    assert "Authorization: Basic ***" in text and "rtsp://***@h/x?token=***" in text


def test_registered_secrets_and_their_base64_are_masked_until_unregistered(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A registered source's password, and base64 of user:password, vanish from libav records."""
    caplog.set_level(1, logger="libav")
    url = with_credentials("rtsp://h/x", "alice", "p@ss w0rd")
    basic = base64.b64encode(b"alice:p@ss w0rd").decode()
    token = _logfilter.register(secrets_of(url))
    assert _logfilter.installed()
    log = logging.getLogger("libav.http")
    log.debug("a quoted password: p@ss w0rd; a stray token: %s", basic)
    _logfilter.unregister(token)
    _logfilter.unregister(token)  # a spent token is ignored
    log.debug("a quoted password: p@ss w0rd")
    first, second = libav_messages(caplog)
    assert "p@ss w0rd" not in first and basic not in first
    assert "p@ss w0rd" in second  # unregistered: only structure-based masking is left


def test_registrations_are_counted_per_token() -> None:
    """Two pumps on the same source: the secrets stay masked until both have unregistered."""
    one = _logfilter.register(("hunter22",))
    two = _logfilter.register(("hunter22",))
    _logfilter.unregister(one)
    assert "hunter22" in _logfilter._state.active
    _logfilter.unregister(two)
    assert _logfilter._state.active == ()


def test_loggers_and_handlers_made_after_install_get_redacted_records() -> None:
    """The record factory covers child loggers and handlers that appear after install()."""
    _logfilter.install()
    seen: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            seen.append(self.format(record))

    logger = logging.getLogger("libav.brand_new_component")
    logger.setLevel(logging.DEBUG)
    handler = Keep()
    logger.addHandler(handler)
    try:
        logger.debug("Authorization: Bearer hunter22")
        logging.getLogger("libavx").warning("Authorization: Bearer untouched")  # not libav
    finally:
        logger.removeHandler(handler)
        logger.setLevel(logging.NOTSET)
    assert seen == ["Authorization: Bearer ***"]


def test_other_loggers_are_left_alone(caplog: pytest.LogCaptureFixture) -> None:
    """Records outside the libav hierarchy are not rewritten (their args stay)."""
    _logfilter.install()
    with caplog.at_level(logging.INFO, logger="app"):
        logging.getLogger("app").info("Authorization: %s", "Basic abc")
    (record,) = caplog.records
    assert record.args == ("Basic abc",)


def test_install_is_idempotent_and_survives_a_foreign_factory() -> None:
    """install() twice wraps once; a factory set later keeps ours in its chain until uninstall."""
    original = logging.getLogRecordFactory()
    _logfilter.install()
    ours = logging.getLogRecordFactory()
    _logfilter.install()
    assert logging.getLogRecordFactory() is ours

    def foreign(*args: object, **kwargs: object) -> logging.LogRecord:
        return ours(*args, **kwargs)

    logging.setLogRecordFactory(foreign)
    try:
        record = logging.getLogger("libav.rtsp").makeRecord(
            "libav.rtsp", logging.INFO, __file__, 1, "Authorization: Basic x", (), None
        )
        assert record.getMessage() == "Authorization: Basic ***"
        _logfilter.uninstall()  # leaves the foreign factory in place, ours disabled
        assert logging.getLogRecordFactory() is foreign
        record = logging.getLogger("libav.rtsp").makeRecord(
            "libav.rtsp", logging.INFO, __file__, 1, "Authorization: Basic x", (), None
        )
        assert record.getMessage() == "Authorization: Basic x"
    finally:
        logging.setLogRecordFactory(original)


def test_registering_from_many_threads_is_safe() -> None:
    """Concurrent register/unregister while records are made leaves a consistent, empty state."""
    _logfilter.install()
    logger = logging.getLogger("libav.threads")
    errors: list[BaseException] = []

    def work(n: int) -> None:
        try:
            for i in range(200):
                token = _logfilter.register((f"secret-{n}-{i}",))
                record = logger.makeRecord(
                    logger.name, logging.INFO, __file__, 1, f"x secret-{n}-{i} y", (), None
                )
                assert f"secret-{n}-{i}" not in record.getMessage()
                _logfilter.unregister(token)
        except BaseException as exc:  # handed to the main thread
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert not errors
    assert _logfilter._state.active == ()


def test_pyav_forwarded_messages_are_redacted(libav_trace: pytest.LogCaptureFixture) -> None:
    """A message that goes through FFmpeg's av_log and PyAV's callback arrives masked."""
    token = _logfilter.register(secrets_of("rtsp://alice:hunter22@h/x"))
    try:
        av.logging.log(av.logging.INFO, "rtsp", "retrying with hunter22 (100% sure)")
    finally:
        _logfilter.unregister(token)
    assert libav_messages(libav_trace) == ["retrying with *** (100% sure)"]


@pytest.mark.rtsp
def test_ffmpeg_trace_log_of_an_authenticated_rtsp_session_carries_no_credentials(
    rtsp_server: RtspServer, libav_trace: pytest.LogCaptureFixture
) -> None:
    """FFmpeg logs Authorization: Basic <user:password> at TRACE; with the filter it is masked."""
    url = rtsp_server.url("/secure", auth=True)
    basic = base64.b64encode(f"{rtsp_server.user}:{rtsp_server.password}".encode()).decode()

    def session() -> list[str]:
        libav_trace.clear()
        with av.open(url, options={"rtsp_transport": "tcp"}, timeout=(5, 1)) as container:
            next(container.decode(video=0))
        return libav_messages(libav_trace)

    # Control: without the filter the credentials are there, so the test can fail.
    unfiltered = session()
    assert any(basic in m for m in unfiltered), "FFmpeg no longer logs the header: test is void"

    token = _logfilter.register(secrets_of(url))
    try:
        filtered = session()
    finally:
        _logfilter.unregister(token)
    assert filtered, "no libav records were captured"
    assert any("Authorization: Basic ***" in m for m in filtered)
    for message in filtered:
        assert basic not in message
        assert rtsp_server.password not in message
        assert f"{rtsp_server.user}:{rtsp_server.password}" not in message
