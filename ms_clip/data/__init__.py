"""Datasets: readers for image-caption and classification files, and mindspore.dataset pipelines.

``captions`` reads Flickr8k, JSON and CSV/TSV/JSONL caption files into plain records;
``pipeline`` turns records into a sharded, shuffled, batched ``mindspore.dataset`` pipeline;
``classification`` reads (and writes, for tests) CIFAR pickles and image folders. Generated demo
worlds live in ``ms_clip.demo``.
"""
