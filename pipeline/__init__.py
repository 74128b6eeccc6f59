"""support-retrain: keep a fine-tuned support-intent classifier aligned with drifting traffic.

Light on import: nothing heavy is loaded here, so DAG files can import the light modules
(`config`, `results`, `errors`, `paths`) at parse time.
"""

__version__ = "0.1.0"
