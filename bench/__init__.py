"""Side-by-side benchmarks: Roundtable, a bare aiohttp relay and PeerJS server (see docs/benchmarks.md).

Run by hand and written down; nothing here is a timed assertion. Every load is bounded in count and time
and goes to 127.0.0.1 only.
"""
