"""Simulated venues: matching engine, market data sources and fault plans (network-free).

``matching`` holds the venue state (books, accounts, orders), ``market`` produces the
market's own liquidity and recorded frames, ``faults`` decides which faults the serving
layer injects.
"""
