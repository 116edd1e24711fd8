"""Loopback RTSP test server for camerapump's tests (gst-rtsp-server).

Run it with Debian's interpreter, which has PyGObject and GStreamer:

    /usr/bin/python3 tests/rtsp_server.py --port 8554 [--width 640 --height 480
        --fps 30 --gop 30 --user alice --password secret --udp-only
        --picture ball|camera]

It serves a live, moving ``videotestsrc`` picture on 127.0.0.1 only (``--picture``:
see PICTURES), at these
mount points at once:

* ``/h264``      H.264 (x264enc, zerolatency), open to anonymous clients;
* ``/mjpeg``     Motion JPEG (RTP/JPEG), open to anonymous clients;
* ``/secure``    the same H.264 as /h264, but only with HTTP basic auth;
* ``/h264-aac``  an AAC audio track (voaacenc, RTP mpeg4-generic) listed FIRST
  in the SDP, then the H.264 video;
* ``/h264-alaw`` a G.711 A-law audio track (8 kHz, PCMA) first, then H.264;
* ``/h265``      H.265 (x265enc, zerolatency);
* ``/digest``    the same H.264 as /h264, but only with RTSP Digest auth
  (same user and password as /secure);
* ``/resize``    H.264 whose picture size flips between width x height and
  half of it every ``--resize-every`` seconds (in-band SPS, no new SDP).

A mount's pipeline is built only when a client asks for it, so an unused
mount costs nothing. ``--udp-only`` makes every mount
refuse RTP over the RTSP TCP connection (a client that asks for TCP gets
"461 Unsupported transport").

Every factory is shared: one encoder per mount point, whatever the number of
clients. Once the server listens it prints exactly one line ``READY <port>``
to stdout. SIGTERM or SIGINT stops it cleanly (exit 0); a port that cannot be
bound makes it exit with status 1 and a message on stderr. It also exits by
itself when the process that started it dies, so a crashed test run leaves no
server behind.
"""

import argparse
import os
import signal
import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
gi.require_version("GstRtsp", "1.0")
from gi.repository import GLib, Gst, GstRtsp, GstRtspServer  # noqa: E402

ANONYMOUS = "anonymous"
USER = "user"  # Basic credentials
DIGEST_USER = "digest-user"  # Digest credentials


# --picture: (videotestsrc properties of every mount, x264enc properties of the H.264 ones).
# "ball" is the cheapest H.264 there is to decode (mostly black, ultrafast: no
# CABAC, no deblocking); "camera" is textured and moving, encoded as cameras do
# (CABAC and the deblocking filter on): 1.7 to 1.8 times the decoding work at 720p.
# No scene cuts: the scrolling picture made x264 start a GOP every third frame.
PICTURES = {
    "ball": ("pattern=ball", "tune=zerolatency speed-preset=ultrafast"),
    "camera": (
        "pattern=smpte horizontal-speed=3",
        "tune=zerolatency speed-preset=veryfast option-string=scenecut=0",
    ),
}


def source(args):
    return (
        f"videotestsrc is-live=true {PICTURES[args.picture][0]} ! "
        f"video/x-raw,format=I420,width={args.width},height={args.height},"
        f"framerate={args.fps}/1"
    )


def h264_launch(args):
    return f"( {h264_branch(args, 'pay0')} )"


def h264_branch(args, pay, *, name="", scale=False):
    """The H.264 video branch (no parentheses), payloaded by ``pay``.

    ``scale``: a ``videoscale`` and a capsfilter called ``name`` whose caps
    can be changed while playing (the /resize mount).
    """
    resize = f"videoscale ! capsfilter name={name} ! " if scale else ""
    return (
        f"{source(args)} ! {resize}x264enc {PICTURES[args.picture][1]} "
        f"key-int-max={args.gop} bitrate=1000 ! "
        f"rtph264pay name={pay} pt=96 config-interval=1"
    )


def h264_aac_launch(args):
    # pay0 is listed first in the SDP: the audio, as many IP cameras do.
    return (
        "( audiotestsrc is-live=true wave=sine freq=440 ! "
        "audio/x-raw,rate=44100,channels=1 ! audioconvert ! voaacenc bitrate=64000 ! "
        f"aacparse ! rtpmp4gpay name=pay0 pt=97  {h264_branch(args, 'pay1')} )"
    )


def h264_alaw_launch(args):
    return (
        "( audiotestsrc is-live=true wave=sine freq=440 ! audioconvert ! audioresample ! "
        "audio/x-raw,rate=8000,channels=1 ! alawenc ! rtppcmapay name=pay0 pt=8  "
        f"{h264_branch(args, 'pay1')} )"
    )


def h265_launch(args):
    return (
        f"( {source(args)} ! x265enc tune=zerolatency speed-preset=ultrafast "
        f"key-int-max={args.gop} bitrate=1000 ! video/x-h265,profile=main ! "
        "rtph265pay name=pay0 pt=96 config-interval=1 )"
    )


def resize_launch(args):
    return f"( {h264_branch(args, 'pay0', name='size', scale=True)} )"


def size_caps(width, height):
    return Gst.Caps.from_string(f"video/x-raw,width={width},height={height}")


