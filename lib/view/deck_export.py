"""The deck for slides: the whole deck as one self-contained HTML file, and one pair as a PNG rendered by
headless Chromium from that pair's own HTML slide.

Model, dataset and store text is untrusted: every piece of it goes through html.escape, inside elements
that show it as text (white-space kept). The deck's one script is NAV below, fixed, holding no store
text; the document's Content-Security-Policy allows that script and the one style sheet by their hashes
and nothing else (no other script, no fetch, no image, no font), so even text that escaped escaping could
run nothing, and the file opens offline. A single slide (for the PNG) carries no script at all.
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
import os
import shutil
import signal
import subprocess
import tempfile
import threading
from collections.abc import Sequence
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path

from lib.view import deck
from lib.view.charts import framing_label

SLIDE_SIZE = (1600, 900)  # pixels of a PNG slide (16:9)
RENDER_TIMEOUT = 60.0  # seconds for Chromium to draw one slide on a busy machine

CSS = """
* { box-sizing: border-box; }
html, body { margin: 0; background: #ffffff; color: #1d2733;
  font-family: "DejaVu Sans", "Liberation Sans", Arial, sans-serif; }
.slide { min-height: 100vh; padding: 36px 56px 28px; display: flex; flex-direction: column; gap: 18px;
  border-bottom: 2px solid #d8dee6; }
.slide[hidden] { display: none; }
header { display: flex; flex-wrap: wrap; gap: 10px 28px; align-items: baseline; font-size: 22px; }
header .model { font-weight: 700; font-size: 30px; }
header .framing { color: #a23b2a; font-weight: 700; }
header .where { color: #5a6877; }
header .count { margin-left: auto; color: #5a6877; }
.sides { display: grid; grid-template-columns: 1fr 1fr; gap: 36px; flex: 1; }
.side { border-radius: 14px; padding: 22px 26px; display: flex; flex-direction: column; gap: 14px; }
.side.neutral { background: #eef5ee; border: 3px solid #4f9a5a; }
.side.framed { background: #fbefec; border: 3px solid #c4553f; }
h2 { margin: 0; font-size: 24px; text-transform: uppercase; letter-spacing: 0.06em; color: #3b4754; }
.prompt, .reply { margin: 0; white-space: pre-wrap; overflow-wrap: anywhere; }
.prompt { color: #3b4754; border-left: 5px solid #b9c3ce; padding-left: 14px; }
.reply { font-weight: 600; }
.prefill { color: #6b7785; font-weight: 400; }
.verdict { margin: auto 0 0; font-size: 20px; }
.verdict .grader { font-family: "DejaVu Sans Mono", monospace; }
.size-l .prompt { font-size: 28px; } .size-l .reply { font-size: 34px; }
.size-m .prompt { font-size: 22px; } .size-m .reply { font-size: 26px; }
.size-s .prompt { font-size: 16px; } .size-s .reply { font-size: 18px; }
footer { font-size: 16px; color: #7a8693; }
@media print { .slide[hidden] { display: flex; } .slide { break-after: page; } }
"""

# The deck's one script: arrow keys (and Page Up/Down, space) step through the slides, one shown at a
# time, its number in the page's hash (#3) so a reload keeps it. Without scripts every slide shows, one
# below the other.
NAV = """(() => {
  const slides = [...document.querySelectorAll("section.slide")];
  let at = 0;
  const show = (n) => {
    at = Math.max(0, Math.min(slides.length - 1, n));
    slides.forEach((s, i) => { s.hidden = i !== at; });
    document.body.dataset.slide = String(at + 1);
    history.replaceState(null, "", "#" + (at + 1));
  };
  document.addEventListener("keydown", (e) => {
    if (["ArrowRight", "PageDown", " "].includes(e.key)) { show(at + 1); e.preventDefault(); }
    if (["ArrowLeft", "PageUp"].includes(e.key)) { show(at - 1); e.preventDefault(); }
  });
  show((parseInt(location.hash.slice(1), 10) || 1) - 1);
})();"""


def _sha256(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode() + "'"


def policy(script: bool) -> str:
    """The Content-Security-Policy: the style sheet and (in a deck) NAV by hash, nothing else."""
    scripts = _sha256(NAV) if script else "'none'"
    return (
        f"default-src 'none'; style-src {_sha256(CSS)}; script-src {scripts}; "
        "base-uri 'none'; form-action 'none'"
    )


@dataclass(frozen=True)
class Side:
    """What a slide shows of one answer."""

    label: str  # the framing's label
    prompt: str  # the user's last message
    prefill: str  # our start of the reply, shown apart ("The answer is ("); "" if none
    reply: str  # the reply as stored
    verdict: str  # correct, incorrect, unclear or "no verdict"
    grader: str  # "grader@version" of the verdict, or ""


def sides(pair: deck.Pair) -> tuple[Side, Side]:
    """The neutral and the framed side of a pair."""

    def side(framing_id: str, messages: Sequence[dict[str, str]], reply: str, verdict, grader) -> Side:
        users = [m["content"] for m in messages if m["role"] == "user"]
        prefill = messages[-1]["content"] if messages and messages[-1]["role"] == "assistant" else ""
        if reply.startswith(prefill):  # a reply that already holds its prefill (lib.probes.replies)
            prefill = ""
        return Side(
            framing_label(framing_id),
            users[-1] if users else "",
            prefill,
            reply,
            verdict or "no verdict",
            grader or "",
        )

    return (
        side(
            pair.neutral_framing,
            pair.neutral_messages,
            pair.neutral_reply,
            pair.neutral_verdict,
            pair.neutral_by,
        ),
        side(pair.framing_id, pair.framed_messages, pair.framed_reply, pair.framed_verdict, pair.framed_by),
    )


def size(pair: deck.Pair) -> str:
    """The type size of a slide, by how much text it holds: large, medium or small."""
    chars = sum(len(s.prompt) + len(s.prefill) + len(s.reply) for s in sides(pair))
    return "l" if chars <= 500 else "m" if chars <= 1400 else "s"


def slide(pair: deck.Pair, number: int, total: int) -> str:
    """One pair as an HTML section; every piece of store text escaped."""
    e = html.escape
    parts = [
        f'<section class="slide size-{size(pair)}" id="slide-{number}" data-framed="{e(pair.framed_id)}">',
        "<header>",
        f'<span class="model">{e(pair.model)}</span>',
        f'<span class="framing">{e(framing_label(pair.framing_id))}</span>',
        f'<span class="where">{e(pair.set_id)} · {e(pair.item_id)} · sample {pair.sample}</span>',
        f'<span class="count">{number} / {total}</span>',
        "</header>",
        '<div class="sides">',
    ]
    for kind, s in zip(("neutral", "framed"), sides(pair), strict=True):
        parts += [
            f'<article class="side {kind}">',
            f"<h2>{e(s.label)}</h2>",
            f'<p class="prompt">{e(s.prompt)}</p>',
            f'<p class="reply"><span class="prefill">{e(s.prefill)}</span>'
            f'<span class="response">{e(s.reply)}</span></p>',
            f'<p class="verdict">{e(s.verdict)}, graded by '
            f'<span class="grader">{e(s.grader or "no grader")}</span></p>',
            "</article>",
        ]
    parts += [
        "</div>",
        "<footer>Sycoscope: the same question, the same model; on the right the user states a view.</footer>",
        "</section>",
    ]
    return "\n".join(parts)


def document(pairs: Sequence[deck.Pair], script: bool, first: int = 1, total: int | None = None) -> str:
    """A whole HTML page of these pairs' slides, numbered from `first` of `total`; with NAV if `script`."""
    total = total if total is not None else len(pairs)
    slides = "\n".join(slide(p, first + k, total) for k, p in enumerate(pairs))
    nav = f"<script>{NAV}</script>" if script else ""
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">\n'
        f'<meta http-equiv="Content-Security-Policy" content="{policy(script)}">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>Sycoscope deck</title>\n<style>{CSS}</style></head>\n"
        f"<body>\n{slides}\n{nav}\n</body></html>\n"
    )


def deck_html(pairs: Sequence[deck.Pair]) -> str:
    """The whole deck as one self-contained HTML file: arrow keys step through it, offline."""
    return document(pairs, script=True)


class RenderError(Exception):
    """A PNG could not be made: the message says why and what to do."""


def chromium() -> str | None:
    """Chromium's binary: Debian's (`make test` installs it; tests/browser.py drives the same), or any
    chromium on the PATH; None if there is none."""
    for name in ("chromium", "chromium-browser"):
        found = shutil.which(name)
        if found:
            return found
    return "/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None


def slide_png(pair: deck.Pair, number: int = 1, total: int = 1) -> bytes:
    """One pair's slide as a PNG of SLIDE_SIZE, drawn by headless Chromium from its HTML (no script)."""
    return render_png(document([pair], script=False, first=number, total=total))


# Chromium's profile preferences for a slide: JavaScript off for every page. The slide holds no script and
# its policy allows none; this keeps the renderer from running any all the same. (The command-line
# --blink-settings=scriptEnabled=false would do it too, but headless Chromium then writes no screenshot.)
PREFERENCES = {"profile": {"default_content_setting_values": {"javascript": 2}}}
# One Chromium at a time in a process: concurrent clicks on the dashboard queue rather than each start a
# browser on a small server.
_DRAWING = threading.Lock()


def chromium_command(
    binary: str, folder: Path, source: Path, shot: Path, window: tuple[int, int]
) -> list[str]:
    """The command that draws `source` into `shot`: headless, offline, its profile in `folder`; without
    Chromium's sandbox only as root, where Chromium refuses to start with it."""
    sandbox = ["--no-sandbox"] if os.geteuid() == 0 else []
    return [
        binary, "--headless", *sandbox, "--disable-gpu", "--hide-scrollbars",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        "--no-first-run", "--force-device-scale-factor=1", f"--user-data-dir={folder / 'profile'}",
        f"--window-size={window[0]},{window[1]}", f"--screenshot={shot}", source.as_uri(),
    ]  # fmt: skip


def chromium_env(folder: Path) -> dict[str, str]:
    """Chromium's environment: a PATH, a home of its own (the temporary folder) and a locale; nothing
    else of ours (no vendor's API key) reaches the browser."""
    return {
        "PATH": os.environ.get("PATH", os.defpath),
        "HOME": str(folder),
        "LANG": os.environ.get("LANG", "C.UTF-8"),
    }


def render_png(page: str, window: tuple[int, int] = SLIDE_SIZE) -> bytes:
    """An HTML page as a PNG screenshot of `window` pixels, by headless Chromium, offline and without
    JavaScript: the page is a local file and Chromium's own network services are off. One drawing at a
    time (_DRAWING); Chromium and every process it started are killed after RENDER_TIMEOUT. Raises
    RenderError."""
    binary = chromium()
    if binary is None:
        raise RenderError(
            "no Chromium to draw the PNG: install Debian's chromium (apt-get install chromium), or use "
            "the HTML deck, which needs none"
        )
    if not _DRAWING.acquire(timeout=RENDER_TIMEOUT):
        raise RenderError(f"Chromium has been busy drawing other slides for {RENDER_TIMEOUT:g} s: try again")
    try:
        with tempfile.TemporaryDirectory(prefix="sycoscope-slide-") as name:
            folder = Path(name)
            source, shot = folder / "slide.html", folder / "slide.png"
            source.write_text(page, encoding="utf-8")
            (folder / "profile" / "Default").mkdir(parents=True)
            (folder / "profile" / "Default" / "Preferences").write_text(json.dumps(PREFERENCES))
            returncode, said = _run(chromium_command(binary, folder, source, shot, window), folder, binary)
            if not shot.exists() or shot.stat().st_size == 0:
                raise RenderError(f"Chromium ({binary}) drew no PNG (exit {returncode}): {said}")
            return shot.read_bytes()
    finally:
        _DRAWING.release()


def _run(command: list[str], folder: Path, binary: str) -> tuple[int, str]:
    """Run Chromium in a session (a process group) of its own, so that on a timeout its renderer and
    helper processes are killed with it. Its output goes to a file, not a pipe: a helper left behind
    cannot keep us waiting for the pipe to close. Returns the exit code and the output's last line."""
    log = folder / "chromium.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=out,
            env=chromium_env(folder),
            cwd=folder,
            start_new_session=True,
        )
        try:
            process.wait(timeout=RENDER_TIMEOUT)
        except subprocess.TimeoutExpired:
            with suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()
            raise RenderError(
                f"Chromium ({binary}) took more than {RENDER_TIMEOUT:g} s to draw the slide"
            ) from None
    said = log.read_text(errors="replace").strip().splitlines() or ["no message"]
    return process.returncode, said[-1]
