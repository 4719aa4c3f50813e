"""cursorshare: a SockJS server on aiohttp and the cursor-sharing app that runs on it."""

__version__ = "0.1.0"
