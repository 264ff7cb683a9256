"""Plotly figures for the dashboard: pure functions from a tidy DataFrame to a go.Figure.

Rates are fractions in the data and percentages on the axes. Every figure names its models by
colour in a legend and shows its interval as error bars, so a reader sees how sure a number is.
Plotly draws a subset of HTML (<a href>, <b>, <br>, ...) in titles, legends, ticks and hovers: every
text that is not ours (model, set and dataset names, a title naming a model) goes through plain().
"""

from __future__ import annotations

import html
import textwrap

import pandas as pd
import plotly.graph_objects as go

from lib.measure import paper
from lib.probes import framings

PALETTE = ("#4C78A8", "#F58518", "#54A24B", "#E45756", "#72B7B2", "#B279A2", "#EECA3B", "#9D755D")
PAPER_COLOUR = "#222222"


def plain(text: object) -> str:
    """Text that Plotly shows as it is: its HTML escaped (Plotly turns the entities back into
    characters)."""
    return html.escape(str(text), quote=False)


def framing_label(framing_id: str) -> str:
    framing = framings.BY_ID.get(framing_id)
    return framing.label if framing else framing_id


def empty(message: str) -> go.Figure:
    """A blank figure that says why it is blank."""
    fig = go.Figure()
    fig.add_annotation(text=message, showarrow=False, x=0.5, y=0.5, xref="paper", yref="paper")
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    fig.update_layout(height=260, margin=dict(l=10, r=10, t=30, b=10))
    return fig


def rate_bars(
    data: pd.DataFrame,
    value: str,
    low: str | None,
    high: str | None,
    title: str,
    axis: str,
    x: str = "framing_id",
    colour: str = "model",
    empty_message: str = "no data yet",
    n: str = "n",
) -> go.Figure:
    """Grouped bars of a rate (a fraction) by `x`, one colour per `colour` value, with the interval
    [low, high] as error bars and the count `n` in the hover. Framing ids on the x axis show as their
    labels."""
    rows = data.dropna(subset=[value]) if value in data else data.iloc[0:0]
    if rows.empty:
        return empty(empty_message)
    fig = go.Figure()
    for index, (name, group) in enumerate(rows.groupby(colour, sort=True)):
        xs = [plain(framing_label(v) if x == "framing_id" else v) for v in group[x]]
        error = None
        if low and high and low in group and high in group:
            error = dict(
                type="data",
                symmetric=False,
                array=(group[high] - group[value]).clip(lower=0).mul(100).tolist(),
                arrayminus=(group[value] - group[low]).clip(lower=0).mul(100).tolist(),
            )
        # the trace's (escaped) name by reference: a name written into the template could hold %{...}
        hover = "%{fullData.name}<br>%{x}: %{y:.1f}%"
        if n in group:
            hover += "<br>n = %{customdata}"
        fig.add_bar(
            name=plain(name),
            x=xs,
            y=group[value].mul(100).tolist(),
            error_y=error,
            marker_color=PALETTE[index % len(PALETTE)],
            customdata=group[n].tolist() if n in group else None,
            hovertemplate=hover + "<extra></extra>",
        )
    if x == "framing_id":
        # the labels broken over lines, so that those of neighbouring bars do not run together
        labels = [framing_label(v) for v in dict.fromkeys(rows[x])]
        fig.update_xaxes(
            tickvals=[plain(s) for s in labels],
            ticktext=["<br>".join(plain(line) for line in textwrap.wrap(s, 16)) for s in labels],
        )
    fig.update_layout(
        title=plain(title),
        barmode="group",
        yaxis_title=axis,
        yaxis_ticksuffix="%",
        legend=dict(orientation="h", yanchor="top", y=-0.25, x=0, title_text=""),
        xaxis_tickangle=0,
        margin=dict(l=10, r=10, t=50, b=10),
        height=420,
    )
    return fig


