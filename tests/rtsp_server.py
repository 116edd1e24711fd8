"""Loopback RTSP test server for camerapump's tests (gst-rtsp-server).

Run it with Debian's interpreter, which has PyGObject and GStreamer:

    /usr/bin/python3 tests/rtsp_server.py --port 8554 [--width 640 --height 480
        --fps 30 --gop 30 --user alice --password secret]

It serves a live, moving ``videotestsrc`` picture on 127.0.0.1 only, at three
mount points at once:

* ``/h264``   H.264 (x264enc, zerolatency), open to anonymous clients;
* ``/mjpeg``  Motion JPEG (RTP/JPEG), open to anonymous clients;
* ``/secure`` the same H.264 as /h264, but only with HTTP basic auth.

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
from gi.repository import GLib, Gst, GstRtspServer  # noqa: E402

ANONYMOUS = "anonymous"
USER = "user"


def source(args):
    return (
        "videotestsrc is-live=true pattern=ball ! "
        f"video/x-raw,format=I420,width={args.width},height={args.height},"
        f"framerate={args.fps}/1"
    )


def h264_launch(args):
    return (
        f"( {source(args)} ! x264enc tune=zerolatency speed-preset=ultrafast "
        f"key-int-max={args.gop} bitrate=1000 ! "
        "rtph264pay name=pay0 pt=96 config-interval=1 )"
    )


def mjpeg_launch(args):
    # format=I420 before jpegenc: FFmpeg's RTP/JPEG depayloader needs 4:2:0.
    return f"( {source(args)} ! jpegenc quality=80 ! rtpjpegpay name=pay0 pt=26 )"


def factory(launch, *, open_to_anonymous):
    """A shared factory that the "user" role may always use.

    Anonymous clients may use it too if ``open_to_anonymous``. Otherwise they
    keep "media.factory.access" but lose "media.factory.construct": gst-rtsp-
    server answers a missing *access* with 404, and a missing *construct* with
    401 plus a WWW-Authenticate challenge, which is what makes a client (FFmpeg)
    retry with the credentials from its URL.
    """
    perms = GstRtspServer.RTSPPermissions()
    for role, construct in ((USER, True), (ANONYMOUS, open_to_anonymous)):
        perms.add_role_from_structure(Gst.Structure.new_empty(role))
        perms.add_permission_for_role(role, "media.factory.access", True)
        perms.add_permission_for_role(role, "media.factory.construct", construct)
    f = GstRtspServer.RTSPMediaFactory()
    f.set_launch(launch)
    f.set_shared(True)
    f.set_permissions(perms)
    return f


def token(role):
    t = GstRtspServer.RTSPToken()
    t.set_string("media.factory.role", role)
    return t


def build_server(args):
    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(str(args.port))

    auth = GstRtspServer.RTSPAuth()
    auth.set_default_token(token(ANONYMOUS))  # clients without credentials
    auth.add_basic(GstRtspServer.RTSPAuth.make_basic(args.user, args.password), token(USER))
    server.set_auth(auth)

    mounts = server.get_mount_points()
    mounts.add_factory("/h264", factory(h264_launch(args), open_to_anonymous=True))
    mounts.add_factory("/mjpeg", factory(mjpeg_launch(args), open_to_anonymous=True))
    mounts.add_factory("/secure", factory(h264_launch(args), open_to_anonymous=False))
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
