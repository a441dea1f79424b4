"""The page's layout: patient, session, what-if, plan and export, one section each."""
from __future__ import annotations

import base64

from dash import dash_table, dcc, html

from app.clinic.figures import strength_figure


def _section(title, *children):
    return html.Section([html.H2(title), *children], style={"borderTop": "1px solid #ccc", "padding": "6px 0"})


def page(context, session_id: str):
    """`context`: app.clinic.server.Context (the loaded twin or the reason it did not load)."""
    header = [html.H1("lumbar-twin clinic page"), dcc.Store(id="sid", data=session_id),
              html.Div(id="error", role="alert", style={"color": "#b00020", "fontWeight": "bold"},
                       children=context.error or "")]
    if context.twin is None:
        return html.Div(header)
    twin = context.twin
    picture = []
    if (twin.directory / "twin.png").is_file():
        data = base64.b64encode((twin.directory / "twin.png").read_bytes()).decode()
        picture = [html.Img(src=f"data:image/png;base64,{data}", style={"maxWidth": "720px"}, alt="twin picture")]
    rows = [{k: r.get(k, "") for k in ("muscle", "side", "level", "use", "note")} for r in context.morphometry_use]
    patient = _section(
        f"Patient {context.subject}", *picture,
        dcc.Graph(id="strength", figure=strength_figure(twin.spec, context.template)),
        html.H3("morphometry rows: how each entered the twin"),
        dash_table.DataTable(id="morphometry", data=rows, page_size=10,
                             columns=[{"name": c, "id": c} for c in ("muscle", "side", "level", "use", "note")],
                             style_data_conditional=[{"if": {"filter_query": '{use} != "measured"'},
                                                      "backgroundColor": "#fff3cd"}]))
    session = _section(
        "Session",
        html.Div(["exercise ", dcc.Dropdown(id="exercise", options=context.exercises, value=context.exercises[0],
                                            clearable=False, style={"width": "300px"})]),
        html.Div(["targets ", dcc.Input(id="targets", value="multifidus=0.30", debounce=True, size="40")]),
        html.Div(["limits ", dcc.Input(id="limits", value="", debounce=True, size="40",
                                       placeholder="e.g. compression_N=2000,psoas=0.5")]),
        html.Div(id="session-limits"),
        dcc.Upload(id="upload", children=html.Button("load a profile.json (with its profile.csv)"), multiple=True),
        html.Div(id="profile-status"))
    whatif = _section(
        "What if",
        html.Div(["assistance scale ", dcc.Slider(id="scale", min=0.0, max=2.0, step=0.05, value=1.0,
                                                  marks={0: "0", 0.5: "0.5", 1: "1", 1.5: "1.5", 2: "2"})],
                 style={"width": "600px"}),
        html.Div(id="prediction", **{"data-answer": "0"}),
        html.Div(id="closest"),
        dcc.Graph(id="activation"), dcc.Graph(id="loads"))
    plan = _section(
        "Plan",
        html.Div(["trials ", dcc.Input(id="trials", type="number", min=4, max=2000, value=200)]),
        html.Button("plan", id="plan-start"), html.Button("cancel", id="plan-cancel"),
        html.Progress(id="progress", value="0", max="1"), html.Span(id="plan-state"),
        html.Pre(id="verification", style={"whiteSpace": "pre-wrap"}),
        html.Div(id="compare"),
        dcc.Interval(id="tick", interval=500, disabled=True))
    export = _section(
        "Export",
        html.Button("download profile.json", id="export-json"), html.Button("download profile.csv", id="export-csv"),
        html.Div(id="export-status"), dcc.Download(id="download"))
    return html.Div(header + [patient, session, whatif, plan, export], style={"fontFamily": "sans-serif", "margin": "12px"})
