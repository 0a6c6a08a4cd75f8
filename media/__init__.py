"""Media: asyncio + aiortc worker processes that forward published packets to viewers.

Only :mod:`media.channel` and :mod:`media.tokens` are imported by the web app; they import no
aiortc. Nothing here imports Flask or eventlet.
"""
