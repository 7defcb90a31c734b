"""llmcourse: the helper package behind the notebook course on large language models.

The chapters import from here; every public function validates its inputs and raises
``ValueError``/``TypeError`` naming the argument at fault.
"""

from llmcourse.env import env_report, get_device, seed_everything, setup
from llmcourse.profiles import PROFILE_NAMES, Profile, profile

__version__ = "0.1.0"
REPO_URL = "https://github.com/llmcourse/llmcourse"

__all__ = [
    "PROFILE_NAMES",
    "Profile",
    "REPO_URL",
    "env_report",
    "get_device",
    "profile",
    "seed_everything",
    "setup",
]
