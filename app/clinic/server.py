"""`lumbar-twin serve`: the clinic page on 127.0.0.1 only, every script and style served from the
installed dash package (serve_locally; no CDN), one session per browser tab."""
from __future__ import annotations

import logging
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from app.clinic.session import Sessions
from lumbar_twin.errors import LumbarTwinError

log = logging.getLogger("lumbar_twin.app")
HOST = "127.0.0.1"  # never another interface: the page shows patient data


@dataclass
class Context:
    twin: object | None = None
    error: str | None = None
    subject: str = ""
    twin_sha256: str = ""
    morphometry_use: list = field(default_factory=list)
    exercises: list = field(default_factory=list)
    template: object | None = None
    sessions: Sessions = field(default_factory=Sessions)


def load_context(source: str | Path) -> Context:
    """A twin folder, or a patient file built into a temporary twin; a bad one gives Context.error."""
    from lumbar_twin.fileio import read_json, sha256_file
    from planning.exercise import exercise_names
    from twin.simulate import load_twin
    from twin.template import load_template

    source = Path(source)
    try:
        if source.is_file():
            from twin.build import build_twin
            source = build_twin(source, Path(tempfile.mkdtemp(prefix="lumbar-twin-serve-"))).directory
        twin = load_twin(source)
        doc = read_json(twin.directory / "twin.json")
    except (LumbarTwinError, OSError) as exc:
        log.error("%s", exc)
        return Context(error=f"cannot open the twin: {exc}")
    # Only the pseudonymous subject code: twin.json's patient id (the DICOM name never reaches it).
    return Context(twin=twin, subject=str(twin.patient.get("id", "")), twin_sha256=sha256_file(twin.directory / "twin.json"),
                   morphometry_use=list(doc.get("morphometry_use") or []), exercises=exercise_names(),
                   template=load_template())


def create_app(source: str | Path):
    import dash

    from app.clinic import callbacks, layout

    context = load_context(source)
    app = dash.Dash(__name__, title="lumbar-twin clinic", serve_locally=True, update_title=None)
    app.scripts.config.serve_locally = True
    app.css.config.serve_locally = True
    # A function layout is called per page load: each tab gets its own session id.
    app.layout = lambda: layout.page(context, context.sessions.new_id())
    app.config.suppress_callback_exceptions = True
    if context.twin is not None:
        callbacks.register(app, context)
    return app, context


def make_server(source: str | Path, port: int = 8050):
    """A werkzeug server bound to 127.0.0.1 (port 0: any free port); `.serve_forever()` runs it."""
    from werkzeug.serving import make_server as werkzeug_server

    app, context = create_app(source)
    return werkzeug_server(HOST, port, app.server, threaded=True), context


def serve(source: str | Path, port: int = 8050) -> int:
    import signal

    server, context = make_server(source, port)
    # SIGTERM (a service manager, `kill`) stops it as cleanly as Ctrl-C does.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    print(f"lumbar-twin clinic page for {context.subject or '(no twin)'}: http://{HOST}:{server.server_port}/ "
          "(Ctrl-C stops it)", flush=True)
    if context.error:
        print(f"lumbar-twin: error: {context.error}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
        print("lumbar-twin: clinic page stopped", flush=True)
    return 0
