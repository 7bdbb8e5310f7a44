"""Datasets: readers for image-caption and classification files, and mindspore.dataset pipelines.

``captions`` reads Flickr8k, JSON and CSV/TSV/JSONL caption files into plain records;
``pipeline`` turns records into a sharded, shuffled, batched ``mindspore.dataset`` pipeline;
``synthetic`` writes a small learnable image-caption world in the real Flickr8k layout.
"""
