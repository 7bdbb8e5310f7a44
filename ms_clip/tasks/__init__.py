"""Tasks: what Trainer runs for each MindFormers task name.

Each module declares its run-YAML sections as a subclass of ``ms_clip.run_config.RunConfig`` (the
sections both tasks share), exported as ``RUN_CONFIG_CLASS``, and plain functions (``train`` /
``evaluate`` / ``predict``) that take a model and the validated run config.
``ms_clip.run_config.TASKS`` maps task names to modules.
"""
