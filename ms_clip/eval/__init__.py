"""Evaluation: image-text retrieval (``retrieval``) and zero-shot classification (``zero_shot``)."""
