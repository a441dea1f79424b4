"""What the page does: every callback calls the same library functions as the CLI
(planning.whatif.what_if, planning.plan.command_line_overlay, planning.export.check_profile and
ros2_from_profile, `lumbar-twin plan` itself for planning)."""
from __future__ import annotations

import base64
import json
import logging
import math
from pathlib import Path

from dash import Input, Output, State, ctx, dcc, html, no_update
from dash.exceptions import PreventUpdate

from app.clinic.figures import activation_figure, closest_limit, compare_figure, loads_figure
from app.clinic.planjob import PlanJob
from app.clinic.session import export_refusal, load_profile, profile_files_sha256
from lumbar_twin.errors import LumbarTwinError
from planning.export import check_profile, ros2_from_profile
from planning.plan import command_line_overlay, merge, resolve_plan
from planning.report import target_table
from planning.whatif import what_if

log = logging.getLogger("lumbar_twin.app")
EXPORTS = {"export-json": "profile.json", "export-csv": "profile.csv", "export-ros2": "profile.ros2.yaml"}


def register(app, context) -> None:
    sessions = context.sessions

    @app.callback(Output("profile-status", "children"), Output("exercise", "value"), Output("targets", "value"),
                  Output("limits", "value"), Output("compare", "children", allow_duplicate=True),
                  Output("upload", "contents"),
                  Input("upload", "contents"), State("upload", "filename"), State("sid", "data"),
                  prevent_initial_call=True)
    def upload(contents, filenames, sid):
        """A profile.json, with its profile.csv beside it (both selected together). A profile that
        loads sets the session's exercise and targets to its own (limits to its own: none typed).
        The upload's contents are cleared after each, so that the same files chosen again (after
        fixing one, say) are read again: Dash calls back only when a value changes."""
        if contents is None:
            raise PreventUpdate
        session = sessions.get(sid)
        folder = session.new_folder("lumbar-twin-upload-")
        unchanged = (no_update,) * 4 + (None,)
        try:
            for content, name in zip(contents, filenames):
                (folder / Path(name).name).write_bytes(base64.b64decode(content.split(",", 1)[1]))
        except (ValueError, IndexError, AttributeError, TypeError) as exc:
            log.warning("upload %s refused: %s", filenames, exc)
            session.prune()
            return (f"upload refused: {exc}", *unchanged)
        documents = sorted(folder.glob("*.json"))
        if len(documents) != 1:
            log.warning("upload %s refused: not one profile.json", filenames)
            session.prune()
            return ("upload refused: select one profile.json (and its profile.csv)", *unchanged)
        message = f"{documents[0].name}: " + load_profile(session, documents[0], context.twin)
        session.prune()  # a refused upload, or the profile it replaced, leaves nothing behind
        if session.profile != documents[0]:
            return (message, *unchanged)
        doc = json.loads(documents[0].read_text())
        exercise = doc.get("exercise") if doc.get("exercise") in context.exercises else no_update
        return message, exercise, _targets_text(doc.get("targets") or {}), "", _compare(session), None

    @app.callback(Output("prediction", "children"), Output("closest", "children"), Output("activation", "figure"),
                  Output("loads", "figure"), Output("error", "children"), Output("export-status", "children"),
                  Output("session-limits", "children"),
                  Input("scale", "value"), Input("speed", "value"), Input("shape", "value"), Input("shift", "value"),
                  Input("exercise", "value"), Input("targets", "value"), Input("limits", "value"),
                  Input("profile-status", "children"), Input("plan-state", "children"), State("sid", "data"))
    def predict(scale, speed, shape, shift, exercise, targets, limits, _status, _plan, sid):
        session = sessions.get(sid)
        change = _forces_change(scale, speed, shape, shift)
        refusal = export_refusal(session, change != (1.0, 1.0, 1.0, 0.0), _overlay_changed(session, exercise, targets, limits))
        export_text = "exportable: verified and unchanged" if refusal is None else f"export refused: {refusal}"
        if session.profile is None:  # still show (and check) the limits a plan would be held to
            try:
                limits_shown, error = _limits_text(_page_plan(context, exercise, targets, limits), None), ""
            except LumbarTwinError as exc:
                log.warning("session refused: %s", exc)
                limits_shown, error = no_update, f"session refused: {exc}"
            return "no profile yet: plan one below or load a profile.json", "", {}, {}, error, export_text, limits_shown
        try:
            w = what_if(context.twin, session.profile, exercise, change[0],
                        command_line_overlay(targets or None, limits or None),
                        speed=change[1], shape=change[2], shift_pct=change[3])
        except LumbarTwinError as exc:
            log.warning("what-if refused: %s", exc)
            return (no_update, no_update, no_update, no_update, f"what-if refused: {exc}", f"export refused: {exc}",
                    no_update)
        lines = [f"{w.plan.exercise} at speed {w.speed:g}: {w.exercise.cycle_s:g} s a cycle, {len(w.times_s)} samples; "
                 f"force x {w.scale:g}, shape {w.shape:g}, timing {w.shift_pct:+g} % of the cycle",
                 f"device: peak force {w.peak_force_N:.1f} N of {w.plan.device.max_force_N:g} N, peak rate of change "
                 f"{w.peak_rate_N_per_s:.0f} N/s of {w.plan.device.max_rate_N_per_s:g} N/s"]
        lines += [f"{label}: target {value:.3f}, left {left:.3f}, right {right:.3f} ({'on' if ok else 'off'} target)"
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
                session.prune()
            return True, "cancelled"
        if session.job is not None and session.job.state == "running":
            return False, "a plan is already running"
        if not trials or trials < 1:
            return True, "trials must be 1 or more"
        try:  # the same check `lumbar-twin plan` makes first: refuse here rather than in the child
            _page_plan(context, exercise, targets, limits)
        except LumbarTwinError as exc:
            log.warning("plan refused: %s", exc)
            return True, f"plan refused: {exc}"
        session.job = PlanJob(session.new_folder("lumbar-twin-plan-"), context.twin.directory, int(trials), exercise,
                              targets or "", limits or "")
        session.prune()  # the previous run's folder, unless it holds the current or compared profile
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
            message = job.finish(lambda: _load_finished(session, job, context.twin))
            if message is None:  # another poll is loading it
                return str(done), str(job.trials), "checking the profile", "", False, no_update
            return str(done), str(job.trials), "done: " + message, _verification_lines(text), True, _compare(session)
        log.warning("plan %s", state)
        return str(done), str(job.trials), state, text[-2000:], True, no_update

    @app.callback(Output("download", "data"), Output("export-status", "children", allow_duplicate=True),
                  Input("export-json", "n_clicks"), Input("export-csv", "n_clicks"), Input("export-ros2", "n_clicks"),
                  State("scale", "value"), State("speed", "value"), State("shape", "value"), State("shift", "value"),
                  State("exercise", "value"), State("targets", "value"), State("limits", "value"), State("sid", "data"),
                  prevent_initial_call=True)
    def export(_json, _csv, _ros2, scale, speed, shape, shift, exercise, targets, limits, sid):
        session = sessions.get(sid)
        refusal = export_refusal(session, _forces_change(scale, speed, shape, shift) != (1.0, 1.0, 1.0, 0.0),
                                 _overlay_changed(session, exercise, targets, limits))
        if refusal is None:  # the files must still be those checked against this twin at load
            try:
                problems = check_profile(session.profile)
                if profile_files_sha256(session.profile) != session.checked:
                    problems.append("the profile's files changed on disk since they were checked; load it again")
            except LumbarTwinError as exc:
                problems = [str(exc)]
            refusal = ("the profile did not pass `lumbar-twin check`: " + problems[0]) if problems else None
        if refusal is not None:
            log.warning("export refused: %s", refusal)
            return no_update, f"export refused: {refusal}"
        name = EXPORTS[ctx.triggered_id]
        if name == "profile.ros2.yaml":  # the checked CSV's samples, converted by the library
            log.info("exported %s as %s", session.profile, name)
            return dcc.send_string(ros2_from_profile(session.profile), name), f"exported {name}"
        path = session.profile if name == "profile.json" else session.profile.with_name(
            json.loads(session.profile.read_text())["csv"])
        log.info("exported %s", path)
        return dcc.send_file(str(path), filename=name), f"exported {name}"


def _load_finished(session, job, twin) -> str:
    """Load a finished plan's profile into the session (once per job: PlanJob.finish)."""
    message = load_profile(session, job.profile, twin)
    session.prune()
    log.info("plan done: %s", message)
    return message


def _page_plan(context, exercise, targets, limits):
    """The plan the page's exercise, targets and limits make for this twin, as `lumbar-twin plan`
    resolves it (defaults, then the patient's limits, then these); InputError when one is bad."""
    document = merge({"exercise": exercise}, command_line_overlay(targets or None, limits or None))
    return resolve_plan(context.twin.spec, document, context.twin.patient.get("limits"))


def _forces_change(scale, speed, shape, shift) -> tuple[float, float, float, float]:
    """(scale, speed, shape, timing shift %) from the page; an empty field reads as no change,
    except scale (empty = 0: no force)."""
    def number(value, default):
        try:
            value = float(value)
        except (TypeError, ValueError):
            return default
        return value if math.isfinite(value) else default
    return number(scale, 0.0), number(speed, 1.0), number(shape, 1.0), number(shift, 0.0)


def _overlay_changed(session, exercise, targets, limits) -> bool:
    """Whether the page's exercise, targets or limits differ from the profile's own."""
    if session.profile is None:
        return False
    if limits:
        return True
    try:
        doc = json.loads(session.profile.read_text())
    except (OSError, ValueError):  # unreadable now: nothing may be exported as unchanged
        return True
    if exercise != doc.get("exercise"):
        return True
    try:
        typed = command_line_overlay(targets or None)["targets"] if targets else {}
    except LumbarTwinError:
        return True
    own = doc.get("targets") or {}
    return set(typed) != set(own) or any(abs(float(typed[k]) - float(own[k])) > 1e-9 for k in own)


def _targets_text(targets: dict) -> str:
    return ",".join(f"{k}={v:g}" for k, v in targets.items())


def _limits_text(plan, profile) -> list:
    lim, dev = plan.limits, plan.device
    return [html.Div(f"limits: compression {', '.join(f'{lv} {v:.0f} N' for lv, v in lim.compression_N.items())}; "
                     f"AP shear {min(lim.ap_shear_N.values()):.0f} N; reserve share {lim.reserve_share:g}"
                     + "".join(f"; {g} activation <= {c:g}" for g, c in lim.activation.items())),
            html.Div(f"device: max force {dev.max_force_N:g} N, max rate {dev.max_rate_N_per_s:g} N/s, "
                     f"cone {dev.cone_deg:g} deg, {dev.rate_hz:g} Hz"),
            html.Div(f"current profile: {profile or 'none yet'}")]


def _verification_lines(output: str) -> str:
    return "\n".join(line for line in output.splitlines() if line.startswith(("verified", "held", "searched", "  ")))


def _compare(session) -> list:
    """The current profile beside the previous one: exercise, targets' predicted mean activation,
    peak compression per level, verification; and both force magnitudes over the cycle."""
    if session.compare is None or session.profile is None:
        return []
    from dash import dash_table
    rows = []
    for name, path in (("previous", session.compare), ("current", session.profile)):
        try:
            doc = json.loads(path.read_text())
            peak = doc["verification"]["peak"]["compression_N"]
            mean = doc["predicted"]["mean_activation"]
        except (OSError, ValueError, KeyError, TypeError):
            return [html.Div("the previous profile can no longer be read: nothing to compare")]
        rows.append({"profile": name, "exercise": doc.get("exercise", ""),
                     **{f"{label} mean act.": "/".join(f"{v:.3f}" for v in sides.values()) for label, sides in mean.items()},
                     **{f"peak {lv} (N)": round(v) for lv, v in peak.items()},
                     "verified": str(doc["verification"]["passed"] is True
                                     and (doc.get("independent_verification") or {}).get("passed") is True)})
    columns = list(dict.fromkeys(k for r in rows for k in r))
    return [html.H3("previous and current profile"),
            dash_table.DataTable(id="compare-table", data=rows, columns=[{"name": k, "id": k} for k in columns]),
            dcc.Graph(id="compare-forces", figure=compare_figure({"previous": session.compare,
                                                                  "current": session.profile}))]
