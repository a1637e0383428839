"""Orca-style explanation tuning (Mukherjee et al. 2023): regenerate responses under the Orca system messages.

- :mod:`.system_messages`: the 16 messages, validated data from ``prompts/orca/system_messages.yaml``;
- :mod:`.task_types`: task-type detection and the type -> messages table (``prompts/orca/task_types.yaml``);
- :mod:`.assign`: the seeded choice of a message per record (by type, uniform, restricted set);
- :mod:`.rewrite`: rendering the request and building the rewritten record;
- :mod:`.run`: the whole command as a library call (read, check, regenerate, write, report).
"""

from itkit.methods.orca.assign import Assigner, Assignment
from itkit.methods.orca.rewrite import OrcaRewriter
from itkit.methods.orca.run import OrcaResult, run_orca

__all__ = ["Assigner", "Assignment", "OrcaResult", "OrcaRewriter", "run_orca"]
