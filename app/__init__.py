"""The user-facing layer above the stage packages (imaging, twin, planning).

- `app.cli`: the `lumbar-twin` command line.
- `app.demo`: the end-to-end demonstration (`lumbar-twin demo`).
- `app.batch`: device profiles for a manifest of patients x exercises (`lumbar-twin batch`).
- `app.clinic`: the clinic page (`lumbar-twin serve`), a local Dash app.

Every entry point calls the same library functions; none holds pipeline logic of its own.
"""
