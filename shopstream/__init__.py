"""shopstream: a stream-processing-first e-commerce data platform.

This top-level package stays import-light: `shopstream.domain` is shared with the PyFlink
environment, which installs none of the stack's dependencies. The CLI lives in `dev.stack.cli.main`
and the local stack in `dev.stack`; import them explicitly.
"""

__version__ = "0.1.0"
__all__ = ["__version__"]
