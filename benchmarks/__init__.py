"""The demo and benchmark harness of this repository: its embedded tasks, the
method matrix run through ``tools/train.py``/``tools/test.py``, the overhead
benchmark and the plots. Not part of the installed ``mmkd_ext`` package: it runs
the checkout's tools and configs."""
