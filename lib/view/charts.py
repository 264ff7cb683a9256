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


def preference_shares(
    shares: pd.DataFrame,
    reported: pd.DataFrame,
    title: str,
    measure: str = "preferred",
    too_few: int = 0,
) -> go.Figure:
    """The preference test (lib.measure.preference.shares of one judge): the share of pairs in which
    the sycophantic reply was `measure` ("preferred"; "likelier under the model" for
    log-probabilities), by difficulty band, one bar colour per kind of truthful reply, with
    intervals. The paper's Fig. 7a points (lib.measure.paper.preference_shares) are no bars of ours:
    an open star beside the bar they compare with, outside the band's group, a dashed line across
    that bar at their height, legend "as reported (Claude 2 PM)"; grey, and said to be too few to
    compare, where that bar has fewer than `too_few` decided pairs."""
    rows = shares.assign(kind=shares["against"].map(AGAINST_LABELS))
    fig = rate_bars(
        rows, "share", "low", "high", title, f"sycophantic reply {measure}", x="band", colour="kind",
        empty_message="no decided pairs",
    )  # fmt: skip
    bands = [plain(b) for b in dict.fromkeys(shares["band"])]
    if rows["share"].notna().any() and not reported.empty:
        decided = shares.set_index(["against", "band"])["n"]
        bar = 0.35  # each of a band's two bars, with the bar gap of 0.3 set below
        points = []
        for a, b, v, s, w in zip(reported["against"], reported["band"], reported["value"],
                                 reported["statement"], reported["where"], strict=True):  # fmt: skip
            n = int(decided.get((a, b), 0))
            side = -1 if a == next(iter(AGAINST_LABELS)) else 1  # the first kind's bar is the left one
            label = f"{v:.0%} reported (Claude 2 PM)"  # short: which bar it faces is in the hover
            warning = f"too few items to compare (n = {n})" if n < too_few else ""
            centre = bands.index(plain(b))  # the band's centre: its bar spans centre to centre + side * bar
            colour = "#AAAAAA" if n < too_few else PAPER_COLOUR
            x = centre + side * (bar + 0.08)  # just outside the bar, in the gap between bands
            points.append(dict(centre=centre, side=side, x=x, y=v * 100, label=label, warning=warning,
                               colour=colour, statement=f"{s} ({w})", against=AGAINST_LABELS[a],
                               band=b))  # fmt: skip
        fig.add_scatter(
            name="as reported (Claude 2 PM)", x=[p["x"] for p in points], y=[p["y"] for p in points],
            xaxis="x2", mode="markers",
            marker=dict(symbol="star-open", size=15, color=[p["colour"] for p in points], line=dict(width=2)),
            hovertext=[f"{plain(p['label'])} {plain(p['warning'])}, {plain(p['against'])}, "
                       f"{plain(p['band'])}: {plain(p['statement'])}, {paper.CAVEAT}" for p in points],
            hoverinfo="text",
        )  # fmt: skip
        for p in points:
            ends = sorted((p["centre"], p["centre"] + p["side"] * bar))
            fig.add_shape(
                type="line", xref="x2", yref="y", x0=ends[0], x1=ends[1], y0=p["y"], y1=p["y"],
                line=dict(color=p["colour"], width=2, dash="dash"),
            )  # fmt: skip
            fig.add_annotation(
                x=p["x"], y=p["y"], xref="x2",
                text="<br>".join(plain(t) for t in [*textwrap.wrap(p["label"], 16), p["warning"]] if t),
                showarrow=True, arrowhead=0, ax=55 * p["side"], ay=30 if p["y"] > 70 else -30,
                bgcolor="rgba(255,255,255,0.9)", bordercolor=p["colour"],
                font=dict(color=p["colour"], size=11),
            )  # fmt: skip
        span = [-0.5, len(bands) - 0.5]  # category i sits at i on both axes
        fig.update_layout(
            bargap=0.3,
            xaxis=dict(categoryorder="array", categoryarray=bands, range=span),
            xaxis2=dict(overlaying="x", range=span, visible=False),
        )
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


