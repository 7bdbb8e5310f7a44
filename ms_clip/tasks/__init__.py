"""Tasks: what Trainer runs for each MindFormers task name.

Each module exports ``RUN_CONFIG_SCHEMA`` (its run-YAML sections, merged into
``ms_clip.run_config.COMMON_SCHEMA``) and plain functions (``train`` / ``evaluate`` / ``predict``)
that take a model and the validated run config. ``ms_clip.run_config.TASKS`` maps names to modules.
"""
