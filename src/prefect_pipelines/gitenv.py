"""How this project runs `git`: with no prompts, only the allowed protocols, and a clone
token only in git's environment (an `http.extraHeader`), never on a command line, in a
URL, a log line or an error message. Used by the clone step (flows/git.py) and by the
facade's reads and commits of a repository's pipeline file (services/repository.py).
"""

from __future__ import annotations

import os
from urllib.parse import urlsplit

# What a host process inherits from the worker's environment; nothing else leaks (the
# worker's own credentials, PREFECT_API_* and the like stay out).
INHERITED = ("PATH", "HOME", "USER", "LOGNAME", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "TMPDIR", "SHELL")


def host_env(step_env: dict[str, str]) -> dict[str, str]:
    """The environment of a host process: a few inherited variables plus the step's."""
    base = {name: os.environ[name] for name in INHERITED if name in os.environ}
    return {**base, **step_env}


def url_scheme(url: str) -> str:
    """The scheme of a git URL (`ssh` for the scp-like form)."""
    scheme = urlsplit(url).scheme
    return scheme if scheme else "ssh"


def git_env(auth_header: str | None, allowed_schemes: set[str]) -> dict[str, str]:
    """git's environment: no prompts, allowed protocols only, and the forge's
    Authorization header for its token (Forge.clone_header), if any."""
    env = host_env({})
    env.update(
        GIT_TERMINAL_PROMPT="0",
        GIT_ALLOW_PROTOCOL=":".join(sorted(allowed_schemes)),
        GIT_SSH_COMMAND="ssh -o BatchMode=yes",
        GIT_CONFIG_NOSYSTEM="1",
    )
    if auth_header:
        env.update(
            GIT_CONFIG_COUNT="1",
            GIT_CONFIG_KEY_0="http.extraHeader",
            GIT_CONFIG_VALUE_0=f"Authorization: {auth_header}",
        )
    return env
