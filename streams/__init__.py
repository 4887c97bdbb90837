"""polymon: monitoring, incident response and rollout control for a prediction-market
trading platform, as a stream-processing pipeline on Kafka."""

__version__ = "0.1.0"
