"""medleak: how much of a client's medical images can a federated-learning server rebuild?"""

__version__ = "0.1.0"
