"""Settings for a daphne whose page files can be changed under it: the folder named by
``SWARM_TEST_STATIC_OVERRIDE`` is searched before ``static/`` (tests/browser/
test_offline_shell.py deploys a changed file there and restarts the server)."""

from __future__ import annotations

import os
from pathlib import Path

from swarmweb.settings import *  # noqa: F403
from swarmweb.settings import STATICFILES_DIRS as BASE_STATICFILES_DIRS

STATICFILES_DIRS = [Path(os.environ["SWARM_TEST_STATIC_OVERRIDE"]), *BASE_STATICFILES_DIRS]
