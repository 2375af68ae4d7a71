"""Sessions for demo-app. Environments use uv and are reused between runs, so a restored `.nox`
saves creating them; the installs below still run every time (they are no-ops when nothing
changed) and reinstall the project from the working tree."""

import nox

nox.options.default_venv_backend = "uv"
nox.options.reuse_venv = "yes"
nox.options.sessions = ["tests"]


@nox.session
def tests(session: nox.Session) -> None:
    """Run the test suite against the locked dependencies."""
    # nox points UV_PROJECT_ENVIRONMENT at this session's env, so `uv sync` fills it from
    # uv.lock. The project is installed editable: tests always import the working tree.
    session.run_install("uv", "sync", "--locked", "--group=test")
    session.run("pytest", *session.posargs)
