"""Deck: the most striking flips, pinned into a deck for a talk or a class and presented one pair a
screen (presentation mode), or taken away as one HTML file or a PNG a slide (lib/view/deck_export.py).

The deck lives in the link (deck=id,id,...) and, when the operator pins, in the store (lib/view/deck.py);
a link without a deck opens the store's. Model text is shown as text only."""

import streamlit as st

from lib.probes import framings
from lib.store import StoreError
from lib.view import browse, deck, deck_export
from lib.view.charts import framing_label
from pages.parts import frame, reads, show, url

PER_PAGE = 10
# Static CSS for the slide: large type. No model text goes here.
_SLIDE_CSS = """<style>
.st-key-slide [data-testid="stText"] { font-size: 1.45rem; line-height: 1.45; white-space: pre-wrap; }
[class*="st-key-slide_reply_"] [data-testid="stText"] { font-size: 1.8rem; font-weight: 600; }
</style>"""

st.title("Deck")
store = reads.store()
graders = reads.graders()
operate = frame.may_operate()

# The deck: the link's, else (a new session on a link without one) the store's; then kept in the session
# and mirrored in the link, so that the link always reopens it.
if "deck_ids" not in st.session_state:
    linked = url.param("deck")
    try:
        st.session_state["deck_ids"] = deck.parse(linked) if linked is not None else deck.pinned(store)
    except StoreError as e:
        show.problem(str(e))
        st.session_state["deck_ids"] = []
ids: list[str] = st.session_state["deck_ids"]
url.set_param("deck", deck.link(ids))


def toggle(framed_id: str) -> None:
    """Pin or unpin a pair: in the link always; in the store, that one pair, when this session may
    write it (the store's other pins, another tab's, stay)."""
    ids = st.session_state["deck_ids"]
    try:
        changed = deck.toggle(ids, framed_id)
    except ValueError as e:
        st.session_state["deck_problem"] = str(e)
        return
    if frame.may_operate():
        try:
            (deck.unpin if framed_id in ids else deck.pin)(store, framed_id)
        except (StoreError, ValueError) as e:  # a busy, read-only or full store: the link still keeps it
            st.session_state["deck_problem"] = f"This change is kept in this page's link only: {e}"
    st.session_state["deck_ids"] = changed
    url.set_param("deck", deck.link(changed))


def go_to(slide: int | None) -> None:
    """Present the deck from this slide (None: back to the list), in the app's presentation mode."""
    st.session_state["present_toggle"] = slide is not None  # the frame's switch shows it too
    url.set_param("present", None if slide is None else "1")
    url.set_param("slide", None if slide is None else str(slide))


if problem := st.session_state.pop("deck_problem", None):
    show.problem(problem)


def framing(framing_id: str) -> str:
    """A framing's label for markdown: ours for a framing we know, else the store's id as text."""
    return framing_label(framing_id) if framing_id in framings.BY_ID else show.md(framing_id)


def verdict_line(framing_id: str, verdict: str, grader: str) -> str:
    """A side's framing, verdict (ours: correct, incorrect, unclear, no verdict) and grader@version;
    the grader's name may name a judge model, so it is shown as text."""
    return f"**{framing(framing_id)}**: {verdict}, graded by {show.md(grader) if grader else 'no grader'}"


def present() -> None:
    """One pair a screen: large type, the model, framing and graders always shown; arrow keys step."""
    pairs = reads.cached(deck.pairs, tuple(ids), graders)
    if not pairs:
        st.info("The deck is empty: leave presentation mode and pin flips from the list.")
        return
    total = len(pairs)
    number = url.int_param("slide", 1, 1, total)
    url.set_param("slide", str(number))
    pair = pairs[number - 1]
    nav = st.container(horizontal=True, vertical_alignment="center")
    nav.button(
        "Previous",
        key="slide_prev",
        icon=":material/arrow_back:",
        shortcut="ArrowLeft",
        disabled=number == 1,
        on_click=go_to,
        args=(number - 1,),
    )
    nav.markdown(f"Slide **{number}** of **{total}**")
    nav.button(
        "Next",
        key="slide_next",
        icon=":material/arrow_forward:",
        shortcut="ArrowRight",
        disabled=number == total,
        on_click=go_to,
        args=(number + 1,),
    )
    render = frame.operator("Drawing a PNG") and deck_export.chromium() is not None
    # Drawn on a click, then offered for download: a failure shows here (Streamlit would swallow one
    # raised while it serves a download).
    drawing = (pair.framed_id, number, total)
    failed = None
    draw = nav.button(
        "Draw PNG",
        key="slide_draw",
        icon=":material/image:",
        disabled=not render,
        help="This pair drawn by headless Chromium, 1600 x 900",
    )
    if draw and frame.may_operate():
        try:
            with st.spinner("Drawing the slide…"):
                st.session_state["slide_drawn"] = (drawing, deck_export.slide_png(pair, number, total))
        except deck_export.RenderError as e:
            failed = str(e)
    drawn = st.session_state.get("slide_drawn")
    if drawn is not None and drawn[0] == drawing:
        nav.download_button(
            "Save PNG",
            data=drawn[1],
            file_name=f"sycoscope-slide-{number}.png",
            mime="image/png",
            key="slide_png",
            icon=":material/download:",
            on_click="ignore",
        )
    nav.button("Back to the list", key="slide_exit", icon=":material/list:", on_click=go_to, args=(None,))
    if failed is not None:
        show.problem(failed)
    if operate and deck_export.chromium() is None:
        st.caption("No Chromium on this server to draw a PNG: the HTML deck needs none.")

    st.html(_SLIDE_CSS)
    with st.container(key="slide"):
        st.markdown(
            f"### {show.md(pair.model)} · {framing(pair.framing_id)}\n"
            f"{show.md(pair.set_id)} · {show.md(pair.item_id)} · sample {pair.sample}"
        )
        columns = st.columns(2, gap="large")
        framed = (pair.neutral_framing, pair.framing_id)
        for column, kind, framing_id, side in zip(
            columns, ("neutral", "framed"), framed, deck_export.sides(pair), strict=True
        ):
            with column.container(border=True, key=f"slide_{kind}"):
                st.markdown(verdict_line(framing_id, side.verdict, side.grader))
                st.text(side.prompt)
                with st.container(key=f"slide_reply_{kind}"):
                    st.text(side.prefill + side.reply)


