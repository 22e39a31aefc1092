"""Builds the C front end through cffi (API mode); everything else is in pyproject.toml."""
from setuptools import setup

setup(cffi_modules=["csrc/build_frontend.py:ffi"])
