"""Natural-language predicates over streaming audio: config, windowing, scoring, tracking, engine.

No ROS imports: the live node, bag replay and the CLIs all use this one implementation.
"""
from .config import PredicateConfig, PredicateSetConfig, Prototypes
from .config_file import load_predicate_config, parse_predicate_config, write_predicate_config
from .engine import PredicateEngine, WindowResult

__all__ = ["PredicateConfig", "PredicateEngine", "PredicateSetConfig", "Prototypes", "WindowResult",
           "load_predicate_config", "parse_predicate_config", "write_predicate_config"]
