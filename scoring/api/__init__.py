"""The HTTP room: the app factory (`scoring.api.app`), middleware, the score fast path,
dependencies, routes, request and response schemas, and problem answers. No decision logic
and no SQL here. Nothing is imported here: the HTTP parser's protocol (scoring/http_protocol.py)
reads the problem answers' shape without loading the app and its data libraries."""
