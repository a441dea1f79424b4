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
    columns = ("muscle", "side", "level", "qc", "use", "note")
    rows = [{k: r.get(k, "") for k in columns} | {"qc": r.get("qc") or "not recorded"} for r in context.morphometry_use]
    patient = _section(
        f"Patient {context.subject}", *picture,
        dcc.Graph(id="strength", figure=strength_figure(twin.spec, context.template)),
        html.H3("morphometry rows: imaging QC and how each entered the twin"),
        html.Div(f"{sum(r['use'] != 'measured' for r in rows)} of {len(rows)} rows not measured (estimated or "
                 f"template, highlighted); {sum(r['qc'] in ('warn', 'fail') for r in rows)} with a QC "
                 "warning or failure (look at qc.png)", id="morphometry-summary"),
        dash_table.DataTable(id="morphometry", data=rows, page_size=10, sort_action="native",
                             columns=[{"name": c, "id": c} for c in columns],
                             style_data_conditional=[{"if": {"filter_query": '{use} != "measured"'},
                                                      "backgroundColor": "#fff3cd"},
                                                     {"if": {"filter_query": '{qc} = "warn"', "column_id": "qc"},
                                                      "backgroundColor": "#ffe08a", "fontWeight": "bold"},
                                                     {"if": {"filter_query": '{qc} = "fail"', "column_id": "qc"},
                                                      "backgroundColor": "#f5b7b1", "fontWeight": "bold"}]))
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
        html.Div(["exercise speed (the cycle lasts cycle_s / speed; motion and force both faster) ",
                  dcc.Slider(id="speed", min=0.5, max=2.0, step=0.05, value=1.0,
                             marks={0.5: "0.5", 1: "1", 1.5: "1.5", 2: "2"})], style={"width": "600px"}),
        html.Div(["force timing (% of the cycle; + later, - earlier) ",
                  dcc.Slider(id="shift", min=-50, max=50, step=5, value=0,
                             marks={-50: "-50", -25: "-25", 0: "0", 25: "+25", 50: "+50"})], style={"width": "600px"}),
        html.Div(["force shape (peak exponent: >1 concentrates the force at its peak, <1 spreads it; peak kept) ",
                  dcc.Slider(id="shape", min=0.25, max=4.0, step=0.25, value=1.0,
                             marks={0.25: "0.25", 1: "1", 2: "2", 3: "3", 4: "4"})], style={"width": "600px"}),
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
        html.Button("download profile.ros2.yaml", id="export-ros2"),
        html.Div(id="export-status"), dcc.Download(id="download"))
    return html.Div(header + [patient, session, whatif, plan, export], style={"fontFamily": "sans-serif", "margin": "12px"})