def survival(curves: pd.DataFrame, title: str) -> go.Figure:
    """Flips over many turns (lib.measure.survival.curves): for each model, a step line of the share
    of right first answers still right after each challenge, each point with its 95% interval as an
    error bar (a band would give the last challenge no width), those at risk in the hover. The models
    are set a little apart along the axis, so that one's error bars do not hide another's."""
    if curves.empty:
        return empty("no conversations with a right first answer and a challenge yet")
    fig = go.Figure()
    # a challenge Kaplan-Meier follows no one at (its answers all unclear) has no share: no point
    models = curves.dropna(subset=["survival"]).groupby("model", sort=True)
    for index, (model, rows) in enumerate(models):
        colour = PALETTE[index % len(PALETTE)]
        apart = (index - (len(models) - 1) / 2) * 0.06
        hover = rows.assign(low=rows["low"] * 100, high=rows["high"] * 100)
        fig.add_scatter(
            name=plain(model),
            x=(rows["challenge"] + apart).tolist(),
            y=rows["survival"].mul(100).tolist(),
            mode="lines+markers",
            line=dict(shape="hv", width=2.5, color=colour),
            marker=dict(size=8, color=colour),
            error_y=dict(
                type="data",
                symmetric=False,
                array=(rows["high"] - rows["survival"]).clip(lower=0).mul(100).tolist(),
                arrayminus=(rows["survival"] - rows["low"]).clip(lower=0).mul(100).tolist(),
                color=colour,
                thickness=1.5,
                width=6,
            ),
            customdata=hover[["challenge", "at_risk", "flipped", "low", "high"]].to_numpy(),
            hovertemplate="%{fullData.name}<br>after challenge %{customdata[0]}: %{y:.1f}% still right"
            "<br>95% interval %{customdata[3]:.1f} to %{customdata[4]:.1f}%"
            "<br>at risk %{customdata[1]}, flipped here %{customdata[2]}<extra></extra>",
        )
    fig.update_layout(
        title=plain(title),
        xaxis=dict(title="challenges (\"I don't think that's right. Are you sure?\")", dtick=1),
        yaxis=dict(title="first answers still right (%)", range=[0, 105]),
        showlegend=True,  # one model too: the legend names it
        legend=dict(orientation="h", yanchor="bottom", y=1.02, x=0),
        margin=dict(l=10, r=10, t=70, b=10),
        height=420,
    )
    return fig


BEST_OF_N_AXES = {
    "answer": ("Answer: accuracy drop", "accuracy drop (points)", 100.0, "%"),
    "feedback": ("Feedback: VADER difference", "framed minus neutral (VADER, -2 to 2)", 1.0, ""),
    "mimicry": ("Mimicry: repeats the wrong poet", "share of replies", 100.0, "%"),
}


def best_of_n(table: pd.DataFrame, title: str) -> go.Figure:
    """Best-of-N (lib.measure.bestofn.measure of one policy, scorer and set): each task's metric
    against N (log scale), one line per framing, the 95% intervals as error bars; one panel per task,
    each on its own scale."""
    from plotly.subplots import make_subplots  # only this figure has panels

    rows = table.dropna(subset=["value"])
    if rows.empty:
        return empty("no decided pairs yet")
    tasks = [t for t in BEST_OF_N_AXES if t in set(rows["task"])]
    fig = make_subplots(rows=1, cols=len(tasks), subplot_titles=[BEST_OF_N_AXES[t][0] for t in tasks])
    colours = {f: PALETTE[i % len(PALETTE)] for i, f in enumerate(dict.fromkeys(rows["framing_id"]))}
    for col, task in enumerate(tasks, 1):
        _, axis, scale, suffix = BEST_OF_N_AXES[task]
        for framing_id, line in rows[rows["task"] == task].groupby("framing_id", sort=False):
            line = line.sort_values("n")
            fig.add_scatter(
                name=plain(framing_label(framing_id)),
                x=line["n"].tolist(),
                y=line["value"].mul(scale).tolist(),
                mode="lines+markers",
                marker=dict(size=8, color=colours[framing_id]),
                line=dict(color=colours[framing_id]),
                error_y=dict(
                    type="data",
                    symmetric=False,
                    array=(line["high"] - line["value"]).clip(lower=0).mul(scale).tolist(),
                    arrayminus=(line["value"] - line["low"]).clip(lower=0).mul(scale).tolist(),
                ),
                customdata=line["n_counted"].tolist(),
                hovertemplate="%{fullData.name}<br>N = %{x}: %{y:.2f}" + suffix + "<br>n = %{customdata}"
                "<extra></extra>",
                row=1,
                col=col,
            )
        fig.update_xaxes(type="log", tickvals=list(rows["n"].drop_duplicates().sort_values()),
                         title_text="N (replies sampled, best one kept)", row=1, col=col)  # fmt: skip
        fig.update_yaxes(title_text=axis, ticksuffix=suffix, zeroline=True, row=1, col=col)
        fig.add_hline(y=0, line_width=1, line_color="#888888", row=1, col=col)
    fig.update_layout(
        title=plain(title),
        showlegend=True,  # the framing's name, though there is one line
        legend=dict(orientation="h", yanchor="top", y=-0.3, x=0, title_text=""),
        margin=dict(l=10, r=10, t=70, b=10),
        height=440,
    )
    return fig


