"""The contract documents, installed as the ``sfmock.contracts`` package data."""
