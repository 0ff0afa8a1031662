"""Data-parallel training across processes: communicators, rendezvous, the local launcher.

comm.py (Communicator, connect), rendezvous.py (the local launcher's address exchange),
hello_gate.py and peer_text.py (what a listener facing untrusted peers shares: bounded
waits for a first message, peer text made safe to log),
data_parallel.py (gradient buckets reduced during backward), run.py (one rank's run:
attach, solve, detach, close or abort; the launcher's ranks and Spark's tasks),
launcher.py / worker.py (`caffeonspark train -solver S -world_size N`). Tests: tests/comm/, tests/distributed/.
"""