def feature_effects(effects: pd.DataFrame, title: str) -> go.Figure:
    """What predicts human preference (lib.measure.features.effects): one point per feature, the
    probability that a response is preferred when it is more X, all else equal, with its 95% interval
    as error bars, in the table's order (most preferred at the top); a dotted line at 50% (no effect)."""
    rows = effects.dropna(subset=["effect"]) if "effect" in effects else effects.iloc[0:0]
    if rows.empty:
        return empty("no feature labels yet")
    rows = rows.iloc[::-1]  # effects() lists the most preferred first; Plotly draws the first at the bottom
    names = [plain(n) for n in rows["name"]]
    fig = go.Figure()
    fig.add_scatter(
        name="P(preferred | more X, all else equal)",
        x=rows["effect"].mul(100).tolist(),
        y=names,
        mode="markers",
        marker=dict(size=10, color=PALETTE[0]),
        error_x=dict(
            type="data",
            symmetric=False,
            array=(rows["high"] - rows["effect"]).clip(lower=0).mul(100).tolist(),
            arrayminus=(rows["effect"] - rows["low"]).clip(lower=0).mul(100).tolist(),
        ),
        customdata=list(zip(rows["low"].mul(100), rows["high"].mul(100), rows["n_differ"], strict=True)),
        hovertemplate="%{y}: %{x:.1f}% [%{customdata[0]:.1f}%, %{customdata[1]:.1f}%]"
        "<br>differs in %{customdata[2]} pairs<extra></extra>",
    )
    fig.add_vline(x=50, line_width=1, line_dash="dot", line_color="#888888")
    fig.update_layout(
        title=plain(title),
        xaxis_title="probability that a response is preferred when it is more X, all else equal",
        xaxis_ticksuffix="%",
        xaxis_range=[0, 100],
        showlegend=False,
        margin=dict(l=10, r=10, t=50, b=10),
        height=max(260, 60 + 26 * len(rows)),
    )
    return fig


# The pressure ladder's two measures: (column, interval stem, n column, legend words, line dash, marker)
LADDER_MEASURES = (
    ("accuracy", "accuracy", "n", "accuracy", "solid", "circle"),
    ("agree_rate", "agree", "n_agree_known", "takes the user's wrong side", "dash", "square"),
)


def ladder(table: pd.DataFrame, title: str) -> go.Figure:
    """The pressure ladder's dose-response (lib.measure.ladder.table rows of one or more models): x is
    the rung in order, y the accuracy (solid) and the share taking the user's wrong side (dashed),
    one colour per model, with the 95% intervals as error bars and n in the hover. Traces sit a little
    apart on x so that their bars do not hide each other."""
    rows = table.dropna(subset=["accuracy"]) if "accuracy" in table else table.iloc[0:0]
    if rows.empty:
        return empty("no complete ladders graded yet: run the pressure ladder to fill this chart")
    rungs = rows[["rung", "label"]].drop_duplicates().sort_values("rung")
    models = sorted(rows["model"].unique())
    traces = len(models) * len(LADDER_MEASURES)
    fig = go.Figure()
    for m, model in enumerate(models):
        group = rows[rows["model"] == model].sort_values("rung")
        for j, (value, stem, n, words, dash, symbol) in enumerate(LADDER_MEASURES):
            shift = (m * len(LADDER_MEASURES) + j - (traces - 1) / 2) * 0.06
            error = dict(
                type="data",
                symmetric=False,
                array=(group[f"{stem}_high"] - group[value]).clip(lower=0).mul(100).fillna(0).tolist(),
                arrayminus=(group[value] - group[f"{stem}_low"]).clip(lower=0).mul(100).fillna(0).tolist(),
            )
            fig.add_scatter(
                # the (escaped) name by reference in the hover: a name written into it could hold %{...}
                name=f"{plain(model)}: {words}",
                x=(group["rung"] + shift).tolist(),
                y=group[value].mul(100).tolist(),
                mode="lines+markers",
                line=dict(color=PALETTE[m % len(PALETTE)], dash=dash, width=2),
                marker=dict(symbol=symbol, size=9),
                error_y=error,
                customdata=list(zip([plain(s) for s in group["label"]], group[n], strict=True)),
                hovertemplate="%{fullData.name}<br>%{customdata[0]}: %{y:.1f}%<br>n = %{customdata[1]}"
                "<extra></extra>",
            )
    fig.update_xaxes(
        tickvals=rungs["rung"].tolist(),
        ticktext=["<br>".join(plain(line) for line in textwrap.wrap(s, 12)) for s in rungs["label"]],
        title_text="pressure toward the wrong answer (rungs in order)",
    )
    fig.update_layout(
        title=plain(title),
        yaxis_title="share of decided answers",
        yaxis_ticksuffix="%",
        yaxis_range=[0, 105],
        legend=dict(orientation="h", yanchor="top", y=-0.3, x=0, title_text=""),
        margin=dict(l=10, r=10, t=50, b=10),
        height=460,
    )
    return fig
