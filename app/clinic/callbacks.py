"""What the page does: every callback calls the same library functions as the CLI
(planning.whatif.what_if, planning.plan.command_line_overlay, planning.export.check_profile,
`lumbar-twin plan` itself for planning)."""
from __future__ import annotations

import base64
import json
import logging
import tempfile
from pathlib import Path

from dash import Input, Output, State, ctx, dcc, html, no_update

from app.clinic.figures import activation_figure, closest_limit, loads_figure
from app.clinic.planjob import PlanJob
from app.clinic.session import export_refusal, load_profile
from lumbar_twin.errors import LumbarTwinError
from planning.plan import command_line_overlay
from planning.report import target_table
from planning.whatif import what_if

log = logging.getLogger("lumbar_twin.app")


def register(app, context) -> None:
    sessions = context.sessions

    @app.callback(Output("profile-status", "children"), Input("upload", "contents"), State("upload", "filename"),
                  State("sid", "data"), prevent_initial_call=True)
    def upload(contents, filenames, sid):
        """A profile.json, with its profile.csv beside it (both selected together)."""
        folder = Path(tempfile.mkdtemp(prefix="lumbar-twin-upload-"))
        try:
            for content, name in zip(contents, filenames):
                (folder / Path(name).name).write_bytes(base64.b64decode(content.split(",", 1)[1]))
        except (ValueError, IndexError, AttributeError) as exc:
            log.warning("upload %s refused: %s", filenames, exc)
            return f"upload refused: {exc}"
        documents = sorted(folder.glob("*.json"))
        if len(documents) != 1:
            log.warning("upload %s refused: not one profile.json", filenames)
            return "upload refused: select one profile.json (and its profile.csv)"
        return f"{documents[0].name}: " + load_profile(sessions.get(sid), documents[0], context.twin_sha256)

    @app.callback(Output("prediction", "children"), Output("closest", "children"), Output("activation", "figure"),
                  Output("loads", "figure"), Output("error", "children"), Output("export-status", "children"),
                  Output("session-limits", "children"), Input("scale", "value"), Input("exercise", "value"), Input("targets", "value"),
                  Input("limits", "value"), Input("profile-status", "children"), Input("plan-state", "children"),
                  State("sid", "data"))
    def predict(scale, exercise, targets, limits, _status, _plan, sid):
        session = sessions.get(sid)
        overlay_changed = bool(limits) or exercise != _profile_value(session, "exercise") or \
            (targets or "") != _profile_targets(session)
        refusal = export_refusal(session, float(scale or 0), overlay_changed)
        export_text = "exportable: verified and unchanged" if refusal is None else f"export refused: {refusal}"
        if session.profile is None:
            return "no profile yet: plan one below or load a profile.json", "", {}, {}, "", export_text, ""
        try:
            w = what_if(context.twin, session.profile, exercise, float(scale or 0),
                        command_line_overlay(targets or None, limits or None))
        except LumbarTwinError as exc:
            log.warning("what-if refused: %s", exc)
            return (no_update, no_update, no_update, no_update, f"what-if refused: {exc}", f"export refused: {exc}",
                    no_update)
        lines = [f"{label}: target {value:.3f}, left {left:.3f}, right {right:.3f} ({'on' if ok else 'off'} target)"
                 for label, value, left, right, ok in target_table(w.mean_activation, w.plan.targets)]
        lines += [f"DEVICE: {p}" for p in w.device_problems] + [f"LIMIT: {b}" for b in w.breaches]
        if not (w.device_problems or w.breaches):
            lines.append("within every limit")
        return ([dcc.Markdown("  \n".join(lines))], closest_limit(w.evaluation, w.plan),
                activation_figure(w.evaluation), loads_figure(w.evaluation, w.plan), "", export_text,
                _limits_text(w.plan, session.profile))

    @app.callback(Output("tick", "disabled"), Output("plan-state", "children", allow_duplicate=True),
                  Input("plan-start", "n_clicks"), Input("plan-cancel", "n_clicks"),
                  State("trials", "value"), State("exercise", "value"), State("targets", "value"),
                  State("limits", "value"), State("sid", "data"), prevent_initial_call=True)
    def start_or_cancel(_start, _cancel, trials, exercise, targets, limits, sid):
        session = sessions.get(sid)
        if ctx.triggered_id == "plan-cancel":
            if session.job is not None:
                session.job.cancel()
            return True, "cancelled"
        if session.job is not None and session.job.state == "running":
            return False, "a plan is already running"
        if not trials or trials < 1:
            return True, "trials must be 1 or more"
        session.job = PlanJob(context.twin.directory, int(trials), exercise, targets or "", limits or "")
        return False, "running"

    @app.callback(Output("progress", "value"), Output("progress", "max"), Output("plan-state", "children"),
                  Output("verification", "children"), Output("tick", "disabled", allow_duplicate=True),
                  Output("compare", "children"),
                  Input("tick", "n_intervals"), State("sid", "data"), prevent_initial_call=True)
    def poll(_n, sid):
        session = sessions.get(sid)
        job = session.job
        if job is None:
            return no_update, no_update, no_update, no_update, True, no_update
        done, state = job.trials_done(), job.state
        if state == "running":
            return str(done), str(job.trials), f"running: {done} of {job.trials} trials", "", False, no_update
        text = job.output()
        if state == "done":
            message = load_profile(session, job.profile, context.twin_sha256)
            log.info("plan done: %s", message)
            return str(done), str(job.trials), "done: " + message, _verification_lines(text), True, _compare(session)
        log.warning("plan %s", state)
        return str(done), str(job.trials), state, text[-2000:], True, no_update

    @app.callback(Output("download", "data"), Output("export-status", "children", allow_duplicate=True),
                  Input("export-json", "n_clicks"), Input("export-csv", "n_clicks"),
                  State("scale", "value"), State("exercise", "value"), State("targets", "value"),
                  State("limits", "value"), State("sid", "data"), prevent_initial_call=True)
    def export(_json, _csv, scale, exercise, targets, limits, sid):
        session = sessions.get(sid)
        overlay_changed = bool(limits) or exercise != _profile_value(session, "exercise") or \
            (targets or "") != _profile_targets(session)
        refusal = export_refusal(session, float(scale or 0), overlay_changed)
        if refusal is None:  # re-check the file itself: it may have changed on disk since
            from planning.export import check_profile
            problems = check_profile(session.profile)
            refusal = ("the profile did not pass `lumbar-twin check`: " + problems[0]) if problems else None
        if refusal is not None:
            log.warning("export refused: %s", refusal)
            return no_update, f"export refused: {refusal}"
        path = session.profile if ctx.triggered_id == "export-json" else session.profile.with_name(
            json.loads(session.profile.read_text())["csv"])
        log.info("exported %s", path)
        return dcc.send_file(str(path)), f"exported {path.name}"


