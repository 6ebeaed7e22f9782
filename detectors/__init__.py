"""Provenance analysis: never imports torch or diffusers."""
