"""Benchmark tooling outside the cursorshare package (not in the wheel).

``python -m benchmarks.compare`` (run by ``scripts/bench.sh``) starts cursorshare and the
sockjs-node tutorial server (``benchmarks/sockjs-node/``), drives both with the package's load
client (``cursorshare bench``), and writes the tables of docs/benchmarks.md. The runtime package
never imports this folder.
"""
