"""medleak: measure how much of a client's medical images a federated-learning server can rebuild."""

__version__ = "0.1.0"