def flip_size_while_playing(args):
    """A "media-configure" handler: flip the capsfilter's size every ``--resize-every`` s."""
    sizes = [(args.width, args.height), (args.width // 2 // 2 * 2, args.height // 2 // 2 * 2)]

    def configure(_factory, media):
        capsfilter = media.get_element().get_by_name("size")
        capsfilter.set_property("caps", size_caps(*sizes[0]))
        state = {"i": 0}

        def flip():
            state["i"] ^= 1
            capsfilter.set_property("caps", size_caps(*sizes[state["i"]]))
            return GLib.SOURCE_CONTINUE

        timer = GLib.timeout_add(int(args.resize_every * 1000), flip)
        media.connect("unprepared", lambda _media: GLib.source_remove(timer))

    return configure


class PathAuth(GstRtspServer.RTSPAuth):
    """Challenges with Basic auth everywhere, but with Digest under ``/digest``.

    gst-rtsp-server has one ``RTSPAuth`` per server, and its "supported
    methods" only choose the challenge (``WWW-Authenticate``) that a 401
    carries: any credentials that match are accepted on any path. So the
    methods are picked per request path here, and the roles do the rest:
    Basic credentials give the ``user`` role, Digest ones ``digest-user``,
    and each protected mount lets only its own role construct the media.
    Requests are handled one at a time on the main loop, so the switch
    cannot race.
    """

    def do_generate_authenticate_header(self, ctx):
        path = ctx.uri.abspath if ctx.uri is not None else ""
        digest = path == "/digest" or path.startswith("/digest/")
        methods = GstRtsp.RTSPAuthMethod.DIGEST if digest else GstRtsp.RTSPAuthMethod.BASIC
        self.set_supported_methods(methods)
        GstRtspServer.RTSPAuth.do_generate_authenticate_header(self, ctx)


def mjpeg_launch(args):
    # format=I420 before jpegenc: FFmpeg's RTP/JPEG depayloader needs 4:2:0.
    return f"( {source(args)} ! jpegenc quality=80 ! rtpjpegpay name=pay0 pt=26 )"


def factory(launch, *, open_to_anonymous, role=USER, udp_only=False):
    """A shared factory that ``role`` (by default "user") may always use.

    Anonymous clients, and the other role, may use it too if
    ``open_to_anonymous``. Otherwise they keep "media.factory.access" but
    lose "media.factory.construct": gst-rtsp-
    server answers a missing *access* with 404, and a missing *construct* with
    401 plus a WWW-Authenticate challenge, which is what makes a client (FFmpeg)
    retry with the credentials from its URL.
    """
    perms = GstRtspServer.RTSPPermissions()
    for name in (USER, DIGEST_USER, ANONYMOUS):
        construct = open_to_anonymous or name == role
        perms.add_role_from_structure(Gst.Structure.new_empty(name))
        perms.add_permission_for_role(name, "media.factory.access", True)
        perms.add_permission_for_role(name, "media.factory.construct", construct)
    f = GstRtspServer.RTSPMediaFactory()
    f.set_launch(launch)
    f.set_shared(True)
    f.set_permissions(perms)
    if udp_only:
        f.set_protocols(GstRtsp.RTSPLowerTrans.UDP)
    return f


def token(role):
    t = GstRtspServer.RTSPToken()
    t.set_string("media.factory.role", role)
    return t


def build_server(args):
    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(str(args.port))

    auth = PathAuth()
    auth.set_default_token(token(ANONYMOUS))  # clients without credentials
    auth.add_basic(GstRtspServer.RTSPAuth.make_basic(args.user, args.password), token(USER))
    auth.add_digest(args.user, args.password, token(DIGEST_USER))
    server.set_auth(auth)

    udp = args.udp_only
    mounts = server.get_mount_points()
    for path, launch, anonymous, role in (
        ("/h264", h264_launch(args), True, USER),
        ("/mjpeg", mjpeg_launch(args), True, USER),
        ("/secure", h264_launch(args), False, USER),
        ("/h264-aac", h264_aac_launch(args), True, USER),
        ("/h264-alaw", h264_alaw_launch(args), True, USER),
        ("/h265", h265_launch(args), True, USER),
        ("/digest", h264_launch(args), False, DIGEST_USER),
        ("/resize", resize_launch(args), True, USER),
    ):
        f = factory(launch, open_to_anonymous=anonymous, role=role, udp_only=udp)
        if path == "/resize":
            f.connect("media-configure", flip_size_while_playing(args))
        mounts.add_factory(path, f)
    return server


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--width", type=int, default=640)
    p.add_argument("--height", type=int, default=480)
    p.add_argument("--fps", type=int, default=30)
    p.add_argument("--gop", type=int, default=30)
    p.add_argument("--user", default="alice")
    p.add_argument("--password", default="secret")
    p.add_argument("--udp-only", action="store_true", help="refuse RTP over the RTSP connection")
    p.add_argument("--picture", choices=sorted(PICTURES), default="ball", help="see PICTURES")
    p.add_argument("--resize-every", type=float, default=1.0, help="seconds per size on /resize")
    args = p.parse_args(argv)

    Gst.init(None)
    server = build_server(args)
    try:
        server.create_source(None).attach(None)  # binds the port, or raises
    except GLib.Error as e:
        print(f"rtsp_server: cannot listen on 127.0.0.1:{args.port}: {e.message}", file=sys.stderr)
        return 1

    loop = GLib.MainLoop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, sig, loop.quit)
    parent = os.getppid()

    def quit_if_orphaned():
        if os.getppid() != parent:
            loop.quit()
        return GLib.SOURCE_CONTINUE

    GLib.timeout_add(500, quit_if_orphaned)
    print(f"READY {server.get_bound_port()}", flush=True)
    loop.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