def browse_flips() -> None:
    """The flips, most striking first, under the filters in the link, each with its pin."""
    top = st.columns(3)
    models = reads.cached(browse.models)
    model = url.url_select("Model", models, "model", placeholder="All models", where=top[0])
    task = url.url_select("Task", list(deck.TASKS), "task", placeholder="All tasks", where=top[1])
    framing_id = url.url_select(
        "Framing",
        deck.framings_of(task),
        "framing",
        format_func=framing_label,
        placeholder="All framings",
        where=top[2],
    )
    found = reads.cached(deck.flips, graders, model, task, framing_id)
    st.caption(
        f"{len(found):,} flips: right when neutral, wrong when framed. Most striking first: a confident "
        "neutral reply and a framed reply that goes along with the user, then shorter replies."
    )
    pages = max(1, -(-len(found) // PER_PAGE))
    page = st.pagination(pages, key="deck_page", bind="query-params") if pages > 1 else 1
    for pair in found[(page - 1) * PER_PAGE : page * PER_PAGE]:
        flip_card(pair)


def flip_card(pair: deck.Pair) -> None:
    pinned = pair.framed_id in ids
    s = deck.strike(pair)
    with st.container(border=True, key=f"flip_{pair.framed_id}"):
        head = st.columns([8, 2], vertical_alignment="center")
        why = [
            w for w, on in (("confident when neutral", s.confident), ("agrees when framed", s.agreeing)) if on
        ]
        head[0].markdown(
            f"{show.md(pair.model)} · **{framing(pair.framing_id)}** · {show.md(pair.item_id)}"
            f" · {', '.join(why) or 'a plain flip'}"
        )
        head[1].button(
            "Unpin" if pinned else "Pin",
            key=f"pin_{pair.framed_id}",
            icon=":material/keep_off:" if pinned else ":material/keep:",
            type="secondary" if pinned else "primary",
            on_click=toggle,
            args=(pair.framed_id,),
        )
        framed = (pair.neutral_framing, pair.framing_id)
        for column, framing_id, side in zip(st.columns(2), framed, deck_export.sides(pair), strict=True):
            column.caption(verdict_line(framing_id, side.verdict, side.grader))
            column.text(side.prefill + side.reply)


def deck_panel() -> None:
    """The deck as it stands: its pairs in order, each with its unpin; present it; download it."""
    pairs = reads.cached(deck.pairs, tuple(ids), graders)
    st.subheader(f"The deck: {len(pairs)} {'pair' if len(pairs) == 1 else 'pairs'}")
    st.caption(
        "Pins are kept in the store and in this page's link."
        if operate
        else "Viewer mode: your pins live in this page's link (deck=…) only; the operator's are kept in "
        "the store."
    )
    if len(pairs) < len(ids):
        missing = len(ids) - len(pairs)
        st.caption(f"{missing} pinned {'pair' if missing == 1 else 'pairs'} of the link not in this store.")
    for number, pair in enumerate(pairs, 1):
        row = st.columns([8, 2], vertical_alignment="center")
        row[0].markdown(
            f"{number}. {show.md(pair.model)} · {framing(pair.framing_id)} · {show.md(pair.item_id)}"
        )
        row[1].button("Unpin", key=f"unpin_{pair.framed_id}", on_click=toggle, args=(pair.framed_id,))
    actions = st.container(horizontal=True)
    actions.button(
        "Present", key="deck_present", icon=":material/slideshow:", type="primary", disabled=not pairs,
        on_click=go_to, args=(1,),
    )  # fmt: skip
    actions.download_button(
        "Deck as HTML",
        data=lambda: deck_export.deck_html(pairs),
        file_name="sycoscope-deck.html",
        mime="text/html",
        key="deck_html",
        icon=":material/download:",
        on_click="ignore",
        disabled=not pairs,
        help="One self-contained file that opens offline; arrow keys step through it",
    )


if url.presenting():
    present()
else:
    deck_panel()
    st.divider()
    browse_flips()
