"""Self-Instruct (Wang et al. 2022) and Alpaca's variant: new tasks generated from seed tasks.

Modules: ``seeds`` (loading), ``prompts`` (templates in ``prompts/self_instruct/``),
``parse`` (text to candidates), ``filters`` (the named, tunable filters), ``instances``
(instance parsing and cleaning), ``generate`` (the async driver), ``options`` (the command's options as
a config), ``run`` (file in, files out).
"""

from itkit.methods.self_instruct.filters import FilterConfig
from itkit.methods.self_instruct.generate import SelfInstructConfig, SelfInstructGenerator
from itkit.methods.self_instruct.run import SelfInstructResult, self_instruct_file

__all__ = ["FilterConfig", "SelfInstructConfig", "SelfInstructGenerator", "SelfInstructResult", "self_instruct_file"]
