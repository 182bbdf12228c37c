"""MEXC spot (API v3) and USDT perpetual (contract v1) connector parts."""
