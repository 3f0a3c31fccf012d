"""Losses registered by mmrs (mmseg losses are used by prefix, e.g. mmseg.CrossEntropyLoss)."""

__all__: list[str] = []
