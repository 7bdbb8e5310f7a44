"""Conventional entry point for ``python setup.py develop`` / ``bdist_wheel`` (what MindFormers users run).

pyproject.toml is the single source of truth for metadata and dependencies; setuptools reads it.
"""
from setuptools import setup

setup()
