"""-connection -> the ring's transport (spark/seam.py): infiniband asks for UCX with RDMA
where every executor has it ("auto"), ethernet for the TCP ring, and rank 0's one log line
says what ran and, when RDMA did not, why."""

from caffeonspark.spark.seam import TRANSPORTS, transport_line


def test_connection_flags_map_to_transports():
    assert TRANSPORTS == {"infiniband": "auto", "ethernet": "tcp"}


def test_the_log_line_says_what_ran_and_why_not_rdma():
    assert transport_line("infiniband", "ucx (rc_mlx5/mlx5_0:1)", "") == (
        "-connection infiniband: the ring runs on ucx (rc_mlx5/mlx5_0:1)"
    )
    line = transport_line("infiniband", "tcp", "rank 1 (10.0.0.2:4000): no RDMA transport")
    assert line == (
        "-connection infiniband: the ring runs on tcp "
        "(RDMA not used: rank 1 (10.0.0.2:4000): no RDMA transport)"
    )
