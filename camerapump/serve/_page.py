"""The live page: plain HTML, a little CSS and a little JavaScript, all inline.

No build step and nothing from a CDN (a viewer may be offline).  The page is the
same for every app: it learns the cameras from ``api/cameras``, shows each
picture with ``<img src=cameras/I/mjpeg>`` and follows status and figures
through one ``EventSource`` on ``api/events``.  Every URL is relative, so the
page works wherever the app is mounted, and a ``?token=`` the page was opened
with is passed on to every request (a browser cannot add headers to an image).

Browsers keep at most 6 connections to one HTTP/1.1 server, and an MJPEG
stream holds one for as long as it shows: so the first :data:`LIVE_TILES`
cameras stream, and the others show a fresh snapshot in turn.

A camera whose picture is not live gets a banner over it, with the age of
its last frame, and its picture is greyed: amber (:data:`STALE_COLOUR`) while
it connects, reconnects or is late, red (:data:`DEAD_COLOUR`) once it gave
up, ended, or the server cannot be reached.

Labels and names reach the page as JSON and are set as text, never as HTML.
The response carries a Content-Security-Policy that allows this page's own
script and style (by hash) and nothing else.
"""

from __future__ import annotations

import base64
import hashlib

__all__ = ["CSP", "DEAD_COLOUR", "LIVE_TILES", "PAGE", "STALE_COLOUR"]

#: Cameras that stream MJPEG on the page (the rest show snapshots in turn).
LIVE_TILES = 4
#: The banner of a camera whose picture is late (connecting, reconnecting, stale).
STALE_COLOUR = "#ffb000"
#: The banner of a camera that is gone (gave up, ended, no contact with the server).
DEAD_COLOUR = "#d0021b"

_STYLE = """
:root { color-scheme: dark; }
body { margin: 0; font: 14px/1.4 system-ui, sans-serif; background: #111; color: #ddd; }
header { display: flex; align-items: baseline; gap: 1em; padding: .6em 1em; }
header h1 { font-size: 1.1em; margin: 0; }
#note { color: #aaa; }
main { display: grid; gap: 1em; padding: 0 1em 1em;
       grid-template-columns: repeat(auto-fill, minmax(min(100%, 400px), 1fr)); }
.tile { background: #1c1c1c; border-radius: 6px; overflow: hidden; }
.view { position: relative; background: #000; aspect-ratio: 16 / 9; }
.view img { display: block; width: 100%; height: 100%; object-fit: contain; }
.tile.stale img, .tile.dead img { filter: grayscale(1) brightness(.5); }
.banner { display: none; position: absolute; left: 0; right: 0; top: 0; padding: .7em 1em;
          font-weight: 600; }
.tile.stale .banner { display: block; background: STALE; color: #000; }
.tile.dead .banner { display: block; background: DEAD; color: #fff; }
.info { padding: .5em .8em .7em; }
.info h2 { font-size: 1em; margin: 0 0 .2em; overflow-wrap: anywhere; }
.label, .format { color: #999; overflow-wrap: anywhere; }
.figures { display: flex; flex-wrap: wrap; gap: .2em 1.2em; margin: .3em 0 0; }
.figures span b { font-weight: 600; color: #fff; }
""".replace("STALE", STALE_COLOUR).replace("DEAD", DEAD_COLOUR)

