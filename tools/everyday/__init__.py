"""Everyday requests on a home toolset written as a user would write it (tools/bench_everyday.py)."""