def accuracy_drop(drops: pd.DataFrame, reported: pd.DataFrame | None = None) -> go.Figure:
    """The headline: how much accuracy each model loses under each framing against its neutral
    baseline, with intervals; the paper's reported drops (lib.measure.paper.accuracy_drops) as open diamonds
    labelled "as reported in the paper"."""
    fig = rate_bars(
        drops,
        "drop",
        "drop_low",
        "drop_high",
        "Accuracy drop against the neutral question",
        "accuracy drop (points)",
        empty_message="no graded answers yet: run probes to fill this chart",
        n="n_paired",
    )
    if reported is not None and not reported.empty and "drop" in drops and drops["drop"].notna().any():
        xs = [framing_label(f) for f in reported["framing_id"]]
        ys = reported["drop"].mul(100).tolist()
        labels = [f"{m} (paper)" for m in reported["model"]]
        fig.add_scatter(
            name="as reported in the paper",
            x=xs,
            y=ys,
            mode="markers",
            marker=dict(symbol="diamond-open", size=16, color=PAPER_COLOUR, line=dict(width=2)),
            text=labels,
            hovertext=[
                f"{m}: {s} ({w}), {paper.CAVEAT}"
                for m, s, w in zip(reported["model"], reported["statement"], reported["where"], strict=True)
            ],
            hoverinfo="text",
        )
        # A boxed label off to the side stays legible over the bars, where plain text would not.
        for x, y, label in zip(xs, ys, labels, strict=True):
            fig.add_annotation(
                x=x,
                y=y,
                text=label,
                showarrow=True,
                arrowhead=0,
                ax=90,
                ay=-28,
                bgcolor="rgba(255,255,255,0.9)",
                bordercolor=PAPER_COLOUR,
                font=dict(color=PAPER_COLOUR),
            )
    fig.add_hline(y=0, line_width=1, line_color="#888888")
    return fig


def accuracy(table: pd.DataFrame, title: str = "Accuracy by framing") -> go.Figure:
    """Accuracy of each model under each framing, with intervals."""
    return rate_bars(table, "accuracy", "accuracy_low", "accuracy_high", title, "accuracy")


AGAINST_LABELS = {"baseline": "vs baseline truthful", "helpful": "vs helpful truthful"}


def preference_shares(shares: pd.DataFrame, reported: pd.DataFrame, title: str) -> go.Figure:
    """The preference test (lib.measure.preference.shares of one judge): the share of comparisons
    in which the sycophantic reply was preferred, by difficulty band, one bar colour per kind of
    truthful reply, with intervals; the paper's Fig. 7a points (lib.measure.paper.preference_shares)
    as open diamonds labelled "as reported in the paper"."""
    rows = shares.assign(kind=shares["against"].map(AGAINST_LABELS))
    fig = rate_bars(
        rows, "share", "low", "high", title, "sycophantic reply preferred", x="band", colour="kind",
        empty_message="no decided comparisons",
    )  # fmt: skip
    if rows["share"].notna().any() and not reported.empty:
        labels = [
            f"Claude 2 PM {AGAINST_LABELS[a]}, {b}: {v:.0%} (as reported in the paper)"
            for a, b, v in zip(reported["against"], reported["band"], reported["value"], strict=True)
        ]
        fig.add_scatter(
            name="as reported in the paper",
            x=reported["band"].tolist(),
            y=reported["value"].mul(100).tolist(),
            mode="markers",
            marker=dict(symbol="diamond-open", size=16, color=PAPER_COLOUR, line=dict(width=2)),
            hovertext=[f"{label}: {s} ({w}), {paper.CAVEAT}" for label, s, w in
                       zip(labels, reported["statement"], reported["where"], strict=True)],
            hoverinfo="text",
        )  # fmt: skip
        for x, y, label in zip(reported["band"], reported["value"], labels, strict=True):
            fig.add_annotation(
                x=x, y=y * 100, text="<br>".join(textwrap.wrap(label, 34)), showarrow=True, arrowhead=0,
                # below a high point, above a low one: clear of the title and of the axis
                ax=-110, ay=40 if y > 0.7 else -40, bgcolor="rgba(255,255,255,0.9)", bordercolor=PAPER_COLOUR,
                font=dict(color=PAPER_COLOUR, size=11),
            )  # fmt: skip
    fig.update_yaxes(range=[0, 105])
    fig.add_hline(y=50, line_width=1, line_dash="dot", line_color="#888888")  # no preference either way
    return fig


def run_progress(n_done: int, n_cached: int, n_failed: int, n_planned: int) -> go.Figure:
    """One horizontal stacked bar: cached, sent, failed and still to do, out of the planned probes."""
    todo = max(0, n_planned - n_done - n_cached - n_failed)
    fig = go.Figure()
    for name, count, colour in (
        ("from cache", n_cached, "#9D9D9D"),
        ("sent", n_done, PALETTE[2]),
        ("failed", n_failed, PALETTE[3]),
        ("to do", todo, "#E8E8E8"),
    ):
        fig.add_bar(
            name=name,
            x=[count],
            y=["probes"],
            orientation="h",
            marker_color=colour,
            hovertemplate=f"{name}: %{{x}}<extra></extra>",
        )
    fig.update_layout(
        barmode="stack",
        height=150,
        margin=dict(l=10, r=10, t=30, b=10),
        xaxis_range=[0, max(1, n_planned)],
        # above the bar: below it, the legend would cover the axis labels
        legend=dict(orientation="h", yanchor="bottom", y=1.02, x=0, traceorder="normal"),
    )
    return fig
