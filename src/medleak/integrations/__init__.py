"""Bridges from medleak to real federated-learning engines (Flower: ``integrations.flower``)."""
