"""The offline demo's generated worlds: image-caption data that a small CLIP can learn in minutes.

Not part of the library's data readers (``ms_clip.data``): these modules *make* data, in the real
on-disk formats, for the demo (``scripts/examples/demo.sh``), for building the shipped
``clip_tiny_shapes`` model (``scripts/build_demo_model.py``), and for tests and benchmarks.

``synthetic`` draws one shape per image (6 shapes x colours x sizes x positions) with five captions
and writes it in the real Flickr8k layout (``write_flickr8k``); ``shapes_world`` extends it to the
demo world (12 shapes in 5 photo styles) with a held-out test set written as real CIFAR-100 pickles
(``write_shapes_world``).
"""
