"""Benchmarks of numpy_transformer against PyTorch CPU eager (run ``python benchmarks/run.py``)."""
