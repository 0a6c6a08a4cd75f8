"""The live-room runtime shared by lessons and broadcasts: presence, hands, Q&A, chat, polls,
slides and the event log, over the ``/room`` Socket.IO namespace. Imports no media code."""