_SCRIPT = """
"use strict";
const LIVE_TILES = LIVE;
const token = new URLSearchParams(location.search).get("token");
const grid = document.getElementById("grid");
const note = document.getElementById("note");
const tiles = [];
let lastMessage = performance.now();

function withToken(path, extra) {
  const params = new URLSearchParams(extra || {});
  if (token) params.set("token", token);
  const query = params.toString();
  return query ? path + "?" + query : path;
}

function el(tag, cls, parent) {
  const node = document.createElement(tag);
  if (cls) node.className = cls;
  if (parent) parent.appendChild(node);
  return node;
}

function figure(parent, name) {
  const span = el("span", "", parent);
  span.append(name + " ");
  return el("b", "", span);
}

function addTile(camera, index) {
  const section = el("section", "tile stale", grid);
  section.dataset.camera = String(camera.index);
  const view = el("div", "view", section);
  const img = el("img", "", view);
  img.alt = camera.name;
  const banner = el("div", "banner", view);
  banner.textContent = "connecting\u2026";
  const info = el("div", "info", section);
  el("h2", "", info).textContent = camera.name;
  if (camera.label !== camera.name) el("div", "label", info).textContent = camera.label;
  const status = el("div", "status", info);
  const figures = el("div", "figures", info);
  const tile = {
    camera, section, img, banner, status, live: index < LIVE_TILES,
    fps: figure(figures, "fps"), age: figure(figures, "frame age"),
    drops: figure(figures, "dropped"), reconnects: figure(figures, "reconnects"),
    format: el("div", "format", info), stats: null, statsAt: 0, event: null, eventAt: 0,
    wasDead: false,
  };
  if (tile.live) {
    img.addEventListener("error", () => setTimeout(() => restream(tile), 2000));
    restream(tile);
  }
  tiles[camera.index] = tile;
  return tile;
}

function restream(tile) {
  tile.img.src = withToken(tile.camera.urls.mjpeg, {t: Date.now()});
}

function statusText(tile, why) {
  const e = tile.event;
  if (!e) return "";
  const reason = why && e.reason ? " (" + e.reason + ")" : "";
  if (e.event === "reconnecting") {
    const left = Math.max(0, e.delay - (performance.now() - tile.eventAt) / 1000);
    return "reconnecting #" + e.attempt + " in " + left.toFixed(1) + " s" + reason;
  }
  if (e.event === "gave_up") return "gave up" + reason;
  if (e.event === "format_changed") return "connected, format changed";
  if (e.event === "connecting") return "connecting\u2026";
  return e.event;
}

function seconds(value) {
  return value < 10 ? value.toFixed(1) + " s" : Math.round(value) + " s";
}

function render(tile, serverLost) {
  const now = performance.now();
  const s = tile.stats;
  let age = null;
  if (s && s.last_frame_age !== null) age = s.last_frame_age + (now - tile.statsAt) / 1000;
  const rate = s && s.format && s.format.fps ? s.format.fps : 10;
  const staleAfter = Math.max(2.5, 3 / rate + 1);
  const state = s ? s.state : "connecting";
  const gaveUp = tile.event && tile.event.event === "gave_up";
  const dead = serverLost || gaveUp || ["failed", "ended", "closed"].includes(state);
  const paused = s && !s.active;
  const stale = !dead && (paused || state !== "connected" || age === null || age > staleAfter);
  let text = statusText(tile, false) || state;
  let full = statusText(tile, true) || state;
  if (serverLost) text = full = "no contact with the server";
  else if (paused) text = full = "paused";
  else if (!dead && state === "connected" && stale) text = full = "no new frames";
  const since = age === null ? "no picture yet" : "last frame " + seconds(age) + " ago";
  tile.banner.textContent = text + " \u00b7 " + since;
  tile.section.classList.toggle("dead", dead);
  tile.section.classList.toggle("stale", stale);
  tile.status.textContent = full;
  if (tile.wasDead && !dead && state === "connected" && tile.live) restream(tile);
  tile.wasDead = dead;
  if (s) {
    tile.fps.textContent = s.fps.toFixed(1);
    // The server's own figure (as of its last message); the banner extrapolates.
    const shown = stale && age !== null ? age : s.last_frame_age;
    tile.age.textContent = shown === null ? "\u2013" : Math.round(shown * 1000) + " ms";
    tile.drops.textContent = String(s.frames_dropped);
    tile.reconnects.textContent = String(s.reconnects);
    const f = s.format;
    tile.format.textContent = f ? f.width + "x" + f.height + " @ " +
      (f.fps === null ? "?" : (f.fps_measured ? "~" : "") + f.fps) + " fps, " + f.codec +
      " \u2192 " + f.pixel_format : "";
  }
}

function renderAll() {
  const serverLost = performance.now() - lastMessage > 3500;
  note.textContent = serverLost ? "no contact with the server" : "";
  for (const tile of tiles) if (tile) render(tile, serverLost);
}

function listen() {
  const source = new EventSource(withToken("api/events"));
  source.addEventListener("status", (message) => {
    lastMessage = performance.now();
    const data = JSON.parse(message.data);
    const tile = tiles[data.camera];
    if (tile) { tile.event = data; tile.eventAt = lastMessage; }
  });
  source.addEventListener("statistics", (message) => {
    lastMessage = performance.now();
    const data = JSON.parse(message.data);
    const tile = tiles[data.camera];
    if (tile) { tile.stats = data; tile.statsAt = lastMessage; }
  });
}

async function snapshots() {
  const still = tiles.filter((tile) => tile && !tile.live);
  while (still.length) {
    for (const tile of still) {
      try {
        const url = withToken(tile.camera.urls.snapshot, {t: Date.now()});
        const response = await fetch(url, {cache: "no-store"});
        if (response.ok) {
          const old = tile.img.src;
          tile.img.src = URL.createObjectURL(await response.blob());
          if (old.startsWith("blob:")) URL.revokeObjectURL(old);
        }
      } catch (error) { /* the banner tells */ }
    }
    await new Promise((done) => setTimeout(done, 250));
  }
}

async function start() {
  let info;
  try {
    const response = await fetch(withToken("api/cameras"), {cache: "no-store"});
    if (!response.ok) {
      note.textContent = response.status === 401
        ? "this server needs a token: open the page as ...?token=TOKEN"
        : "the server answered " + response.status;
      return;
    }
    info = await response.json();
  } catch (error) {
    note.textContent = "no contact with the server";
    return;
  }
  info.cameras.forEach(addTile);
  if (!info.cameras.length) note.textContent = "no cameras";
  listen();
  setInterval(renderAll, 250);
  snapshots();
}

start();
""".replace("LIVE;", f"{LIVE_TILES};")


def _digest(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode() + "'"


#: The page's Content-Security-Policy: its own inline script and style, same-origin
#: requests, images from the server and from the snapshots it fetched.
CSP = (
    f"default-src 'none'; script-src {_digest(_SCRIPT)}; style-src {_digest(_STYLE)}; "
    "img-src 'self' blob:; connect-src 'self'; base-uri 'none'; form-action 'none'; "
    "frame-ancestors 'self'"
)

#: The page itself.
PAGE = f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>camerapump</title>
<style>{_STYLE}</style>
</head>
<body>
<header><h1>camerapump</h1><span id="note"></span></header>
<main id="grid"></main>
<script>{_SCRIPT}</script>
</body>
</html>
"""