def _limits_text(plan, profile) -> list:
    lim, dev = plan.limits, plan.device
    return [html.Div(f"limits: compression {', '.join(f'{lv} {v:.0f} N' for lv, v in lim.compression_N.items())}; "
                     f"AP shear {min(lim.ap_shear_N.values()):.0f} N; reserve share {lim.reserve_share:g}"
                     + "".join(f"; {g} activation <= {c:g}" for g, c in lim.activation.items())),
            html.Div(f"device: max force {dev.max_force_N:g} N, max rate {dev.max_rate_N_per_s:g} N/s, "
                     f"cone {dev.cone_deg:g} deg, {dev.rate_hz:g} Hz"),
            html.Div(f"current profile: {profile}")]


def _profile_value(session, key):
    if session.profile is None:
        return None
    return json.loads(session.profile.read_text()).get(key)


def _profile_targets(session) -> str:
    """The profile's targets in the page's text form (group=value,...)."""
    targets = _profile_value(session, "targets") or {}
    return ",".join(f"{k}={v:.2f}" for k, v in targets.items())


def _verification_lines(output: str) -> str:
    return "\n".join(line for line in output.splitlines() if line.startswith(("verified", "held", "searched", "  ")))


def _compare(session) -> list:
    """The new profile beside the previous one: peak compression per level and verification."""
    if session.compare is None:
        return []
    from dash import dash_table
    rows = []
    for name, path in (("previous", session.compare), ("new", session.profile)):
        doc = json.loads(path.read_text())
        peak = doc["verification"]["peak"]["compression_N"]
        rows.append({"profile": name, **{lv: round(v) for lv, v in peak.items()},
                     "verified": str(doc["verification"]["passed"] and doc["independent_verification"]["passed"])})
    return [dash_table.DataTable(id="compare-table", data=rows, columns=[{"name": k, "id": k} for k in rows[0]])]
