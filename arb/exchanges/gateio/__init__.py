"""Gate.io spot and USDT perpetual (API v4) connector parts."""
