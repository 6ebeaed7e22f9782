"""Rendering verify / compare / audit results: ``terminal`` (rich) and ``html`` (Jinja2).

Submodules are imported on use (``from detectors.report import terminal``), so importing this
package costs nothing.
"""
