"""`lumbar-twin serve`: the clinic page on 127.0.0.1 only, every script and style served from the
installed dash package (serve_locally; no CDN), one session per browser tab."""
from __future__ import annotations

import logging
import shutil
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
    build_folder: Path | None = None  # the twin built from a patient file, removed by close()

    def close(self) -> None:
        """Stop every plan run and remove every temporary folder the server made."""
        self.sessions.close()
        if self.build_folder is not None:
            shutil.rmtree(self.build_folder, ignore_errors=True)
            self.build_folder = None


def load_context(source: str | Path) -> Context:
    """A twin folder, or a patient file built into a temporary twin; a bad one gives Context.error."""
    from lumbar_twin.fileio import read_json, sha256_file
    from planning.exercise import exercise_names
    from twin.simulate import load_twin
    from twin.template import load_template

    source, build_folder = Path(source), None
    try:
        if source.is_file():
            from twin.build import build_twin
            build_folder = Path(tempfile.mkdtemp(prefix="lumbar-twin-serve-"))
            source = build_twin(source, build_folder).directory
        twin = load_twin(source)
        doc = read_json(twin.directory / "twin.json")
    except (LumbarTwinError, OSError) as exc:
        log.error("%s", exc)
        if build_folder is not None:
            shutil.rmtree(build_folder, ignore_errors=True)
        return Context(error=f"cannot open the twin: {exc}")
    except BaseException:  # Ctrl-C or SIGTERM during the build: leave nothing behind
        if build_folder is not None:
            shutil.rmtree(build_folder, ignore_errors=True)
        raise
    # Only the pseudonymous subject code: twin.json's patient id (the DICOM name never reaches it).
    return Context(twin=twin, subject=str(twin.patient.get("id", "")), twin_sha256=sha256_file(twin.directory / "twin.json"),
                   morphometry_use=list(doc.get("morphometry_use") or []), exercises=exercise_names(),
                   template=load_template(), build_folder=build_folder)


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
    try:
        server = werkzeug_server(HOST, port, app.server, threaded=True)
        # Requests in flight (a what-if inside MuJoCo) finish before the interpreter shuts down:
        # server_close() joins them, instead of killing daemon threads in C code.
        server.daemon_threads, server.block_on_close = False, True
        return server, context
    except BaseException:  # e.g. the port is taken: remove what the context made
        context.close()
        raise


def serve(source: str | Path, port: int = 8050) -> int:
    import signal

    # SIGTERM (a service manager, `kill`) stops it as cleanly as Ctrl-C does. SIGINT is set too:
    # a process started in the background of a script inherits SIGINT ignored, and would then
    # ignore the Ctrl-C (or `kill -INT`) that the first line promises stops it.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        server, context = make_server(source, port)
    except KeyboardInterrupt:  # stopped while a patient file was being built (its folder is removed)
        print("lumbar-twin: clinic page stopped", flush=True)
        return 130
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
        context.close()  # plan runs stopped, temporary folders removed
        print("lumbar-twin: clinic page stopped", flush=True)
    return 0
