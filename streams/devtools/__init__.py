"""Tools for developing, demonstrating and testing polymon, not for running it.

The demo, the benchmark and its peers, the synthetic streams, and the brokers polymon can
start for itself: the embedded noida-db broker (the ``embedded`` extra) and a local
Apache Kafka from cached jars. A production worker imports none of this.
"""
