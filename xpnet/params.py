"""Moved to xpnet.checks (xpnet/_moved.py): this old path warns and goes in the next release."""
from ._moved import moved

moved(__name__)
