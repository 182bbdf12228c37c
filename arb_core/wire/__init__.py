"""Venue wire decoders: websocket frame bytes straight into a ``DeltaBatch``.

``common`` holds ``WireScale`` and ``WireError``; ``gateio`` and ``mexc`` hold one
venue's formats each.
"""
