"""Bundled examples. ``vivace serve`` with no argument serves :mod:`vivace.examples.app`."""
